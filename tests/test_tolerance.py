"""The suite's float tolerance (tests/tolerance.py) absorbs rounding and nothing more."""

from __future__ import annotations

import pytest
import torch

from tests.tolerance import ULPS, approx, assert_close, tolerance

EPS32 = torch.finfo(torch.float32).eps


def test_summation_order_noise_passes_at_any_scale():
    torch.manual_seed(0)
    for scale in (1e-3, 1.0, 50.0):
        x = torch.randn(64, 256) * scale
        w = torch.randn(256, 8)
        # The same product summed in two orders: the rounding grows with the values' magnitude.
        one = x @ w
        other = (x[:, :128] @ w[:128]) + (x[:, 128:] @ w[128:])
        assert_close(one, other)


def test_a_real_change_fails():
    logits = torch.tensor([[0.3, -1.2], [2.0, 0.1]])
    with pytest.raises(AssertionError):
        assert_close(logits + 1e-3, logits)  # a dropped adapter moves logits by far more
    with pytest.raises(AssertionError):
        assert_close(logits * (1 + 4 * ULPS * EPS32), logits)
    assert 1.0 + 1e-3 != approx(1.0)


def test_the_tolerance_follows_the_dtype_and_the_scale():
    assert tolerance(torch.float32, 2.0) == pytest.approx(2 * tolerance(torch.float32, 1.0))
    assert tolerance(torch.bfloat16, 1.0) > 1000 * tolerance(torch.float32, 1.0)
    half = torch.tensor([1.0, 2.0], dtype=torch.bfloat16)
    assert_close(half, torch.tensor([1.0, 2.0]) + 1e-3)  # within bf16 rounding, not within float32's
    with pytest.raises(AssertionError):
        assert_close(torch.tensor([1.0, 2.0]), torch.tensor([1.0, 2.0]) + 1e-3)
    assert 0.0 + 1e-6 == approx(0.0) and 0.0 + 1e-4 != approx(0.0)
