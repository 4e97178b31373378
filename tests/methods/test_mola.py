"""MoLA: experts per layer follow the pattern, top-k softmax routing, the balancing loss, save and load."""

from __future__ import annotations

import io
import json

import pytest
import torch
from rich.console import Console
from torch import nn

from slopeft.config import TrainingConfig
from slopeft.errors import ConfigError
from slopeft.methods import METHODS, MethodContext
from slopeft.methods.base import ADAPTER_CONFIG
from slopeft.methods.mola import MolaLinear, experts_per_layer, mola_layers
from tests.methods._tiny import causal_lm, classifier, logits, token_batch, train_loop, trainer_two_steps
from tests.tolerance import approx, assert_close, tolerance


@pytest.mark.parametrize(
    ("pattern", "expected"),
    [
        ("2-4-6-8", [2, 2, 2, 4, 4, 4, 6, 6, 6, 8, 8, 8]),
        ("8-6-4-2", [8, 8, 8, 6, 6, 6, 4, 4, 4, 2, 2, 2]),
        ("5-5-5-5", [5] * 12),
        ("8-2-2-8", [8, 8, 8, 2, 2, 2, 2, 2, 2, 8, 8, 8]),
        ("4", [4] * 12),
    ],
)
def test_pattern_over_twelve_layers(pattern, expected):
    assert experts_per_layer(pattern, 12) == expected
    assert sum(experts_per_layer(pattern, 12)) == sum(expected)


def test_uneven_layer_counts_keep_groups_in_order():
    assert experts_per_layer("2-4-6-8", 18) == [2] * 5 + [4] * 4 + [6] * 5 + [8] * 4
    assert experts_per_layer("2-4-6-8", 2) == [2, 6]


@pytest.mark.parametrize("pattern", ["", "2-x", "0-2"])
def test_bad_patterns_are_config_errors(pattern):
    with pytest.raises(ConfigError):
        METHODS.get("mola")({"experts": pattern})


def test_experts_per_layer_follow_the_pattern_in_a_model(tiny_models):
    method = METHODS.get("mola")({"experts": "2-8"})
    model, context = classifier(tiny_models)
    model = method.apply(model, context)
    experts = {n: layer.num_experts for n, layer in mola_layers(model).items()}
    assert experts == {
        "bert.encoder.layer.0.attention.self.query": 2,
        "bert.encoder.layer.0.attention.self.value": 2,
        "bert.encoder.layer.1.attention.self.query": 8,
        "bert.encoder.layer.1.attention.self.value": 8,
    }
    layer = mola_layers(model)["bert.encoder.layer.1.attention.self.query"]
    assert layer.lora_A.shape == (8, 8, 64) and layer.lora_B.shape == (8, 64, 8)
    assert layer.router.weight.shape == (8, 64)


def test_seq2seq_stacks_are_patterned_separately(tiny_models):
    import transformers

    model = transformers.AutoModelForSeq2SeqLM.from_pretrained(str(tiny_models("t5")))
    model = METHODS.get("mola")({"experts": "2-8"}).apply(
        model, MethodContext("seq2seq", "t5", [], "SEQ_2_SEQ_LM")
    )
    experts = {n: layer.num_experts for n, layer in mola_layers(model).items()}
    assert (
        experts["encoder.block.0.layer.0.SelfAttention.q"]
        == experts["decoder.block.0.layer.0.SelfAttention.q"]
        == 2
    )
    assert (
        experts["encoder.block.1.layer.0.SelfAttention.v"]
        == experts["decoder.block.1.layer.1.EncDecAttention.v"]
        == 8
    )


