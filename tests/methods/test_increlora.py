"""IncreLoRA: rank starts small and grows to the budget, goes where the gradient is, and is saved with the weights."""

from __future__ import annotations

import json

import pytest
import torch
from safetensors.torch import load_file
from torch import nn

from slopeft.errors import ConfigError
from slopeft.methods import METHODS, MethodContext
from slopeft.methods.base import ADAPTER_CONFIG, ADAPTER_WEIGHTS, trainable_state
from slopeft.methods.increlora import IncreLoraLinear, increlora_layers
from tests.methods._tiny import classifier, logits, token_batch, train_loop, trainer_two_steps

# 12 modules on tiny BERT (2 layers × 6 linear layers): total rank 12 → budget 24, three modules per
# allocation, one rank each, allocations at steps 4, 6, 8 and 10.
FAST = {"init_r": 1, "target_rank": 2, "top_h": 3, "init_warmup": 2, "incre_interval": 2, "finish_by": 0}


def total_rank(model: nn.Module) -> int:
    return sum(layer.rank() for layer in increlora_layers(model).values())


def test_total_rank_starts_at_the_initial_rank_and_grows_to_the_budget(tiny_models):
    method = METHODS.get("increlora")(FAST)
    model, context = classifier(tiny_models)
    model = method.apply(model, context)
    layers = increlora_layers(model)
    assert len(layers) == 12
    assert total_rank(model) == 12  # init_r × modules
    untouched = {n: layer.lora_A.detach().clone() for n, layer in layers.items()}

    totals: dict[int, int] = {}
    train_loop(method, model, steps=12, on_step=lambda step: totals.__setitem__(step, total_rank(model)))

    assert totals == {1: 12, 2: 12, 3: 12, 4: 15, 5: 15, 6: 18, 7: 18, 8: 21, 9: 21, 10: 24, 11: 24, 12: 24}
    assert [h["step"] for h in method.history] == [4, 6, 8, 10]
    assert all(len(h["grown"]) == 3 for h in method.history)
    report = method.cost_report(model)
    assert report["total_rank"] == report["rank_budget"] == 24
    assert report["effective_parameters"] == sum(
        r * (layers[n].in_features + layers[n].out_features + 1) for n, r in report["rank_pattern"].items()
    )
    # Allocation is over: no spare components, no sensitivity tracking.
    assert all(layer.reserve == 0 and not layer.tracking for layer in layers.values())
    # Components beyond a module's last spare were never trained (their update factor is 0).
    for name, layer in layers.items():
        never_used = layer.rank() + method.rank_step
        assert torch.equal(layer.lora_A.detach()[never_used:], untouched[name][never_used:])


def test_allocation_shrinks_to_fit_a_short_run():
    method = METHODS.get("increlora")({"init_warmup": 100, "incre_interval": 100, "top_h": 5})
    method._layers, method._total = dict.fromkeys(range(72)), 72  # the authors' 72 modules at rank 1
    schedule = method._fit_schedule(total_steps=400)
    assert schedule["rounds"] == 15
    assert schedule["init_warmup"] + schedule["rounds"] * schedule["incre_interval"] <= 200  # finish_by 0.5


class Toy(nn.Module):
    """Four independent Linear layers; the loss weights layers.1.a a hundred times more than the others."""

    def __init__(self) -> None:
        super().__init__()
        self.layers = nn.ModuleList(
            [nn.ModuleDict({"a": nn.Linear(16, 16), "b": nn.Linear(16, 16)}) for _ in range(2)]
        )


def test_the_module_whose_gradient_dominates_gets_the_added_rank():
    torch.manual_seed(0)
    toy = Toy()
    method = METHODS.get("increlora")(
        {"target_modules": ["a", "b"], "top_h": 1, "init_warmup": 3, "incre_interval": 3, "finish_by": 0}
    )
    model = method.apply(toy, MethodContext("encoder", "bert", [], None))
    names = ["layers.0.a", "layers.0.b", "layers.1.a", "layers.1.b"]
    assert list(increlora_layers(model)) == names
    x, targets = torch.randn(32, 16), {n: torch.randn(32, 16) for n in names}
    weight = {n: 100.0 if n == "layers.1.a" else 1.0 for n in names}

    def loss_fn(m: nn.Module, step: int) -> torch.Tensor:
        return sum(weight[n] * ((m.get_submodule(n)(x) - targets[n]) ** 2).mean() for n in names)

    train_loop(method, model, steps=6, total_steps=30, loss_fn=loss_fn)
    assert method.history == [{"step": 6, "grown": {"layers.1.a": 1}, "total_rank": 5}]
    scores = method.importance()
    assert max(scores, key=scores.get) == "layers.1.a"
    assert method.rank_pattern(model) == {"layers.0.a": 1, "layers.0.b": 1, "layers.1.a": 2, "layers.1.b": 1}


