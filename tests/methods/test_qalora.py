"""QA-LoRA: group-wise INT4 base within its error bound, merge back into INT4 exactly, the paper's parameter count."""

from __future__ import annotations

import json

import pytest
import torch
from torch import nn
from torch.nn import functional as F

from slopeft.errors import ConfigError
from slopeft.methods import METHODS
from slopeft.methods.base import ADAPTER_CONFIG
from slopeft.methods.qalora import QALoraLinear
from slopeft.methods.quant import QuantLinear, dequantize_groups, pack_codes, quantize_groups, unpack_codes
from tests.methods._tiny import causal_lm, classifier, logits, token_batch, train_loop, trainer_two_steps
from tests.tolerance import approx, assert_close, tolerance

# Merged and unmerged outputs agree to float32 rounding at their scale (tests/tolerance.py): the fold
# changes only the zero points.


@pytest.mark.parametrize("bits", [2, 4, 8])
def test_pack_unpack_round_trip(bits):
    codes = torch.randint(0, 1 << bits, (5, 64), dtype=torch.uint8)
    packed = pack_codes(codes, bits)
    assert packed.dtype == torch.uint8 and packed.shape == (5, 64 * bits // 8)
    assert torch.equal(unpack_codes(packed, bits), codes)


@pytest.mark.parametrize("group_size", [16, 32, 64])
def test_quantise_dequantise_error_is_within_half_a_step(group_size):
    torch.manual_seed(0)
    weight = torch.randn(48, 128) * torch.rand(48, 1) * 3
    weight[0, :group_size] = 0.7  # a constant group is represented exactly
    packed, scales, zeros = quantize_groups(weight, group_size, bits=4)
    assert packed.dtype == torch.uint8 and packed.numel() == weight.numel() // 2  # two INT4 codes a byte
    assert scales.shape == zeros.shape == (48, 128 // group_size)
    error = (dequantize_groups(packed, scales, zeros, 4) - weight).abs().view(48, -1, group_size)
    bound = scales[..., None] / 2
    assert bool((error <= bound + tolerance(torch.float32, weight.abs().max())).all())
    assert error[0, 0].max().item() == approx(0.0, scale=0.7, ulps=4)  # exact but for the last bits
    # Zero points are the group minima and every code is in 0..15.
    assert_close(zeros, weight.view(48, -1, group_size).amin(-1))
    assert int(unpack_codes(packed, 4).max()) <= 15


def test_quant_linear_matches_its_dequantised_weight_forward_and_backward():
    torch.manual_seed(0)
    layer = QuantLinear(nn.Linear(64, 24), group_size=32)
    x = torch.randn(3, 5, 64, requires_grad=True)
    y = layer(x)
    weight = dequantize_groups(layer.qweight, layer.scales, layer.zeros, 4)
    x2 = x.detach().clone().requires_grad_(True)
    assert_close(y, F.linear(x2, weight, layer.bias))
    y.sum().backward()
    F.linear(x2, weight, layer.bias).sum().backward()
    assert_close(x.grad, x2.grad)
    assert not any(p.requires_grad for p in layer.parameters())


@pytest.mark.parametrize("loader", ["encoder", "causal"])
def test_trainable_parameters_follow_the_formula(tiny_models, loader):
    model, context = classifier(tiny_models) if loader == "encoder" else causal_lm(tiny_models)
    head = {
        n for n, p in model.named_parameters() if any(n.startswith(h + ".") for h in context.head_modules)
    }
    head_count = sum(p.numel() for n, p in model.named_parameters() if n in head)
    method = METHODS.get("qa-lora")({"r": 4, "group_size": 16})
    model = method.apply(model, context)
    layers = [m for m in model.modules() if isinstance(m, QALoraLinear)]
    assert len(layers) == (12 if loader == "encoder" else 14)  # every linear layer of the blocks
    trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
    # r·(D_in / L) + D_out·r per module, plus the task head.
    assert trainable - head_count == sum(4 * (m.in_features // 16) + m.out_features * 4 for m in layers)
    for layer in layers:
        assert layer.lora_A.shape == (4, layer.in_features // 16)
        assert layer.qweight.dtype == torch.uint8
    assert not hasattr(layers[0], "weight") or not isinstance(layers[0].weight, nn.Parameter)


@pytest.mark.parametrize("loader", ["encoder", "causal"])
def test_merged_int4_model_equals_the_unmerged_model(tiny_models, loader):
    torch.manual_seed(0)
    model, context = classifier(tiny_models) if loader == "encoder" else causal_lm(tiny_models)
    method = METHODS.get("qa-lora")({})
    model = method.apply(model, context)
    with torch.no_grad():  # a trained-looking adapter
        for layer in model.modules():
            if isinstance(layer, QALoraLinear):
                layer.lora_B.normal_(std=0.3)
    batch = token_batch(model)
    unmerged = logits(model, batch)
    before = method.cost_report(model)
    codes = {n: m.qweight.clone() for n, m in model.named_modules() if isinstance(m, QuantLinear)}

    merged = method.merge(model)
    assert not any(isinstance(m, QALoraLinear) for m in merged.modules())
    assert not any("lora_" in n for n, _ in merged.named_parameters())
    after = {n: m for n, m in merged.named_modules() if isinstance(m, QuantLinear)}
    assert after.keys() == codes.keys()
    assert all(torch.equal(after[n].qweight, codes[n]) for n in codes)  # still the same INT4 codes
    assert_close(logits(merged, batch), unmerged)

    report = method.cost_report(merged)
    assert report["adapter_bytes"] == 0
    assert (
        report["merged_bytes"]
        == before["merged_bytes"]
        == before["base_plus_adapter_bytes"] - before["adapter_bytes"]
    )
    # INT4 codes + a float32 scale and zero point per 32 weights: 6 bits a weight instead of 32.
    assert before["quantized_target_bytes"] == before["float_target_bytes"] * 6 // 32


def test_save_load_gives_the_same_predictions(tiny_models, tmp_path):
    method = METHODS.get("qa-lora")({})
    model, context = classifier(tiny_models)
    model = method.apply(model, context)
    train_loop(method, model, steps=3)
    batch = token_batch(model)
    expected = logits(model, batch)
    method.save(model, tmp_path)
    assert json.loads((tmp_path / ADAPTER_CONFIG).read_text())["peft_type"] == "SLOPEFT_QA_LORA"
    base, context = classifier(tiny_models)
    loaded = METHODS.get("qa-lora")(method.options_dict()).load(base, tmp_path, context)
    assert_close(logits(loaded, batch), expected)


def test_a_group_size_that_does_not_divide_the_input_is_a_config_error(tiny_models):
    model, context = classifier(tiny_models)
    with pytest.raises(ConfigError, match="group_size=48"):
        METHODS.get("qa-lora")({"group_size": 48}).apply(model, context)


@pytest.mark.parametrize("arch", ["bert", "gemma"])
def test_two_trainer_steps_give_a_finite_loss(run_parts, tmp_path, arch):
    steps, _ = trainer_two_steps(run_parts, arch, "qa-lora", tmp_path)
    assert steps == 2