def test_router_probabilities_sum_to_one_and_top_k_gates():
    torch.manual_seed(0)
    layer = MolaLinear(nn.Linear(16, 8), num_experts=6, top_k=2, r=4, alpha=8.0, dropout=0.0)
    x = torch.randn(30, 16)
    probs = layer.router_probabilities(x)
    assert_close(probs.sum(-1), torch.ones(30))
    gates, chosen = layer.gates(probs)
    assert ((gates > 0).sum(-1) == 2).all()
    assert_close(gates.sum(-1), torch.ones(30))
    assert_close(
        gates.gather(-1, chosen), probs.gather(-1, chosen) / probs.gather(-1, chosen).sum(-1, keepdim=True)
    )
    # The layer's update is the gate-weighted sum of its two chosen experts.
    with torch.no_grad():
        layer.lora_B.normal_()
    expected = layer.base_layer(x) + layer.scaling * torch.stack(
        [
            sum(gates[t, e] * (layer.lora_B[e] @ (layer.lora_A[e] @ x[t])) for e in chosen[t].tolist())
            for t in range(30)
        ]
    )
    assert_close(layer(x), expected)


def test_balance_loss_is_one_for_a_uniform_load_and_larger_when_skewed():
    layer = MolaLinear(nn.Linear(4, 4), num_experts=4, top_k=2, r=2, alpha=4.0, dropout=0.0)
    uniform = torch.full((8, 4), 0.25)
    chosen = torch.tensor([[0, 1], [2, 3]] * 4)
    assert layer.balance_loss(uniform, chosen).item() == approx(1.0)
    skewed = torch.tensor([[0.7, 0.1, 0.1, 0.1]] * 8)
    assert layer.balance_loss(skewed, torch.tensor([[0, 1]] * 8)).item() == approx(
        4 * (0.5 * 0.7 + 0.5 * 0.1)
    )


def test_the_trainer_adds_the_balancing_loss(run_parts, tmp_path):
    from slopeft.training.build import load_base
    from slopeft.training.trainer import Trainer

    parts = run_parts("bert", "slo-superglue/rte", "mola", balance_coef=0.5)
    base, context = load_base(parts)
    model = parts.method.apply(base, context)
    trainer = Trainer(
        model,
        parts.head,
        parts.method,
        parts.task,
        TrainingConfig(max_length=32),
        tmp_path,
        0,
        console=Console(file=io.StringIO()),
    )
    batch = parts.head.collate(parts.head.encode(parts.task.examples("train")[:4], with_labels=True))
    model.train()
    torch.manual_seed(1)
    total = trainer._loss(dict(batch))
    torch.manual_seed(1)
    task_loss = model(**batch).loss
    aux = torch.stack([layer.aux_loss for layer in mola_layers(model).values()]).mean()
    assert_close(total, task_loss + 0.5 * aux)
    assert aux.item() >= 1.0 - tolerance(torch.float32, 1.0)  # E·Σ f·P is at least 1
    total.backward()
    assert all(layer.router.weight.grad is not None for layer in mola_layers(model).values())


@pytest.mark.parametrize("loader", ["encoder", "causal"])
def test_save_load_gives_the_same_predictions(tiny_models, tmp_path, loader):
    model, context = classifier(tiny_models) if loader == "encoder" else causal_lm(tiny_models)
    method = METHODS.get("mola")({})
    model = method.apply(model, context)
    train_loop(method, model, steps=3, lr=1e-2)
    assert any(layer.lora_B.abs().sum() > 0 for layer in mola_layers(model).values())
    batch = token_batch(model)
    expected = logits(model, batch)
    method.save(model, tmp_path)
    config = json.loads((tmp_path / ADAPTER_CONFIG).read_text())
    assert config["peft_type"] == "SLOPEFT_MOLA" and config["experts"] == "2-4-6-8"
    assert sorted(set(config["experts_per_module"].values())) == [2, 6]
    base, context = classifier(tiny_models) if loader == "encoder" else causal_lm(tiny_models)
    loaded = METHODS.get("mola")(method.options_dict()).load(base, tmp_path, context)
    assert_close(logits(loaded, batch), expected)


def test_mola_has_no_merge(tiny_models):
    model, context = classifier(tiny_models)
    method = METHODS.get("mola")({})
    with pytest.raises(ConfigError, match="no merge"):
        method.merge(method.apply(model, context))


@pytest.mark.parametrize("arch", ["bert", "gemma"])
def test_two_trainer_steps_give_a_finite_loss(run_parts, tmp_path, arch):
    steps, _ = trainer_two_steps(run_parts, arch, "mola", tmp_path)
    assert steps == 2
