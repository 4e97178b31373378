"""Layers of the shared base model that apply a different adapter to each block of rows.

The scheduler sorts a batch so that the rows of one adapter are contiguous and announces the
blocks in a :class:`RowPlan`. A :class:`MixedLayer` wraps one layer of the shared model (a Linear
or LayerNorm) and holds, per loaded adapter, a :class:`Patch`: what that adapter does to this
layer. Its forward runs the base layer once for all rows (the shared GEMM), then lets each
block's patch change its own rows:

* :class:`PeftLoraPatch` — PEFT LoRA and DoRA: ``+ s·B·A·x`` (DoRA rescales through PEFT's own
  variant code), computed on the block's rows only;
* :class:`AdaLoraPatch` — PEFT AdaLoRA's ``+ (x·(A⊙E)ᵀ·Bᵀ)·s / r``;
* :class:`DeltaPatch` — slopeft's own low-rank layers (IncreLoRA, MoLA), through their ``delta``;
* :class:`Ia3Patch` — (IA)³: the block's outputs (or, for the MLP output layer, inputs) rescaled;
* :class:`BiasPatch` — BitFit: the block's outputs get the difference of the trained bias;
* :class:`ReplacePatch` — the adapter's own layer computes the block (QA-LoRA's INT4 layers,
  QLoRA's NF4 layers): the rest of the model is still shared.

Rows are the first dimension of every activation (batch × sequence × features), or batch ×
sequence flattened row by row (OPT's MLP); a layer whose input's first dimension is neither
raises instead of mixing rows up.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn
from torch.nn import functional as F


@dataclass(frozen=True)
class Segment:
    """Rows ``start:end`` of the batch belong to the adapter in ``slot``."""

    slot: int
    start: int
    end: int


@dataclass(frozen=True)
class RowPlan:
    """Which adapter each row of the batch in flight belongs to, as contiguous segments."""

    segments: tuple[Segment, ...]
    rows: int

    @classmethod
    def single(cls, slot: int, rows: int) -> RowPlan:
        """All ``rows`` rows for one adapter."""
        return cls((Segment(slot, 0, rows),), rows)


class PlanState:
    """The plan of the forward pass in flight, shared by every :class:`MixedLayer` of one base model.

    Only the engine thread runs forward passes, so one attribute is enough (no thread-locals).
    """

    def __init__(self) -> None:
        self.plan: RowPlan | None = None

    @contextmanager
    def use(self, plan: RowPlan | None) -> Iterator[None]:
        previous, self.plan = self.plan, plan
        try:
            yield
        finally:
            self.plan = previous


class Patch:
    """What one adapter does to one layer of the shared model, for that adapter's rows."""

    scales_input = False  # transform_input changes the layer's input before the shared GEMM
    replaces = False  # replace computes the rows instead of the shared layer

    def transform_input(self, x: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def update(self, x: torch.Tensor, out: torch.Tensor) -> None:
        """Changes ``out`` (the shared layer's output for these rows, a view) in place; ``x`` is their input."""

    def replace(self, x: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError


class PeftLoraPatch(Patch):
    """A PEFT LoRA layer: vanilla LoRA as two matrix products on the rows (PEFT's formula, without its
    per-call module overhead, which a batch of many small blocks would pay many times); variants such
    as DoRA through PEFT's own variant code."""

    def __init__(self, module: nn.Module, adapter: str = "default") -> None:
        self.module, self.adapter = module, adapter
        lora_a, lora_b = module.lora_A[adapter], module.lora_B[adapter]
        self.variant = module.lora_variant.get(adapter)
        # Eval-mode dropout is the identity; the weights are the module's own tensors (not copies).
        self.a, self.b, self.b_bias = lora_a.weight, lora_b.weight, lora_b.bias
        self.scaling = module.scaling[adapter]

    def update(self, x: torch.Tensor, out: torch.Tensor) -> None:
        m, a = self.module, self.adapter
        x = m._cast_input_dtype(x, self.a.dtype)
        if self.variant is not None:
            # DoRA: the variant reads the base output (minus bias) to rescale it by magnitude / ‖W + s·BA‖.
            out.copy_(self.variant.forward(m, active_adapter=a, x=x, result=out))
        else:
            out.add_(F.linear(F.linear(x, self.a), self.b, self.b_bias), alpha=self.scaling)


class AdaLoraPatch(Patch):
    """A PEFT AdaLoRA SVD layer: ``(x·(A⊙E)ᵀ·Bᵀ)·scaling / (ranknum + 1e-5)``, as PEFT computes it."""

    def __init__(self, module: nn.Module, adapter: str = "default") -> None:
        self.module, self.adapter = module, adapter

    def update(self, x: torch.Tensor, out: torch.Tensor) -> None:
        m, a = self.module, self.adapter
        lora_a, lora_b, lora_e = m.lora_A[a], m.lora_B[a], m.lora_E[a]
        x = m._cast_input_dtype(x, lora_a.dtype)
        ranknum = m.ranknum[a] + 1e-5
        out.add_((m.lora_dropout[a](x) @ (lora_a * lora_e).T @ lora_b.T) * m.scaling[a] / ranknum)


class DeltaPatch(Patch):
    """One of slopeft's own low-rank layers (IncreLoRA, MoLA) through its ``delta(x)``."""

    def __init__(self, module: nn.Module) -> None:
        self.module = module

    def update(self, x: torch.Tensor, out: torch.Tensor) -> None:
        out.add_(self.module.delta(x))


class Ia3Patch(Patch):
    """(IA)³: a learned vector rescales the layer's output, or its input for the MLP output layer."""

    def __init__(self, vector: torch.Tensor, feedforward: bool) -> None:
        self.vector = vector.flatten()
        self.scales_input = feedforward

    def transform_input(self, x: torch.Tensor) -> torch.Tensor:
        return (x.to(self.vector.dtype) * self.vector).to(x.dtype)

    def update(self, x: torch.Tensor, out: torch.Tensor) -> None:
        if not self.scales_input:
            out.mul_(self.vector.to(out.dtype))


class BiasPatch(Patch):
    """BitFit: the trained bias minus the shared one, added to the layer's output."""

    def __init__(self, delta: torch.Tensor) -> None:
        self.delta = delta

    def update(self, x: torch.Tensor, out: torch.Tensor) -> None:
        out.add_(self.delta.to(out.dtype))


class ReplacePatch(Patch):
    """The adapter's own layer computes its rows (its base differs: QA-LoRA INT4, QLoRA NF4)."""

    replaces = True

    def __init__(self, module: nn.Module) -> None:
        self.module = module

    def replace(self, x: torch.Tensor) -> torch.Tensor:
        return self.module(x)


class MixedLayer(nn.Module):
    """Wraps one layer of the shared model; each adapter's :class:`Patch` acts on that adapter's rows."""

    def __init__(self, base: nn.Module, state: PlanState) -> None:
        super().__init__()
        self.base = base
        self.patches: dict[int, Patch] = {}
        self._state = state

    def __getattr__(self, name: str) -> Any:
        # Model code reads attributes of the layer it called (``.weight.dtype``, ``.in_features``).
        try:
            return super().__getattr__(name)
        except AttributeError:
            return getattr(self._modules["base"], name)

    def forward(self, x: torch.Tensor, *args: Any, **kwargs: Any) -> torch.Tensor:
        plan = self._state.plan
        if plan is None or not self.patches:
            return self.base(x, *args, **kwargs)
        active = [(self.patches[s.slot], s) for s in plan.segments if s.slot in self.patches]
        if not active:
            return self.base(x, *args, **kwargs)
        if x.shape[0] % plan.rows:
            raise RuntimeError(
                f"A mixed batch of {plan.rows} rows reached a layer with input of shape {tuple(x.shape)}: this "
                "architecture does not keep rows in the first dimension, so its adapters cannot be mixed."
            )
        # Some decoders (OPT) flatten (batch, sequence) into the first dimension before the MLP;
        # row-major flattening keeps each row's tokens contiguous, so segments scale by the length.
        k = x.shape[0] // plan.rows
        if k != 1:
            active = [(p, Segment(s.slot, s.start * k, s.end * k)) for p, s in active]
        x_in = x
        if any(p.scales_input for p, _ in active):
            x_in = x.clone()
            for patch, s in active:
                if patch.scales_input:
                    x_in[s.start : s.end] = patch.transform_input(x[s.start : s.end])
        replaced = sorted(((s.start, s.end, p) for p, s in active if p.replaces), key=lambda t: t[0])
        if replaced:
            pieces, position = [], 0
            for start, end, patch in replaced:
                if start > position:
                    pieces.append(self.base(x_in[position:start], *args, **kwargs))
                pieces.append(patch.replace(x[start:end]))
                position = end
            if position < x.shape[0]:
                pieces.append(self.base(x_in[position:], *args, **kwargs))
            out = torch.cat(pieces, dim=0)
        else:
            out = self.base(x_in, *args, **kwargs)
        for patch, s in active:
            if not patch.replaces:
                patch.update(x[s.start : s.end], out[s.start : s.end])
        return out

    def extra_repr(self) -> str:
        return f"adapters={sorted(self.patches)}"


def mixed_layer(model: nn.Module, name: str, state: PlanState) -> MixedLayer:
    """The :class:`MixedLayer` at ``name`` in ``model``, wrapping the layer there on first use."""
    module = model.get_submodule(name)
    if isinstance(module, MixedLayer):
        return module
    wrapper = MixedLayer(module, state)
    model.set_submodule(name, wrapper)
    return wrapper


def unwrap(module: nn.Module) -> nn.Module:
    """The shared layer inside a :class:`MixedLayer` (or ``module`` itself)."""
    return module.base if isinstance(module, MixedLayer) else module