def test_new_components_restart_their_warmup(tiny_models):
    method = METHODS.get("increlora")(FAST)  # restart warmup = init_warmup = 2 steps
    model, context = classifier(tiny_models)
    model = method.apply(model, context)
    seen = {}

    def look(step: int) -> None:
        if step in (4, 5):
            grown = next(iter(method.history[0]["grown"]))
            layer = increlora_layers(model)[grown]
            seen[step] = (layer.e_scale.tolist(), layer.ab_scale.tolist(), method._trainer_factor())

    train_loop(method, model, steps=5, total_steps=20, on_step=look)
    (e4, ab4, g4), (e5, ab5, g5) = seen[4], seen[5]
    # Slot 0 trained from step 0: it follows the trainer's schedule (factor 1).
    assert e4[0] == ab4[0] == 1.0
    # Slot 1 was the spare (A, B trained since step 0); switched on at step 4, its λ warms up again:
    # half the peak rate on the first step, then the trainer's decay relative to step 4.
    assert ab4[1] == 1.0
    assert e4[1] * g4 == pytest.approx(0.5)
    assert e5[1] * g5 == pytest.approx(min(1.0, g5 / g4))
    # Slot 2 is the new spare: its A and B start training at step 4 with the same restarted warmup.
    assert ab4[2] * g4 == pytest.approx(0.5)
    assert ab5[2] * g5 == pytest.approx(min(1.0, g5 / g4))
    assert e4[2] == 0.0
    # Slots never used do not move.
    assert ab4[3:] == [0.0] * (len(ab4) - 3)


def test_orthogonality_regulariser():
    layer = IncreLoraLinear(
        nn.Linear(8, 6), capacity=4, init_rank=1, alpha=32.0, dropout=0.0, reserve_lambda=1e-5
    )
    layer.reserve = 1  # slots 0 and 1 train
    with torch.no_grad():
        layer.lora_A.zero_()
        layer.lora_B.zero_()
        layer.lora_A[0, 0] = layer.lora_A[1, 1] = 1.0
        layer.lora_B[2, 0] = layer.lora_B[3, 1] = 1.0
        layer.lora_A[3] = 5.0  # unused slot: not part of the penalty
    assert layer.orthogonality().item() == pytest.approx(0.0)
    with torch.no_grad():
        layer.lora_A[1, 1] = 2.0  # ‖AAᵀ − I‖² gains (4 − 1)² = 9
    assert layer.orthogonality().item() == pytest.approx(9.0)


def test_save_load_keeps_each_modules_rank_and_the_predictions(tiny_models, tmp_path):
    method = METHODS.get("increlora")(FAST)
    model, context = classifier(tiny_models)
    model = method.apply(model, context)
    train_loop(method, model, steps=5)  # one allocation (step 4): three modules at rank 2
    pattern = method.rank_pattern(model)
    assert sorted(pattern.values()) == [1] * 9 + [2] * 3
    batch = token_batch(model, rows=6)
    expected = logits(model, batch)

    method.save(model, tmp_path)
    config = json.loads((tmp_path / ADAPTER_CONFIG).read_text())
    assert config["peft_type"] == "SLOPEFT_INCRELORA"
    assert config["rank_pattern"] == pattern
    saved = load_file(str(tmp_path / ADAPTER_WEIGHTS))
    for name, layer in increlora_layers(model).items():
        r = pattern[name]
        assert saved[f"{name}.lora_A"].shape == (r, layer.in_features)
        assert saved[f"{name}.lora_B"].shape == (layer.out_features, r)
        assert saved[f"{name}.lora_E"].shape == (r,)
    assert any(k.startswith("classifier.") for k in saved)

    fresh = METHODS.get("increlora")(method.options_dict())
    base, context = classifier(tiny_models)
    loaded = fresh.load(base, tmp_path, context)
    assert fresh.rank_pattern(loaded) == pattern
    torch.testing.assert_close(logits(loaded, batch), expected, atol=1e-6, rtol=0)
    assert torch.equal(logits(loaded, batch).argmax(-1), expected.argmax(-1))


