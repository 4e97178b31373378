"""IncreLoRA (Zhang et al. 2023, "IncreLoRA: Incremental Parameter Allocation Method for
Parameter-Efficient Fine-tuning"): start every module at a small rank and add rank where it matters.

Own code, checked against the authors' ``loralib/increlora.py`` (FeiyuZhang98/IncreLoRA):

* **Update.** Each target Linear layer gets ΔW = Σᵢ Bᵢ·λᵢ·Aᵢ · α / r, with r the module's current rank
  (A rows and B columns start N(0, 0.02²), λ starts at 0, as in the authors' code).
* **Fixed shapes.** The trainer snapshots and restores parameters by name, so shapes never change: every
  module pre-allocates ``max_rank + rank_step`` components and switches them on in order. The current
  rank is itself stored as a (never optimised) parameter ``lora_rank``, so a snapshot of the best step,
  a resumed checkpoint and the saved adapter all carry the ranks that go with their weights.
* **Importance.** After every step each module's sensitivity s = Σ|ΔW ⊙ ∇ΔW| / √(d_out·d_in) (the
  authors' matrix-level |w·∇w|, aggregated per module) is smoothed as in AdaLoRA: Ī ← β₁Ī + (1−β₁)s,
  Ū ← β₂Ū + (1−β₂)|s − Ī|, score Ī·Ū. ∇ΔW comes from a hook on the materialised ΔW, which is used only
  while ranks are still being allocated (then the layer goes back to the cheap x·Aᵀ·Bᵀ path).
* **Schedule.** After ``init_warmup`` steps, every ``incre_interval`` steps the ``top_h`` modules with the
  highest scores gain ``rank_step`` each, until the total rank reaches ``target_rank`` × modules; then
  allocation stops. SloBench tasks are small: when that schedule would not finish within ``finish_by``
  of the run's steps, warmup and interval are shrunk proportionally (recorded in the method state).
* **Advance learning.** Each module keeps ``rank_step`` spare components whose A and B train with λ held
  at ``reserve_lambda`` (1e-5) before they are switched on; switched on, λ trains from 1e-5. Spare
  components only act in training mode: evaluation and the saved adapter use the active ones.
* **Restarted warmup.** Each group of newly trained parameters gets its own warmup and decay over the
  remaining steps (the authors' ``multi_lr``). Mechanism: :meth:`IncreLora.build_optimizer` returns an
  AdamW whose update is multiplied per rank component by a factor the method sets in ``on_step_end``
  (:class:`ComponentScaledAdamW`); with the trainer's schedule factor g(t), a component started at step
  s gets the learning rate peak · min(1, ramp(t − s) · g(t) / g(s)), ramp rising linearly over
  ``restart_warmup`` steps — for the trainer's linear schedule exactly a fresh linear warmup then
  linear decay to zero at the end. Components present from step 0 follow the trainer's schedule.
* **Orthogonality.** ``extra_loss`` adds orth_reg · mean over modules of ‖AAᵀ − I‖²_F + ‖BᵀB − I‖²_F
  over the components in training (the paper's squared Frobenius form; the code uses the plain norm).

The saved adapter stores each module's final rank (``rank_pattern`` in adapter_config.json) and only
the active components, and loads back with those ranks.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import load_file, save_file
from torch import nn
from torch.nn import functional as F

from slopeft.errors import ConfigError
from slopeft.methods.base import ADAPTER_CONFIG, ADAPTER_WEIGHTS, METHODS, Method, MethodContext
from slopeft.methods.quant import ALL_LINEAR_ROLES, freeze_base, linear_targets


@dataclass
class IncreLoraOptions:
    init_r: int = 1
    """Rank every module starts with (the authors' scripts: 1)."""
    target_rank: int = 2
    """Average rank per module at the end: the budget is target_rank × modules (the authors use 2 to 8;
    2 on all six layer types costs about what LoRA r=8 on queries and values does)."""
    max_rank: int = 0
    """Most rank one module can reach (components are pre-allocated); 0: 4 × target_rank."""
    rank_step: int = 0
    """Rank a selected module gains per allocation; 0: the authors' table, max(1, target_rank // 2)."""
    top_h: int = 5
    """Modules that gain rank at each allocation (the authors' h)."""
    init_warmup: int = 100
    """Steps before the first allocation."""
    incre_interval: int = 100
    """Steps between allocations."""
    finish_by: float = 0.5
    """Share of the run's steps by which allocation must be done; a longer schedule is shrunk
    proportionally (0: never shrink; the authors' RTE run finishes at about 40%)."""
    beta1: float = 0.85
    """EMA coefficient of the sensitivity."""
    beta2: float = 0.85
    """EMA coefficient of the uncertainty."""
    alpha: float = 32.0
    """Scaling numerator: ΔW is multiplied by alpha / current rank (the authors' scripts: 32)."""
    dropout: float = 0.0
    """Dropout on the adapter's input."""
    orth_reg: float = 0.3
    """Coefficient of the orthogonality regulariser (the authors' scripts: 0.3; paper range 0.1-0.3)."""
    advance_learning: bool = True
    """Train spare components (A, B) with a tiny λ before they are switched on."""
    reserve_lambda: float = 1e-5
    """λ of spare components during advance learning, and λ of a component when it is switched on."""
    restart_warmup: int | None = None
    """Warmup steps of each newly added group's restarted schedule; None: the (shrunk) init_warmup;
    0: new components simply follow the trainer's schedule."""
    target_modules: list[str] | None = None
    """Module-name suffixes to adapt; default: every linear layer of attention and MLP (queries, keys,
    values, attention output, both MLP layers), as in the authors' scripts."""


class ComponentScaledAdamW(torch.optim.AdamW):
    """AdamW whose update of some parameters is multiplied elementwise by a factor (per rank component).

    ``scales`` maps a parameter to a function returning a tensor broadcastable to it. The AdamW update
    (Adam step and decoupled weight decay) of that parameter is multiplied by it, i.e. each component
    gets its own learning rate; moments are unaffected. A factor 0 leaves an entry untouched.
    """

    def __init__(self, params, lr: float, scales: dict[nn.Parameter, Callable[[], torch.Tensor]]) -> None:
        super().__init__(params, lr=lr)
        self.scales = scales

    def step(self, closure=None):  # type: ignore[override]
        with torch.no_grad():
            before = [(p, p.detach().clone()) for p in self.scales if p.grad is not None]
        loss = super().step(closure)
        with torch.no_grad():
            for p, old in before:
                p.copy_(torch.lerp(old, p, self.scales[p]().to(p.dtype)))
        return loss


class IncreLoraLinear(nn.Module):
    """A frozen Linear layer plus ``capacity`` pre-allocated rank components, the first ``lora_rank`` on."""

    def __init__(
        self,
        base: nn.Linear,
        capacity: int,
        init_rank: int,
        alpha: float,
        dropout: float,
        reserve_lambda: float,
    ) -> None:
        super().__init__()
        self.base_layer = base
        self.in_features, self.out_features = base.in_features, base.out_features
        self.capacity, self.alpha, self.reserve_lambda = capacity, alpha, reserve_lambda
        dtype, device = base.weight.dtype, base.weight.device
        self.lora_A = nn.Parameter(torch.empty(capacity, self.in_features, dtype=dtype, device=device))
        self.lora_B = nn.Parameter(torch.empty(self.out_features, capacity, dtype=dtype, device=device))
        self.lora_E = nn.Parameter(torch.zeros(capacity, dtype=dtype, device=device))
        nn.init.normal_(self.lora_A, std=0.02)
        nn.init.normal_(self.lora_B, std=0.02)
        # The rank travels with the weights (snapshots, checkpoints); never optimised, used detached.
        self.lora_rank = nn.Parameter(torch.tensor([float(init_rank)], device=device))
        self.register_buffer("slot", torch.arange(capacity, device=device), persistent=False)
        self.register_buffer("ab_scale", torch.zeros(capacity, device=device), persistent=False)
        self.register_buffer("e_scale", torch.zeros(capacity, device=device), persistent=False)
        self.lora_dropout = nn.Dropout(dropout) if dropout > 0 else nn.Identity()
        self.reserve = 0  # spare components after the active ones (training only)
        self.tracking = False  # materialise ΔW and record its sensitivity
        self.score: torch.Tensor | None = None

    @property
    def weight(self) -> torch.Tensor:
        return self.base_layer.weight

    @property
    def bias(self) -> torch.Tensor | None:
        return self.base_layer.bias

    def rank(self) -> int:
        return int(round(float(self.lora_rank.detach())))

    def lambdas(self, with_reserve: bool) -> torch.Tensor:
        """λ of every slot times α / r: λ on active slots, reserve_lambda on spare ones (if asked), else 0."""
        rank = self.lora_rank.detach()
        lam = self.lora_E * (self.slot < rank).to(self.lora_E.dtype)
        if with_reserve and self.reserve:
            spare = (self.slot >= rank) & (self.slot < rank + self.reserve)
            lam = lam + spare.to(lam.dtype) * self.reserve_lambda
        return lam * (self.alpha / rank.clamp(min=1))

    def training_mask(self) -> torch.Tensor:
        rank = self.lora_rank.detach()
        return (self.slot < rank + self.reserve).to(self.lora_A.dtype)

    def delta_weight(self) -> torch.Tensor:
        """ΔW of the active components, [out, in]."""
        return (self.lora_B * self.lambdas(with_reserve=False)) @ self.lora_A

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        result = self.base_layer(x)
        if self.tracking and self.training and torch.is_grad_enabled():
            dtype = x.dtype
            lam = self.lambdas(with_reserve=True).to(dtype)
            delta = (self.lora_B.to(dtype) * lam) @ self.lora_A.to(dtype)
            if delta.requires_grad:
                value = delta.detach()
                delta.register_hook(lambda grad: self._record(value, grad))
            return result + F.linear(self.lora_dropout(x), delta)
        return result + self.delta(x)

    def delta(self, x: torch.Tensor) -> torch.Tensor:
        """What the components add to the base layer's output for input ``x`` (x·Aᵀ·diag(λ·α/r)·Bᵀ)."""
        dtype = x.dtype
        lam = self.lambdas(with_reserve=self.training).to(dtype)
        return F.linear(F.linear(self.lora_dropout(x), self.lora_A.to(dtype)) * lam, self.lora_B.to(dtype))

    def _record(self, delta: torch.Tensor, grad: torch.Tensor) -> None:
        score = (delta * grad).abs().sum().float() / math.sqrt(delta.numel())
        self.score = score if self.score is None else self.score + score

    def pop_score(self) -> float:
        score, self.score = self.score, None
        return 0.0 if score is None else float(score)

    def orthogonality(self) -> torch.Tensor:
        """‖AAᵀ − I‖²_F + ‖BᵀB − I‖²_F over the components in training."""
        mask = self.training_mask()
        eye = torch.diag(mask)
        a = self.lora_A * mask[:, None]
        b = self.lora_B * mask[None, :]
        return ((a @ a.T - eye) ** 2).sum() + ((b.T @ b - eye) ** 2).sum()

    def extra_repr(self) -> str:
        return f"in_features={self.in_features}, out_features={self.out_features}, capacity={self.capacity}"


def increlora_layers(model: nn.Module) -> dict[str, IncreLoraLinear]:
    return {n: m for n, m in model.named_modules() if isinstance(m, IncreLoraLinear)}


@METHODS.register("increlora")
class IncreLora(Method):
    name = "increlora"
    config_class = IncreLoraOptions
    default_learning_rate = 1.2e-3  # the authors' scripts; the paper's range is about 1e-3

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

    def build_optimizer(self, model: nn.Module, learning_rate: float, weight_decay: float) -> Any | None:
        from slopeft.training.optim import adamw

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
        c = self.config
        warmup, interval = c.init_warmup, c.incre_interval
        rounds = math.ceil(max(self.budget - self._total, 0) / (c.top_h * self.rank_step))
        limit = c.finish_by * total_steps
        if c.finish_by > 0 and rounds and warmup + rounds * interval > limit:
            shrink = limit / (warmup + rounds * interval)
            warmup, interval = int(warmup * shrink), max(1, int(interval * shrink))
        restart = c.restart_warmup if c.restart_warmup is not None else max(warmup, 1)
        return {
            "init_warmup": warmup,
            "incre_interval": interval,
            "restart_warmup": restart,
            "total_steps": total_steps,
            "rounds": rounds,
        }

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
                score = layer.pop_score()
                self._ipt[name] = c.beta1 * self._ipt[name] + (1 - c.beta1) * score
                self._unc[name] = c.beta2 * self._unc[name] + (1 - c.beta2) * abs(score - self._ipt[name])
            warmup, interval = self._schedule["init_warmup"], self._schedule["incre_interval"]
            if step > warmup and (step - warmup) % interval == 0:
                self._allocate(step, factor)
        self._refresh_scales(step, factor)

    def importance(self) -> dict[str, float]:
        """Each module's current score Ī·Ū."""
        return {n: self._ipt[n] * self._unc[n] for n in self._layers}

    @torch.no_grad()
    def _allocate(self, step: int, factor: float) -> None:
        c = self.config
        scores = self.importance()
        remaining = self.budget - self._total
        grown: dict[str, int] = {}
        for name in sorted(self._layers, key=lambda n: (-scores[n], n)):
            if len(grown) >= c.top_h or remaining <= 0:
                break
            layer = self._layers[name]
            add = min(self.rank_step, remaining, self.max_rank - layer.rank())
            if add > 0:
                self._grow(name, layer, add, step, factor)
                remaining -= add
                self._total += add
                grown[name] = add
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

    def _component_factor(self, start: int, g_start: float, step: int, g_now: float) -> float:
        """Multiplier of the trainer's learning rate for a component that started training at ``start``."""
        if start < 0:
            return 0.0
        restart = self._schedule["restart_warmup"] if self._schedule else 0
        if start == 0 or restart <= 0:
            return 1.0
        if g_now <= 0:
            return 0.0
        ramp = min(1.0, (step - start + 1) / restart)
        wanted = min(1.0, ramp * g_now / max(g_start, 1e-12))
        return wanted / g_now

    def _refresh_scales(self, step: int, factor: float) -> None:
        for name, layer in self._layers.items():
            slots = self._slots[name]
            ab = [
                self._component_factor(s, g, step, factor)
                for s, g in zip(slots["ab"], slots["g_ab"], strict=True)
            ]
            e = [
                self._component_factor(s, g, step, factor)
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
