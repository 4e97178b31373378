"""MixedLayer: each block of rows gets its own adapter's patch around one shared computation."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from slopeft.serving.layers import BiasPatch, Ia3Patch, MixedLayer, PlanState, ReplacePatch, RowPlan, Segment


def layer_and_plan() -> tuple[MixedLayer, nn.Linear, dict[int, nn.Linear], RowPlan]:
    torch.manual_seed(0)
    base = nn.Linear(6, 4)
    state = PlanState()
    mixed = MixedLayer(base, state)
    own = {}
    # slot 1: a BitFit-style bias; slot 2: its own layer (e.g. INT4); slot 3: an (IA)³ input scale
    own[1] = nn.Linear(6, 4)
    own[1].weight = base.weight
    mixed.patches[1] = BiasPatch((own[1].bias - base.bias).detach())
    own[2] = nn.Linear(6, 4)
    mixed.patches[2] = ReplacePatch(own[2])
    scale = torch.rand(6) + 0.5
    mixed.patches[3] = Ia3Patch(scale, feedforward=True)
    own[3] = lambda x: base(x * scale)  # noqa: E731
    # rows 0-1 adapter 1, row 2 no adapter (slot 9 has no patch here), rows 3-4 adapter 2, row 5 adapter 3
    plan = RowPlan((Segment(1, 0, 2), Segment(9, 2, 3), Segment(2, 3, 5), Segment(3, 5, 6)), 6)
    return mixed, base, own, plan


def expected(base, own, x: torch.Tensor) -> torch.Tensor:
    return torch.cat([own[1](x[0:2]), base(x[2:3]), own[2](x[3:5]), own[3](x[5:6])])


@torch.no_grad()
def test_each_block_of_rows_gets_its_adapter():
    mixed, base, own, plan = layer_and_plan()
    x = torch.randn(6, 5, 6)
    assert torch.allclose(mixed(x), base(x))  # no plan in flight: the base layer
    with mixed._state.use(plan):
        out = mixed(x)
    assert torch.allclose(out, expected(base, own, x), atol=1e-6)


@torch.no_grad()
def test_rows_flattened_with_their_tokens_are_mixed_the_same():
    mixed, base, own, plan = layer_and_plan()
    x = torch.randn(6, 5, 6)
    with mixed._state.use(plan):
        flat = mixed(x.reshape(-1, 6)).view(6, 5, 4)
    assert torch.allclose(flat, expected(base, own, x), atol=1e-6)


def test_a_first_dimension_that_is_not_rows_is_refused():
    mixed, _, _, plan = layer_and_plan()
    with mixed._state.use(plan), pytest.raises(RuntimeError, match="does not keep rows in the first dimension"):
        mixed(torch.randn(7, 6))


def test_the_wrapper_reads_through_to_the_wrapped_layer():
    mixed, base, _, _ = layer_and_plan()
    assert mixed.weight is base.weight and mixed.in_features == 6


def test_passes_split_by_length_only_when_padding_costs_more_than_a_pass():
    from types import SimpleNamespace

    from slopeft.serving.engine import split_by_length

    jobs = [SimpleNamespace(n=n) for n in (120, 16, 118, 20, 24, 128)]
    size = lambda job: (1, job.n)  # noqa: E731
    passes = split_by_length(jobs, size, overhead=32)
    assert [[j.n for j in p] for p in passes] == [[16, 20, 24], [118, 120, 128]]
    assert [[j.n for j in p] for p in split_by_length(jobs, size, overhead=10**6)] == [[16, 20, 24, 118, 120, 128]]
    assert split_by_length(jobs, size, overhead=None) == [jobs]
    assert split_by_length([], size, overhead=32) == []
