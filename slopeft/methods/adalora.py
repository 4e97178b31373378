"""AdaLoRA (Zhang et al. 2023, "Adaptive Budget Allocation for Parameter-Efficient Fine-Tuning") on PEFT.

The update is SVD-shaped, P·Λ·Q; every singular triplet gets an importance score from the
sensitivity |w·∇w| smoothed by two exponential moving averages (Ī, Ū; score Ī·Ū), and the total
rank budget shrinks on a cubic schedule from ``init_r`` to ``target_r`` per module between the
warm-up (``tinit``) and the final phase (``tfinal``). PEFT implements the layers and the
allocator; this module wires them into slopeft's loop:

* ``total_step``: PEFT needs it in the config before the model is wrapped, but the number of
  optimiser steps is only known inside :meth:`Trainer.fit`. :meth:`AdaLora.apply` builds the
  config with placeholders and the first :meth:`on_step_end` call fixes the real schedule
  from the trainer's ``total_steps`` (``set_total_steps``; the allocator reads the same config
  object). ``adalora.total_step`` overrides it.
* ``update_and_allocate(step)`` reads every adapter parameter's gradient, but the trainer calls
  ``on_step_end`` after ``zero_grad``. Hooks keep a reference to each adapter gradient as it is
  accumulated, and ``on_step_end`` hands them to the allocator (PEFT's documented order: after
  ``optimizer.step()``, before ``zero_grad()``).
* The orthogonal regulariser: PEFT adds it inside ``AdaLoraModel.forward`` only when the wrapped
  model returns a loss and PEFT routes the call through it — not for multiple choice (task type
  None: ``PeftModel.forward`` calls the bare model) and not when the trainer computes a
  class-weighted loss from logits. So slopeft adds it in :meth:`extra_loss` for every task and
  sets PEFT's own weight to 0 during training (the saved config keeps the real value).

Learning rate: the recipe (``slopeft/resources/recipes/adalora.yaml``) is 2e-3, the best of the sweep on
e5-small-multilingual and 1,600 SI-NLI rows (1e-3 0.448, 2e-3 0.464, 4e-3 0.427; one seed, 440
validation rows).
"""

from __future__ import annotations

import warnings
import weakref
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn

from slopeft.config import check_modules, check_range
from slopeft.errors import ConfigError
from slopeft.methods.base import METHODS, MethodContext
from slopeft.methods.lora import PeftMethod
from slopeft.methods.targets import ROLES, modules_for

_ADAPTER = "default"


@dataclass
class AdaLoraOptions:
    init_r: int = 12
    """Initial rank of every adapted matrix (the paper starts at 1.5 × the target budget)."""
    target_r: int = 8
    """Average rank per adapted matrix left after pruning (the final budget is target_r × matrices)."""
    alpha: float = 32.0
    """Scaling numerator; PEFT divides by the (initial) rank, like LoRA's alpha / r."""
    dropout: float = 0.1
    """Dropout on the adapter's input."""
    target_modules: list[str] | None = None
    """Module-name suffixes to adapt; default: every weight matrix the paper adapts (query, key,
    value, attention output, both MLP layers)."""
    tinit: float = 0.1
    """Warm-up without pruning: below 1 a share of the total steps, from 1 on a number of steps.
    The paper's GLUE runs warm up for about 10–15% of training."""
    tfinal: float = 0.3
    """Final phase with the budget fixed: a share of the total steps (below 1) or steps (from 1 on).
    The paper's GLUE runs keep 30–50% of training for it."""
    deltaT: int = 10
    """Steps between two budget re-allocations (the paper uses 1 to 100; 10 is PEFT's examples' value)."""
    beta1: float = 0.85
    """EMA coefficient of the sensitivity Ī (the paper's 0.85)."""
    beta2: float = 0.85
    """EMA coefficient of the uncertainty Ū (the paper's 0.85)."""
    orth_reg_weight: float = 0.1
    """Coefficient γ of the orthogonality regulariser on P and Q (the paper's 0.1)."""
    total_step: int = 0
    """Total optimiser steps of the schedule; 0 takes the trainer's number of steps."""

    def __post_init__(self) -> None:
        if not 0 < self.target_r < self.init_r:
            raise ConfigError(
                f"adalora needs 0 < target_r < init_r (got target_r={self.target_r}, init_r={self.init_r}): "
                "AdaLoRA prunes the rank from init_r down to target_r. For a fixed rank use lora."
            )
        check_range(self, "adalora", "alpha", low=0, low_open=True)
        check_range(self, "adalora", "dropout", low=0, high=1, high_open=True)
        check_modules(self, "adalora", "target_modules")
        check_range(self, "adalora", "tinit", low=0)
        check_range(self, "adalora", "tfinal", low=0)
        check_range(self, "adalora", "deltaT", low=1)
        check_range(self, "adalora", "beta1", low=0, high=1, low_open=True, high_open=True)
        check_range(self, "adalora", "beta2", low=0, high=1, low_open=True, high_open=True)
        check_range(self, "adalora", "orth_reg_weight", low=0)
        check_range(self, "adalora", "total_step", low=0, hint="0 takes the trainer's number of steps")


