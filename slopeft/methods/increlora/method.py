"""The IncreLoRA method: building its layers, the training hooks that grow ranks, saving, loading, merging."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import load_file, save_file
from torch import nn

from slopeft.errors import ConfigError
from slopeft.methods.base import ADAPTER_CONFIG, ADAPTER_WEIGHTS, METHODS, Method, MethodContext
from slopeft.methods.increlora.allocator import (
    choose_growth,
    component_factor,
    fit_schedule,
    is_allocation_step,
    smooth_importance,
)
from slopeft.methods.increlora.config import IncreLoraOptions
from slopeft.methods.increlora.layer import IncreLoraLinear, increlora_layers
from slopeft.methods.increlora.optimizer import ComponentScaledAdamW
from slopeft.methods.optim import adamw
from slopeft.methods.quant import ALL_LINEAR_ROLES, freeze_base, linear_targets


@METHODS.register("increlora")
class IncreLora(Method):
    name = "increlora"
    config_class = IncreLoraOptions

    def __init__(self, options: dict[str, Any] | None = None) -> None:
        super().__init__(options)
        c = self.config
        if c.init_r < 1 or c.target_rank < c.init_r:
            raise ConfigError(
                f"increlora needs 1 <= init_r <= target_rank (got init_r={c.init_r}, target_rank={c.target_rank})."
            )
        if self.max_rank < c.target_rank:
            raise ConfigError(
                f"increlora.max_rank ({c.max_rank}) must be at least target_rank ({c.target_rank})."
            )
        if c.top_h < 1 or c.incre_interval < 1 or c.init_warmup < 0:
            raise ConfigError("increlora needs top_h >= 1, incre_interval >= 1 and init_warmup >= 0.")
        if not 0 < c.beta1 < 1 or not 0 < c.beta2 < 1:
            raise ConfigError("increlora.beta1 and beta2 must lie strictly between 0 and 1.")
        self._layers: dict[str, IncreLoraLinear] = {}
        self._optimizer: torch.optim.Optimizer | None = None
        self._reset()

    # -- derived settings -----------------------------------------------------------------------
    @property
    def rank_step(self) -> int:
        return self.config.rank_step or max(1, self.config.target_rank // 2)

    @property
    def max_rank(self) -> int:
        return self.config.max_rank or 4 * self.config.target_rank

    @property
    def capacity(self) -> int:
        return self.max_rank + (self.rank_step if self.config.advance_learning else 0)

    @property
    def budget(self) -> int:
        return self.config.target_rank * len(self._layers)

    def _reset(self) -> None:
        self._total = 0
        self._done = True
        self._step = 0
        self._schedule: dict[str, int] | None = None
        self._ipt: dict[str, float] = {}
        self._unc: dict[str, float] = {}
        # per module and slot: step its A/B (resp. λ) started training (-1: not), trainer factor then
        self._slots: dict[str, dict[str, list]] = {}
        self.history: list[dict[str, Any]] = []

    # -- building -------------------------------------------------------------------------------
    def apply(self, model: nn.Module, context: MethodContext) -> nn.Module:
        c = self.config
        freeze_base(model, context)
        self._reset()
        self._layers = {}
        for name, linear in linear_targets(model, context, c.target_modules, ALL_LINEAR_ROLES, self.name):
            layer = IncreLoraLinear(linear, self.capacity, c.init_r, c.alpha, c.dropout, c.reserve_lambda)
            model.set_submodule(name, layer)
            self._layers[name] = layer
            starts = [0 if j < c.init_r else -1 for j in range(self.capacity)]
            self._slots[name] = {
                "ab": list(starts),
                "e": list(starts),
                "g_ab": [1.0] * self.capacity,
                "g_e": [1.0] * self.capacity,
            }
            if c.advance_learning:
                layer.reserve = min(self.rank_step, self.capacity - c.init_r)
                for j in range(c.init_r, c.init_r + layer.reserve):
                    self._slots[name]["ab"][j] = 0
            self._ipt[name] = self._unc[name] = 0.0
        self._total = c.init_r * len(self._layers)
        self._done = self._total >= self.budget
        for layer in self._layers.values():
            layer.tracking = not self._done
        if self._done:
            self._finish()
        self._refresh_scales(0, 1.0)
        return model

    def build_optimizer(self, model: nn.Module, learning_rate: float, weight_decay: float) -> Any:
        layers = increlora_layers(model)
        scales: dict[nn.Parameter, Callable[[], torch.Tensor]] = {}
        matrices, lambdas = [], []
        for layer in layers.values():
            scales[layer.lora_A] = lambda lay=layer: lay.ab_scale[:, None]
            scales[layer.lora_B] = lambda lay=layer: lay.ab_scale[None, :]
            scales[layer.lora_E] = lambda lay=layer: lay.e_scale
            matrices += [layer.lora_A, layer.lora_B]
            lambdas.append(layer.lora_E)
        groups = [
            {"params": matrices, "weight_decay": weight_decay},
            {"params": lambdas, "weight_decay": 0.0},
        ]
        self._optimizer = ComponentScaledAdamW(groups, learning_rate, scales)
        own = {id(p) for layer in layers.values() for p in layer.parameters()}
        rest = [(n, p) for n, p in model.named_parameters() if p.requires_grad and id(p) not in own]
        return [adamw(rest, learning_rate, weight_decay), self._optimizer] if rest else [self._optimizer]

    # -- training hooks -------------------------------------------------------------------------
    def _trainer_factor(self) -> float:
        """The trainer's schedule factor for the next step (lr / peak lr of the IncreLoRA optimiser)."""
        if self._optimizer is None:
            return 1.0
        group = self._optimizer.param_groups[0]
        peak = group.get("initial_lr", group["lr"])
        return float(group["lr"]) / peak if peak else 1.0

    def _fit_schedule(self, total_steps: int) -> dict[str, int]:
        return fit_schedule(self.config, self.budget - self._total, self.rank_step, total_steps)

    def on_step_end(self, model: nn.Module, step: int, total_steps: int) -> None:
        if not self._layers:
            return
        self._step = step
        if self._schedule is None:
            self._schedule = self._fit_schedule(total_steps)
        factor = self._trainer_factor()
        if not self._done:
            c = self.config
            for name, layer in self._layers.items():
                self._ipt[name], self._unc[name] = smooth_importance(
                    self._ipt[name], self._unc[name], layer.pop_score(), c.beta1, c.beta2
                )
            if is_allocation_step(self._schedule, step):
                self._allocate(step, factor)
        self._refresh_scales(step, factor)

    def importance(self) -> dict[str, float]:
        """Each module's current score Ī·Ū."""
        return {n: self._ipt[n] * self._unc[n] for n in self._layers}

    @torch.no_grad()
    def _allocate(self, step: int, factor: float) -> None:
        ranks = {name: layer.rank() for name, layer in self._layers.items()}
        grown = choose_growth(
            self.importance(), ranks, self.budget - self._total, self.rank_step, self.max_rank, self.config.top_h
        )
        for name, add in grown.items():
            self._grow(name, self._layers[name], add, step, factor)
            self._total += add
        self.history.append({"step": step, "grown": grown, "total_rank": self._total})
        if self._total >= self.budget:
            self._finish()

    def _grow(self, name: str, layer: IncreLoraLinear, add: int, step: int, factor: float) -> None:
        c, slots = self.config, self._slots[name]
        rank = layer.rank()
        for j in range(rank, rank + add):
            was_spare = j < rank + layer.reserve
            layer.lora_E[j] = c.reserve_lambda if was_spare else 0.0
            if not was_spare:  # A and B start now (no advance learning, or no spare left)
                slots["ab"][j], slots["g_ab"][j] = step, factor
            slots["e"][j], slots["g_e"][j] = step, factor
        layer.lora_rank += add
        if c.advance_learning:
            end = min(rank + add + self.rank_step, layer.capacity)
            for j in range(max(rank + layer.reserve, rank + add), end):
                slots["ab"][j], slots["g_ab"][j] = step, factor
            layer.reserve = end - (rank + add)
        else:
            layer.reserve = 0

    def _finish(self) -> None:
        """Allocation is over: spare components stop, sensitivity tracking stops."""
        self._done = True
        for name, layer in self._layers.items():
            rank = layer.rank()
            for j in range(rank, layer.capacity):
                self._slots[name]["ab"][j] = self._slots[name]["e"][j] = -1
            layer.reserve = 0
            layer.tracking = False
            layer.score = None

    def _refresh_scales(self, step: int, factor: float) -> None:
        restart = self._schedule["restart_warmup"] if self._schedule else 0
        for name, layer in self._layers.items():
            slots = self._slots[name]
            ab = [
                component_factor(s, g, step, factor, restart)
                for s, g in zip(slots["ab"], slots["g_ab"], strict=True)
            ]
            e = [
                component_factor(s, g, step, factor, restart)
                for s, g in zip(slots["e"], slots["g_e"], strict=True)
            ]
            layer.ab_scale.copy_(torch.tensor(ab))
            layer.e_scale.copy_(torch.tensor(e))

    def extra_loss(self, model: nn.Module) -> torch.Tensor | None:
        if not self.config.orth_reg or not self._layers:
            return None
        penalties = [layer.orthogonality() for layer in self._layers.values()]
        return self.config.orth_reg * torch.stack(penalties).mean()

    def state_dict(self) -> dict[str, Any]:
        return {
            "total": self._total,
            "done": self._done,
            "step": self._step,
            "schedule": self._schedule,
            "ipt": dict(self._ipt),
            "unc": dict(self._unc),
            "slots": self._slots,
            "reserve": {n: layer.reserve for n, layer in self._layers.items()},
            "history": self.history,
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        if not state:
            return
        self._total, self._done, self._step = int(state["total"]), bool(state["done"]), int(state["step"])
        self._schedule = state["schedule"]
        self._ipt, self._unc = dict(state["ipt"]), dict(state["unc"])
        self._slots = {n: {k: list(v) for k, v in s.items()} for n, s in state["slots"].items()}
        self.history = list(state.get("history", []))
        for name, layer in self._layers.items():
            layer.reserve = int(state["reserve"][name])
            layer.tracking = not self._done
            layer.score = None
        self._refresh_scales(self._step, self._trainer_factor())

    # -- reporting, saving, loading, merging ----------------------------------------------------
    def rank_pattern(self, model: nn.Module) -> dict[str, int]:
        """Each adapted module's current rank."""
        return {n: layer.rank() for n, layer in increlora_layers(model).items()}

    def cost_report(self, model: nn.Module) -> dict[str, Any]:
        """Ranks and parameter counts. ``effective_parameters`` counts the active components
        (r·(d_in + d_out + 1) per module), what the adapter really uses; ``allocated_parameters`` all
        pre-allocated components (what the trainable-parameter count of the run shows)."""
        layers = increlora_layers(model)
        pattern = {n: layer.rank() for n, layer in layers.items()}
        return {
            "rank_pattern": pattern,
            "total_rank": sum(pattern.values()),
            "rank_budget": self.config.target_rank * len(layers),
            "effective_parameters": sum(
                r * (layers[n].in_features + layers[n].out_features + 1) for n, r in pattern.items()
            ),
            "allocated_parameters": sum(
                p.numel() for layer in layers.values() for p in (layer.lora_A, layer.lora_B, layer.lora_E)
            ),
            "schedule": self._schedule,
            "allocations": len(self.history),
        }

    def save(self, model: nn.Module, out_dir: Path) -> None:
        out_dir = Path(out_dir)
        out_dir.mkdir(parents=True, exist_ok=True)
        layers = increlora_layers(model)
        tensors: dict[str, torch.Tensor] = {}
        pattern: dict[str, int] = {}
        for name, layer in layers.items():
            r = pattern[name] = layer.rank()
            tensors[f"{name}.lora_A"] = layer.lora_A.detach()[:r]
            tensors[f"{name}.lora_B"] = layer.lora_B.detach()[:, :r]
            tensors[f"{name}.lora_E"] = layer.lora_E.detach()[:r]
        own = {id(p) for layer in layers.values() for p in layer.parameters()}
        for name, parameter in model.named_parameters():
            if parameter.requires_grad and id(parameter) not in own:
                tensors[name] = parameter.detach()
        save_file(
            {k: v.cpu().contiguous().clone() for k, v in tensors.items()}, str(out_dir / ADAPTER_WEIGHTS)
        )
        config = {"peft_type": self.peft_type(), **self.options_dict(), "rank_pattern": pattern}
        (out_dir / ADAPTER_CONFIG).write_text(json.dumps(config, indent=2) + "\n")

    def load(self, base: nn.Module, adapter_dir: Path, context: MethodContext) -> nn.Module:
        adapter_dir = Path(adapter_dir)
        config_path, weights_path = adapter_dir / ADAPTER_CONFIG, adapter_dir / ADAPTER_WEIGHTS
        if not config_path.is_file() or not weights_path.is_file():
            raise ConfigError(
                f"{adapter_dir} is not an increlora adapter folder ({ADAPTER_CONFIG} + {ADAPTER_WEIGHTS})."
            )
        pattern = json.loads(config_path.read_text()).get("rank_pattern")
        if not isinstance(pattern, dict):
            raise ConfigError(f"{config_path} has no rank_pattern: it was not saved by increlora.")
        model = self.apply(base, context)
        state = load_file(str(weights_path))
        layers = increlora_layers(model)
        if set(pattern) != set(layers):
            raise ConfigError(
                f"The increlora adapter in {adapter_dir} adapts other modules than this model offers "
                f"(e.g. {sorted(set(pattern) ^ set(layers))[:2]}); load it onto the base model and options it "
                "was trained with."
            )
        with torch.no_grad():
            for name, layer in layers.items():
                r = int(pattern[name])
                if r > layer.capacity:
                    raise ConfigError(
                        f"{name} was saved with rank {r}, above this configuration's capacity {layer.capacity}; "
                        "load with the increlora options it was trained with (max_rank)."
                    )
                try:
                    layer.lora_A[:r] = state.pop(f"{name}.lora_A")
                    layer.lora_B[:, :r] = state.pop(f"{name}.lora_B")
                    layer.lora_E[:r] = state.pop(f"{name}.lora_E")
                except (KeyError, RuntimeError) as err:
                    raise ConfigError(
                        f"The increlora adapter in {adapter_dir} does not fit {name}: {err}"
                    ) from None
                layer.lora_E[r:] = 0.0
                layer.lora_rank.fill_(float(r))
            parameters = dict(model.named_parameters())
            own = {id(p) for layer in layers.values() for p in layer.parameters()}
            missing = [
                n for n, p in parameters.items() if p.requires_grad and id(p) not in own and n not in state
            ]
            unknown = [n for n in state if n not in parameters]
            if missing or unknown:
                raise ConfigError(
                    f"The adapter in {adapter_dir} does not fit this model: head tensors missing {missing[:2]}, "
                    f"unknown {unknown[:2]}."
                )
            for name, tensor in state.items():
                parameters[name].copy_(tensor.to(parameters[name].dtype))
        self._finish()
        self._total = sum(pattern.values())
        return model

    def merge(self, model: nn.Module) -> nn.Module:
        """Adds each module's ΔW (active components) to its base weight and removes the adapter."""
        with torch.no_grad():
            for name, layer in increlora_layers(model).items():
                base = layer.base_layer
                base.weight += layer.delta_weight().to(base.weight.dtype)
                model.set_submodule(name, base)
        return model
