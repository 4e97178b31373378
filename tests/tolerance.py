"""Float comparisons that rounding cannot break: tolerances relative to the values' scale and dtype.

Two computations of the same float32 values that sum in another order (another thread count, a
rebuilt model, a batch of another shape) differ by a few units of float32's epsilon (1.19e-7) times
the magnitude of what was summed — not by a fixed number: logits of 5 differ more than logits of
0.05, and no absolute ``atol=1e-6`` survives every machine. So every float comparison of model
outputs in this suite goes through :func:`assert_close` / :func:`approx`, which allow ``ulps`` (256
by default: 3.1e-5 relative in float32) epsilons of the compared dtype at the values' scale (the
largest magnitude among them, or one the caller names, e.g. the outputs a difference was taken of).
Exact comparisons stay exact where a value is copied, not computed (codes, predictions, masks).
"""

from __future__ import annotations

from typing import Any

import pytest
import torch

ULPS = 256
"""Epsilons allowed at the values' scale: well above summation-order noise (measured: under 20),
far below any change a bug makes (a dropped adapter or head moves logits by 1e-3 and more)."""


def _float_dtype(*tensors: torch.Tensor) -> torch.dtype:
    """The least precise floating dtype among ``tensors`` (float32 when none is floating)."""
    dtypes = [t.dtype for t in tensors if t.is_floating_point()]
    return max(dtypes, key=lambda d: torch.finfo(d).eps) if dtypes else torch.float32


def tolerance(dtype: torch.dtype, scale: float, ulps: float = ULPS) -> float:
    """``ulps`` epsilons of ``dtype`` at magnitude ``scale`` (at least the dtype's smallest normal)."""
    finfo = torch.finfo(dtype)
    return ulps * finfo.eps * max(float(scale), finfo.tiny)


def assert_close(actual: Any, expected: Any, *, scale: float | None = None, ulps: float = ULPS, msg: str | None = None):
    """``actual`` equals ``expected`` within :func:`tolerance` of their dtype at their scale.

    ``scale`` defaults to the largest magnitude in either; pass the magnitude of the values a
    difference was computed from when comparing differences.
    """
    actual, expected = torch.as_tensor(actual), torch.as_tensor(expected)
    dtype = _float_dtype(actual, expected)
    if scale is None:
        scale = max(float(actual.detach().abs().max()), float(expected.detach().abs().max()), 0.0)
    atol = tolerance(dtype, scale, ulps)
    torch.testing.assert_close(
        actual.detach().to(torch.float64), expected.detach().to(torch.float64), atol=atol, rtol=0, msg=msg
    )


def approx(expected: Any, *, dtype: torch.dtype = torch.float32, scale: float | None = None, ulps: float = ULPS):
    """``pytest.approx`` for a value computed in ``dtype``: ``ulps`` epsilons at ``scale`` (default:
    the expected value's magnitude, at least 1 for an expected 0 whose terms were of order 1)."""
    if scale is None:
        values = expected if isinstance(expected, list | tuple) else [expected]
        scale = max([abs(float(v)) for v in values] + [1.0 if all(v == 0 for v in values) else 0.0])
    eps = torch.finfo(dtype).eps
    return pytest.approx(expected, rel=ulps * eps, abs=tolerance(dtype, scale, ulps))