@METHODS.register("adalora")
class AdaLora(PeftMethod):
    name = "adalora"
    config_class = AdaLoraOptions
    # The paper's DeBERTaV3-base GLUE learning rates run from 5e-4 to 2.2e-3; 1e-3 is in the middle.

    def __init__(self, options: dict[str, Any] | None = None) -> None:
        super().__init__(options)  # AdaLoraOptions.__post_init__ checks the options
        self._model: weakref.ReferenceType[nn.Module] | None = None
        self._grads: dict[str, torch.Tensor] = {}
        self._hooks: list[Any] = []
        self._total_steps: int | None = None

    # -- the schedule ---------------------------------------------------------------------------
    def schedule(self, total_steps: int) -> tuple[int, int, int]:
        """(tinit, tfinal, total_step) in steps for a run of ``total_steps`` optimiser steps."""
        c = self.config
        total = c.total_step or total_steps

        def steps(value: float) -> int:
            return int(value * total) if value < 1 else int(value)

        tinit, tfinal = steps(c.tinit), steps(c.tfinal)
        if total < 1 or tinit >= total - tfinal:
            raise ConfigError(
                f"adalora's schedule leaves no pruning phase: tinit={tinit} and tfinal={tfinal} steps of "
                f"{total} in all (pruning runs between step tinit and total - tfinal). Lower "
                "adalora.tinit / adalora.tfinal or train longer."
            )
        return tinit, tfinal, total

    def set_total_steps(self, model: nn.Module, total_steps: int) -> None:
        """Fixes the pruning schedule for a run of ``total_steps`` steps (the allocator shares this config)."""
        tinit, tfinal, total = self.schedule(total_steps)
        config = _adalora_model(model).peft_config[_ADAPTER]
        config.tinit, config.tfinal, config.total_step = tinit, tfinal, total
        self._total_steps = total_steps

    def peft_config(self, context: MethodContext):
        from peft import AdaLoraConfig

        c = self.config
        # Without adalora.total_step the schedule is unknown until the trainer's first step: PEFT gets
        # placeholders that pass its validation, and set_total_steps replaces them at step 1.
        tinit, tfinal, total = self.schedule(c.total_step) if c.total_step else (0, 0, 1)
        return AdaLoraConfig(
            init_r=c.init_r,
            target_r=c.target_r,
            lora_alpha=c.alpha,
            lora_dropout=c.dropout,
            target_modules=c.target_modules or modules_for(context.architecture, *ROLES),
            tinit=tinit,
            tfinal=tfinal,
            deltaT=c.deltaT,
            beta1=c.beta1,
            beta2=c.beta2,
            orth_reg_weight=0.0,  # added by extra_loss for every task type, see the module docstring
            total_step=total,
            **self.common(context),
        )

    def apply(self, model: nn.Module, context: MethodContext) -> nn.Module:
        peft_model = super().apply(model, context)
        self._model = weakref.ref(peft_model)
        self._grads = {}
        for hook in self._hooks:
            hook.remove()
        self._hooks = []
        for name, parameter in peft_model.named_parameters():
            if _is_adapter_parameter(name) and parameter.requires_grad:
                self._hooks.append(parameter.register_post_accumulate_grad_hook(self._keep_grad(name)))
        return peft_model

    def _keep_grad(self, name: str):
        def hook(parameter: torch.Tensor) -> None:
            self._grads[name] = parameter.grad

        return hook

    # -- training hooks -------------------------------------------------------------------------
    def on_step_end(self, model: nn.Module, step: int, total_steps: int) -> None:
        if self._total_steps != total_steps:
            self.set_total_steps(model, total_steps)
        parameters = dict(model.named_parameters())
        restored = []
        for name, grad in self._grads.items():
            parameter = parameters.get(name)
            if parameter is not None and parameter.grad is None:
                parameter.grad = grad
                restored.append(parameter)
        try:
            # Steps count from 1 here, so the final allocation (step == total - tfinal) happens.
            _adalora_model(model).update_and_allocate(step)
        finally:
            for parameter in restored:
                parameter.grad = None
            self._grads = {}

    def extra_loss(self, model: nn.Module) -> torch.Tensor | None:
        weight = self.config.orth_reg_weight
        if not weight:
            return None
        return weight * orthogonal_regulariser(model)

    def state_dict(self) -> dict[str, Any]:
        model = self._model() if self._model is not None else None
        if model is None:
            return {}
        allocator = _adalora_model(model).rankallocator
        config = _adalora_model(model).peft_config[_ADAPTER]
        return {
            "ipt": dict(allocator.ipt),
            "exp_avg_ipt": dict(allocator.exp_avg_ipt),
            "exp_avg_unc": dict(allocator.exp_avg_unc),
            "rank_pattern": config.rank_pattern,
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        model = self._model() if self._model is not None else None
        if not state or model is None:
            return
        allocator = _adalora_model(model).rankallocator
        allocator.ipt = dict(state["ipt"])
        allocator.exp_avg_ipt = dict(state["exp_avg_ipt"])
        allocator.exp_avg_unc = dict(state["exp_avg_unc"])
        _adalora_model(model).peft_config[_ADAPTER].rank_pattern = state.get("rank_pattern")

    # -- saving and loading ---------------------------------------------------------------------
    def load(self, base: nn.Module, adapter_dir: Path, context: MethodContext) -> nn.Module:
        with warnings.catch_warnings():
            # PEFT's generic LoRA check reads AdaLoRA's rank_pattern (which triplets each lora_E keeps) as
            # LoRA's per-module ranks and warns that its keys match no module; AdaLoRA's loader uses it.
            warnings.filterwarnings(
                "ignore", message="The following rank_pattern keys", category=RuntimeWarning
            )
            model = super().load(base, adapter_dir, context)
        adalora = _adalora_model(model)
        # PEFT leaves trainable_adapter_name unset on a model loaded for inference, and its forward
        # then fails whenever the model returns a loss (seq2seq candidate scoring passes labels).
        # As in training, the forward adds no regulariser; the loss is the task's.
        if not hasattr(adalora, "trainable_adapter_name"):
            adalora.trainable_adapter_name = _ADAPTER
        adalora.peft_config[_ADAPTER].orth_reg_weight = 0.0
        return model

    def save(self, model: nn.Module, out_dir: Path) -> None:
        adalora = _adalora_model(model)
        config = adalora.peft_config[_ADAPTER]
        if config.rank_pattern:
            # PEFT saves only the kept triplets; mask the live model the same way so that it predicts
            # like the saved adapter (the trainer may have restored weights from before the last pruning).
            adalora.rankallocator.mask_using_rank_pattern(adalora.model, config.rank_pattern)
        config.orth_reg_weight = self.config.orth_reg_weight
        try:
            model.save_pretrained(str(out_dir))
        finally:
            config.orth_reg_weight = 0.0


def _is_adapter_parameter(name: str) -> bool:
    return any(f"{kind}.{_ADAPTER}" in name for kind in ("lora_A", "lora_B", "lora_E"))


def _adalora_model(model: nn.Module):
    from peft.tuners.adalora import AdaLoraModel

    base = getattr(model, "base_model", None)
    if not isinstance(base, AdaLoraModel):
        raise ConfigError(
            "adalora's hooks need the model that AdaLora.apply returned (a PEFT AdaLoRA model)."
        )
    return base


def orthogonal_regulariser(model: nn.Module) -> torch.Tensor:
    """AdaLoRA's R(P, Q): mean over adapted matrices of ‖PᵀP − I‖_F and ‖QQᵀ − I‖_F.

    As the authors' code (loralib ``compute_orth_regu``) and PEFT compute it: the Frobenius norm,
    not its square as the paper's formula writes, averaged over the A and B matrices.
    """
    terms = []
    for name, parameter in model.named_parameters():
        if not parameter.requires_grad or parameter.numel() == 0:
            continue
        if f"lora_A.{_ADAPTER}" in name:
            cov = parameter @ parameter.T
        elif f"lora_B.{_ADAPTER}" in name:
            cov = parameter.T @ parameter
        else:
            continue
        eye = torch.eye(cov.shape[0], dtype=cov.dtype, device=cov.device)
        terms.append(torch.linalg.matrix_norm(cov - eye, ord="fro"))
    if not terms:
        raise ConfigError("adalora found no lora_A/lora_B parameters to regularise.")
    return torch.stack(terms).mean()
