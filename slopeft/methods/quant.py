"""Helpers for slopeft's own adapter layers, and group-wise integer quantisation in pure PyTorch.

* :func:`linear_targets` finds the Linear layers a method adapts (the architecture's roles by default,
  module-name suffixes when the user names them), never inside the task head.
* :func:`quantize_groups` / :func:`dequantize_groups` implement the INT-k format QA-LoRA (Xu et al.)
  uses: weights quantised **group-wise along the input dimension** (group size L), each group with
  its own scale α and zero point β (the group minimum, a real number as in the paper:
  ``w ≈ α·q + β`` with ``q ∈ [0, 2^bits − 1]``), so a change that is constant inside a group folds
  exactly into β. Codes are packed into ``uint8`` (two 4-bit codes a byte). Scales and zero points
  are float32 whatever the model's dtype: a bf16 zero point has 8 significant bits, so folding a small
  update into it (β + δ) would round most of δ away; dequantisation also runs in float32 and only the
  finished weight is cast to the compute dtype.
* :class:`QuantLinear` is a Linear layer stored that way and dequantised on the fly (the backward pass
  recomputes the weight instead of keeping a float copy for every layer).
* :func:`tensor_bytes` counts what a model holds in memory, for the cost report.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence

import torch
from torch import nn
from torch.nn import functional as F

from slopeft.errors import ConfigError
from slopeft.methods.base import MethodContext
from slopeft.methods.targets import role_regex

ALL_LINEAR_ROLES = ("query", "key", "value", "attention_output", "ffn_in", "ffn_out")


# -- finding and replacing target layers ----------------------------------------------------------
def in_modules(name: str, modules: Iterable[str]) -> bool:
    """Whether the module or parameter ``name`` lies in (or is) one of ``modules``."""
    return any(name == m or name.startswith(m + ".") for m in modules)


def linear_targets(
    model: nn.Module,
    context: MethodContext,
    target_modules: Sequence[str] | None,
    default_roles: Sequence[str],
    method: str,
) -> list[tuple[str, nn.Linear]]:
    """The ``nn.Linear`` layers a method adapts, in module order.

    ``target_modules`` are module-name suffixes as PEFT matches them (``query`` matches
    ``...attention.self.query``); None takes ``default_roles`` of the architecture (see
    :mod:`slopeft.methods.targets`), matched exactly. The task head is never a target.
    """
    if target_modules:
        suffixes = list(target_modules)

        def wanted(name: str) -> bool:
            return any(name == s or name.endswith("." + s) for s in suffixes)

        described = f"target_modules={suffixes}"
    else:
        pattern = re.compile(role_regex(context.architecture, *default_roles))

        def wanted(name: str) -> bool:
            return pattern.fullmatch(name) is not None

        described = f"the {', '.join(default_roles)} layers of {context.architecture}"
    found = [
        (name, module)
        for name, module in model.named_modules()
        if isinstance(module, nn.Linear) and wanted(name) and not in_modules(name, context.head_modules)
    ]
    if not found:
        raise ConfigError(
            f"{method}: no Linear layer matches {described}. Name the layers with "
            f"--set {method}.target_modules=[...] (module-name suffixes such as q_proj, query)."
        )
    return found


def layer_index(name: str) -> tuple[str, int] | None:
    """``(stack, i)`` for a module inside the i-th block of a layer stack (``bert.encoder.layer.3.attention``
    → ``("bert.encoder.layer", 3)``); None outside numbered blocks. The first number in the path is the block."""
    parts = name.split(".")
    for position, part in enumerate(parts):
        if part.isdigit():
            return ".".join(parts[:position]), int(part)
    return None


def freeze_base(model: nn.Module, context: MethodContext) -> None:
    """Freezes everything except the task head (the method's own parameters are added afterwards)."""
    for name, parameter in model.named_parameters():
        parameter.requires_grad = in_modules(name, context.head_modules)


# -- group-wise integer quantisation --------------------------------------------------------------
def _check_shape(in_features: int, group_size: int, bits: int) -> None:
    if bits not in (2, 4, 8):
        raise ConfigError(f"qa-lora.bits must be 2, 4 or 8 (codes are packed into bytes), not {bits}.")
    if group_size < 1 or in_features % group_size:
        raise ConfigError(
            f"qa-lora.group_size={group_size} does not divide the layer's input size {in_features}; "
            "choose a divisor (32, 64, 128 divide every standard hidden size)."
        )


def pack_codes(codes: torch.Tensor, bits: int) -> torch.Tensor:
    """Packs integer codes (last dimension) ``8 // bits`` to a ``uint8``; low bits hold the first code."""
    per = 8 // bits
    codes = codes.to(torch.uint8).view(*codes.shape[:-1], -1, per)
    packed = torch.zeros(codes.shape[:-1], dtype=torch.uint8, device=codes.device)
    for i in range(per):
        packed |= codes[..., i] << (bits * i)
    return packed


def unpack_codes(packed: torch.Tensor, bits: int) -> torch.Tensor:
    """The inverse of :func:`pack_codes` (``uint8`` codes, last dimension ``8 // bits`` times longer)."""
    per = 8 // bits
    mask = (1 << bits) - 1
    parts = [(packed >> (bits * i)) & mask for i in range(per)]
    return torch.stack(parts, dim=-1).view(*packed.shape[:-1], packed.shape[-1] * per)


@torch.no_grad()
def quantize_groups(
    weight: torch.Tensor, group_size: int, bits: int = 4
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Quantises ``weight`` [out, in] group-wise along the input dimension.

    Each group of ``group_size`` consecutive input weights of a row gets scale
    α = (max − min) / (2^bits − 1) and zero point β = min; the code is q = round((w − β) / α).
    Dequantising gives α·q + β, at most α/2 from w.

    Returns:
        ``(packed codes [out, in·bits/8] uint8, scales [out, in/L], zeros [out, in/L])``; scales and
        zeros are float32 (see the module docstring).
    """
    out_features, in_features = weight.shape
    _check_shape(in_features, group_size, bits)
    w = weight.float().view(out_features, in_features // group_size, group_size)
    low, high = w.amin(dim=-1), w.amax(dim=-1)
    levels = (1 << bits) - 1
    # A constant group has max == min; any positive scale represents it exactly (q = 0).
    scales = ((high - low) / levels).clamp(min=torch.finfo(torch.float32).tiny)
    codes = torch.round((w - low[..., None]) / scales[..., None]).clamp(0, levels)
    packed = pack_codes(codes.view(out_features, in_features), bits)
    return packed, scales, low


def dequantize_groups(
    packed: torch.Tensor,
    scales: torch.Tensor,
    zeros: torch.Tensor,
    bits: int,
    dtype: torch.dtype | None = None,
) -> torch.Tensor:
    """The float weight [out, in] of :func:`quantize_groups`' output: α·q + β per group, computed in
    float32 and returned in ``dtype`` (default: the scales' dtype)."""
    dtype = dtype or scales.dtype
    codes = unpack_codes(packed, bits)
    out_features, groups = scales.shape
    q = codes.view(out_features, groups, -1).to(torch.float32)
    weight = q * scales[..., None].to(torch.float32) + zeros[..., None].to(torch.float32)
    return weight.view(out_features, -1).to(dtype)


class _DequantLinear(torch.autograd.Function):
    """y = x·Wᵀ + b with W dequantised in the forward and again in the backward (no float copy is kept)."""

    @staticmethod
    def forward(ctx, x, packed, scales, zeros, bias, bits):  # type: ignore[override]
        weight = dequantize_groups(packed, scales, zeros, bits, x.dtype)
        ctx.save_for_backward(packed, scales, zeros)
        ctx.bits, ctx.x_dtype = bits, x.dtype
        return F.linear(x, weight, None if bias is None else bias.to(x.dtype))

    @staticmethod
    def backward(ctx, grad_output):  # type: ignore[override]
        packed, scales, zeros = ctx.saved_tensors
        grad_x = None
        if ctx.needs_input_grad[0]:
            weight = dequantize_groups(packed, scales, zeros, ctx.bits, grad_output.dtype)
            grad_x = (grad_output @ weight).to(ctx.x_dtype)  # autocast: the output may be bf16, x float32
        return grad_x, None, None, None, None, None


class QuantLinear(nn.Module):
    """A frozen Linear layer stored as group-wise INT-k codes (see :func:`quantize_groups`).

    Buffers ``qweight`` (packed ``uint8`` codes), ``scales`` and ``zeros`` ([out, in / group_size],
    float32); the bias, if any, stays a frozen parameter in the layer's dtype, which ``weight_dtype``
    remembers (the dtype :attr:`weight` is returned in).
    """

    def __init__(self, linear: nn.Linear, group_size: int = 32, bits: int = 4) -> None:
        super().__init__()
        self.in_features, self.out_features = linear.in_features, linear.out_features
        self.group_size, self.bits = group_size, bits
        self.weight_dtype = linear.weight.dtype
        packed, scales, zeros = quantize_groups(linear.weight.detach(), group_size, bits)
        self.register_buffer("qweight", packed)
        self.register_buffer("scales", scales)
        self.register_buffer("zeros", zeros)
        self.bias = (
            None if linear.bias is None else nn.Parameter(linear.bias.detach().clone(), requires_grad=False)
        )

    @property
    def weight(self) -> torch.Tensor:
        """The dequantised weight in the layer's dtype (some models read ``layer.weight.dtype``; T5 does)."""
        return dequantize_groups(self.qweight, self.scales, self.zeros, self.bits, self.weight_dtype)

    def base_forward(self, x: torch.Tensor) -> torch.Tensor:
        return _DequantLinear.apply(x, self.qweight, self.scales, self.zeros, self.bias, self.bits)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.base_forward(x)

    def extra_repr(self) -> str:
        return (
            f"in_features={self.in_features}, out_features={self.out_features}, bits={self.bits}, "
            f"group_size={self.group_size}, bias={self.bias is not None}"
        )


def tensor_bytes(tensors: Iterable[torch.Tensor]) -> int:
    """Bytes of distinct tensors (shared storage, e.g. tied embeddings, counted once)."""
    seen: set[int] = set()
    total = 0
    for tensor in tensors:
        key = tensor.data_ptr() if tensor.numel() else id(tensor)
        if key in seen:
            continue
        seen.add(key)
        total += tensor.numel() * tensor.element_size()
    return total


def model_bytes(model: nn.Module) -> int:
    """Bytes of a model's parameters and buffers (quantised ``uint8`` codes count one byte each)."""
    return tensor_bytes([*model.parameters(), *model.buffers()])


__all__ = [
    "ALL_LINEAR_ROLES",
    "QuantLinear",
    "dequantize_groups",
    "freeze_base",
    "in_modules",
    "layer_index",
    "linear_targets",
    "model_bytes",
    "pack_codes",
    "quantize_groups",
    "tensor_bytes",
    "unpack_codes",
]
