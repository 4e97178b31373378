"""Which arithmetic a run trains in: ``training.precision`` resolved for the machine it runs on.

fp32 everywhere; bf16 and fp16 as autocast mixed precision (float32 weights and optimiser states,
matrix multiplies in half precision). On a GPU accelerate does it; on a CPU accelerate's CPU
autocast does bf16, which pays where the CPU multiplies bf16 natively (AVX512_BF16 or AMX: on a
2-core Xeon with AMX, e5-small-multilingual trained 1.3-1.5x the examples/s of fp32, see
benchmarks/README.md) and is emulated, slower than fp32, elsewhere. fp16 has no CPU autocast that
accelerate drives (its loss scaler is CUDA's), so a CPU refuses it.

``auto`` is bf16 on a GPU that supports it and fp32 on every CPU: a run id names ``auto``, so it
must mean the same arithmetic on every CPU a grid is finished on. ``fastest`` (what the quickstart
asks for) is ``auto`` except on a CPU with native bf16, where it is bf16.
"""

from __future__ import annotations

import warnings

import torch

from slopeft.config import PRECISIONS
from slopeft.errors import ConfigError


def cpu_has_native_bf16() -> bool:
    """Whether this CPU multiplies bf16 in hardware (AVX512_BF16 or AMX tiles), as PyTorch sees it."""
    cpu = getattr(torch, "cpu", None)
    checks = ("_is_avx512_bf16_supported", "_is_amx_tile_supported")
    return any(bool(getattr(cpu, name, lambda: False)()) for name in checks)


def resolve_precision(requested: str, cuda: bool | None = None, native_cpu_bf16: bool | None = None) -> str:
    """``requested`` (one of :data:`PRECISIONS`) as fp32, bf16 or fp16 on this machine.

    ``cuda`` and ``native_cpu_bf16`` default to what this machine has. Raises ConfigError for a
    precision the machine cannot train in; warns for bf16 on a CPU that only emulates it.
    """
    if requested not in PRECISIONS:
        raise ConfigError(f"training.precision must be one of {', '.join(PRECISIONS)}, not {requested!r}.")
    cuda = torch.cuda.is_available() if cuda is None else cuda
    if requested in ("auto", "fastest") and cuda:
        return "bf16" if torch.cuda.is_bf16_supported() else "fp32"
    if requested == "auto":
        return "fp32"
    native = cpu_has_native_bf16() if native_cpu_bf16 is None else native_cpu_bf16
    if requested == "fastest":
        return "bf16" if native else "fp32"
    if requested == "fp16" and not cuda:
        raise ConfigError(
            "training.precision=fp16 needs a GPU (its loss scaling is CUDA's); on a CPU use bf16, fp32 or auto."
        )
    if requested == "bf16" and not cuda and not native:
        warnings.warn(
            "training.precision=bf16 on a CPU without native bf16 (no AVX512_BF16 or AMX): PyTorch emulates "
            "it, which is slower than fp32. Use fp32 (or auto) here.",
            stacklevel=2,
        )
    return requested