def test_a_restored_snapshot_brings_its_ranks_back(tiny_models):
    """The trainer keeps the best step's parameters by name and restores them at the end; the ranks follow."""
    method = METHODS.get("increlora")(FAST)
    model, context = classifier(tiny_models)
    model = method.apply(model, context)
    snapshot: dict[str, torch.Tensor] = {}
    train_loop(
        method, model, steps=6, on_step=lambda s: snapshot.update(trainable_state(model)) if s == 3 else None
    )
    batch = token_batch(model)
    assert total_rank(model) == 18
    parameters = dict(model.named_parameters())
    with torch.no_grad():
        for name, tensor in snapshot.items():
            parameters[name].copy_(tensor)
    assert total_rank(model) == 12
    assert set(method.rank_pattern(model).values()) == {1}
    # The restored model equals a model built from the snapshot alone.
    other = METHODS.get("increlora")(FAST)
    base, context = classifier(tiny_models)
    rebuilt = other.apply(base, context)
    rebuilt_parameters = dict(rebuilt.named_parameters())
    with torch.no_grad():
        for name, tensor in snapshot.items():
            rebuilt_parameters[name].copy_(tensor)
    torch.testing.assert_close(logits(model, batch), logits(rebuilt, batch), atol=1e-6, rtol=0)


def test_merge_folds_the_update_into_the_base(tiny_models):
    method = METHODS.get("increlora")(FAST)
    model, context = classifier(tiny_models)
    model = method.apply(model, context)
    train_loop(method, model, steps=5)
    batch = token_batch(model)
    expected = logits(model, batch)
    merged = method.merge(model)
    assert not increlora_layers(merged)
    torch.testing.assert_close(logits(merged, batch), expected, atol=1e-5, rtol=0)


@pytest.mark.parametrize(
    "options",
    [{"init_r": 3, "target_rank": 2}, {"max_rank": 2, "target_rank": 4}, {"top_h": 0}, {"beta1": 1.0}],
)
def test_bad_options_are_config_errors(options):
    with pytest.raises(ConfigError):
        METHODS.get("increlora")(options)


@pytest.mark.parametrize("arch", ["bert", "gemma"])
def test_two_trainer_steps_give_a_finite_loss(run_parts, tmp_path, arch):
    steps, _ = trainer_two_steps(run_parts, arch, "increlora", tmp_path)
    assert steps == 2


def test_a_component_that_starts_late_gets_a_fresh_adam_state():
    """Its first update is Adam's first step (lr per entry), not one scaled by the tensor's step count."""
    from slopeft.methods.increlora import ComponentScaledAdamW

    torch.manual_seed(0)
    weights = nn.Parameter(torch.zeros(2, 8))  # two rank components (rows)
    factor = torch.tensor([1.0, 0.0])  # the second component starts later
    optimizer = ComponentScaledAdamW([{"params": [weights], "weight_decay": 0.0}], 1e-2, {weights: lambda: factor[:, None]})
    for step in range(1, 501):
        if step == 500:
            factor[1] = 1.0
        before = weights.detach().clone()
        weights.grad = torch.randn(2, 8) * 0.1 + 0.05  # the second component gets gradients all along
        optimizer.step()
        moved = (weights.detach() - before).abs()
        if step < 500:
            assert torch.all(moved[1] == 0)  # not started: untouched
    # Adam's first step moves every entry by lr (|m̂ / √v̂| = 1); a shared counter gave ≈ 3.2 × lr.
    assert torch.allclose(moved[1], torch.full((8,), 1e-2), rtol=1e-3)
    assert optimizer.state[weights]["component_steps"].flatten().tolist() == [500.0, 1.0]
