"""Half-precision checkpoints: transformers loads a bf16/fp16 checkpoint in its stored dtype, and
slopeft's own adapters, full fine-tuning and BitFit must still update float32 master weights.

The checkpoints are the tiny models of ``slopeft.models.tiny`` saved in bf16 or fp16, with their biases
made non-zero first (a pre-trained model's are; an update of 1e-6 to a zero bf16 bias survives, to a
bias of 0.5 it does not — bf16 keeps 8 significant bits)."""

from __future__ import annotations

import io

import pytest
import torch
from rich.console import Console
from torch import nn

from slopeft.config import RunConfig, TrainingConfig
from slopeft.methods.qalora import QALoraLinear
from slopeft.methods.quant import QuantLinear
from slopeft.training.build import load_base, prepare_parts
from slopeft.training.trainer import Trainer

HALF = [torch.bfloat16, torch.float16]
HALF_IDS = ["bf16", "fp16"]
OWN_ADAPTERS = ["qa-lora", "increlora", "mola", "prefix-tuning"]  # prefix-tuning: own deep prompts on encoders
RTE = "slo-superglue/rte"


@pytest.fixture(scope="session")
def half_checkpoint(tiny_models, tmp_path_factory):
    """``half_checkpoint(dtype)``: a tiny BERT folder whose weights are stored in ``dtype``."""
    import transformers
    from transformers import AutoModel, AutoTokenizer

    transformers.logging.set_verbosity_error()
    built = {}

    def get(dtype: torch.dtype):
        if dtype not in built:
            source = tiny_models("bert")
            model = AutoModel.from_pretrained(str(source))
            generator = torch.Generator().manual_seed(0)
            with torch.no_grad():
                for name, parameter in model.named_parameters():
                    if name.endswith(".bias"):
                        parameter.copy_(0.5 * torch.randn(parameter.shape, generator=generator))
            out = tmp_path_factory.mktemp(f"tiny-bert-{dtype}".replace("torch.", ""))
            model.to(dtype).save_pretrained(str(out))
            AutoTokenizer.from_pretrained(str(source)).save_pretrained(str(out))
            built[dtype] = out
        return built[dtype]

    return get


def _parts(half_checkpoint, data_root, dtype, method, **options):
    config = RunConfig(
        task=RTE,
        model=str(half_checkpoint(dtype)),
        method=method,
        data_dir=str(data_root),
        method_options=options,
        training=TrainingConfig(max_length=32),
    )
    return prepare_parts(config)


def _train(parts, model, tmp_path, steps: int, learning_rate: float = 1e-6):
    """``steps`` optimiser steps through the real Trainer at a constant, tiny learning rate."""
    config = TrainingConfig(
        max_steps=steps, epochs=1, batch_size=2, max_length=32, eval_batch_size=4,
        learning_rate=learning_rate, warmup_ratio=0.0, scheduler="constant", select_best=False,
    )
    examples = parts.task.examples("train")[: 2 * steps]
    trainer = Trainer(model, parts.head, parts.method, parts.task, config, tmp_path / "run", seed=0,
                      console=Console(file=io.StringIO()))
    trainer.fit(examples, examples[:2])
    return trainer.accelerator.unwrap_model(trainer.model)


def _share_changed(before: dict[str, torch.Tensor], model: nn.Module, names: list[str]) -> float:
    parameters = dict(model.named_parameters())
    changed = sum(int((parameters[n].detach() != before[n]).sum()) for n in names)
    return changed / sum(before[n].numel() for n in names)


@pytest.mark.parametrize("dtype", HALF, ids=HALF_IDS)
def test_the_checkpoint_loads_in_its_stored_dtype(half_checkpoint, data_root, dtype):
    base, context = load_base(_parts(half_checkpoint, data_root, dtype, "lora"))
    body = [p.dtype for n, p in base.named_parameters() if not n.startswith(tuple(context.head_modules))]
    assert set(body) == {dtype}  # what every test below starts from


@pytest.mark.parametrize("dtype", HALF, ids=HALF_IDS)
@pytest.mark.parametrize("method", OWN_ADAPTERS)
def test_own_adapters_train_float32_masters_on_a_half_precision_base(half_checkpoint, data_root, tmp_path, method, dtype):
    parts = _parts(half_checkpoint, data_root, dtype, method)
    base, context = load_base(parts)
    model = parts.method.apply(base, context)
    trainable = {n: p for n, p in model.named_parameters() if p.requires_grad}
    assert trainable and {p.dtype for p in trainable.values()} == {torch.float32}, {
        n: p.dtype for n, p in trainable.items() if p.dtype != torch.float32
    }
    # The frozen base keeps its dtype: the forward runs in it.
    assert dtype in {p.dtype for p in model.parameters() if not p.requires_grad}
    if method == "qa-lora":  # as after some training: B no longer zero, so A gets gradients (large
        # enough not to underflow in an fp16 backward, which has no loss scaling on a CPU)
        generator = torch.Generator().manual_seed(0)
        with torch.no_grad():
            for layer in (m for m in model.modules() if isinstance(m, QALoraLinear)):
                layer.lora_B.copy_(0.05 * torch.randn(layer.lora_B.shape, generator=generator))
    before = {n: p.detach().clone() for n, p in trainable.items()}
    model = _train(parts, model, tmp_path, steps=1)
    assert {p.dtype for p in model.parameters() if p.requires_grad} == {torch.float32}
    if method == "qa-lora":
        # Adam's first step moves A (|A| ~ 0.3) by about the learning rate, 1e-6: only float32 keeps that.
        names = [n for n in before if n.endswith("lora_A")]
        assert _share_changed(before, model, names) > 0.9
    if method == "prefix-tuning":
        # N(0, 1) prefix; dropout (0.1) leaves some entries without a gradient. In bf16 almost none would move.
        names = [n for n in before if n.startswith("deep_prompt.")]
        assert names and _share_changed(before, model, names) > 0.8
    head = [n for n in before if n.startswith(tuple(context.head_modules))]
    assert head and _share_changed(before, model, head) > 0.5


@pytest.mark.parametrize("dtype", HALF, ids=HALF_IDS)
@pytest.mark.parametrize("method", ["full", "bitfit", "bitfit-subset"])
def test_full_and_bitfit_update_float32_weights_on_a_half_precision_base(half_checkpoint, data_root, tmp_path, method, dtype):
    parts = _parts(half_checkpoint, data_root, dtype, method)
    base, context = load_base(parts)
    model = parts.method.apply(base, context)
    assert {p.dtype for p in model.parameters()} == {torch.float32}
    # The key bias adds the same amount to every attention score of a query, so it gets no gradient.
    biases = [n for n, p in model.named_parameters() if p.requires_grad and n.endswith(".bias")
              and not n.startswith(tuple(context.head_modules)) and ".pooler." not in n and ".key." not in n]
    before = {n: p.detach().clone() for n, p in model.named_parameters()}
    assert min(float(before[n].abs().mean()) for n in biases) > 0.1  # a bf16 step of 1e-6 would vanish
    model = _train(parts, model, tmp_path, steps=1)
    # Adam's first step moves every weight with a gradient by about the learning rate.
    assert _share_changed(before, model, biases) > 0.9


def test_bitfit_trains_a_pretrained_poolers_bias_by_default(half_checkpoint, data_root):
    pooler = "bert.pooler.dense.bias"
    for method, options, trained in (
        ("bitfit", {}, True),
        ("bitfit", {"pooler_bias": False}, False),
        ("bitfit-subset", {}, False),
    ):
        parts = _parts(half_checkpoint, data_root, torch.bfloat16, method, **options)
        base, context = load_base(parts)
        assert "bert.pooler" not in context.head_modules  # the checkpoint has its pooler
        model = parts.method.apply(base, context)
        assert dict(model.named_parameters())[pooler].requires_grad is trained, (method, options)


def test_bitfit_trains_the_documented_number_of_parameters(half_checkpoint, data_root):
    # The docs' count (README, slopeft.methods.bitfit) for an encoder of L layers, hidden size H and
    # feed-forward size F: bitfit L·(7H + F) + H (embedding LayerNorm) + H (pooler), one H fewer with
    # pooler_bias=false; bitfit-subset L·(H + F). BERT-base (L=12, H=768, F=4H): 102,912 / 102,144 / 46,080.
    counts = {}
    for method, options in (("bitfit", {}), ("bitfit", {"pooler_bias": False}), ("bitfit-subset", {})):
        parts = _parts(half_checkpoint, data_root, torch.float32, method, **options)
        base, context = load_base(parts)
        model = parts.method.apply(base, context)
        config = base.config
        counts[method, bool(options)] = sum(
            p.numel() for n, p in model.named_parameters()
            if p.requires_grad and not n.startswith(tuple(context.head_modules))
        )
    layers, hidden, ffn = config.num_hidden_layers, config.hidden_size, config.intermediate_size
    assert counts["bitfit", False] == layers * (7 * hidden + ffn) + 2 * hidden
    assert counts["bitfit", True] == layers * (7 * hidden + ffn) + hidden
    assert counts["bitfit-subset", False] == layers * (hidden + ffn)
    assert 12 * (7 * 768 + 4 * 768) + 2 * 768 == 102_912 and 12 * (768 + 4 * 768) == 46_080


def _without_adapter(layer: QALoraLinear) -> QuantLinear:
    """The quantised base layer alone (same codes, scales, zero points and bias)."""
    plain = QuantLinear.__new__(QuantLinear)
    nn.Module.__init__(plain)
    for name in ("in_features", "out_features", "group_size", "bits", "weight_dtype"):
        setattr(plain, name, getattr(layer, name))
    for name in ("qweight", "scales", "zeros"):
        plain.register_buffer(name, getattr(layer, name))
    plain.bias = layer.bias
    return plain


@pytest.mark.parametrize("dtype", HALF, ids=HALF_IDS)
def test_qa_lora_merge_is_exact_on_a_half_precision_base(half_checkpoint, data_root, dtype):
    parts = _parts(half_checkpoint, data_root, dtype, "qa-lora", r=4, group_size=16)
    base, context = load_base(parts)
    model = parts.method.apply(base, context)
    layers = [m for m in model.modules() if isinstance(m, QALoraLinear)]
    assert layers
    generator = torch.Generator().manual_seed(0)
    for layer in layers:
        assert layer.scales.dtype == layer.zeros.dtype == torch.float32
        assert layer.bias.dtype == dtype  # the frozen base stays in its dtype
        with torch.no_grad():  # a small trained update: about 1e-3 of the weights
            layer.lora_B.copy_(1e-3 * torch.randn(layer.lora_B.shape, generator=generator))
    model.eval()
    for layer in layers:
        # Compared in float32 arithmetic: the question is what the merged layer stores, not bf16 rounding
        # of a product (the layers dequantise in their input's dtype).
        x = torch.randn(3, 7, layer.in_features, generator=generator)
        plain = _without_adapter(layer)
        merged = layer.merged()
        assert merged.zeros.dtype == torch.float32 and merged.qweight.dtype == torch.uint8
        with torch.no_grad():
            base_out, unmerged, folded = plain(x), layer(x), merged(x)
        effect = (unmerged - base_out).abs().max()
        assert effect > 0
        assert (folded - unmerged).abs().max() <= 1e-3 * effect
    # The whole merged model still runs in the checkpoint's dtype.
    merged_model = parts.method.merge(model)
    batch = parts.head.collate(parts.head.encode(parts.task.examples("train")[:2], with_labels=True))
    with torch.no_grad():
        out = merged_model(**{k: v for k, v in batch.items() if k != "labels"}).logits
    assert torch.isfinite(out).all()


def test_qa_lora_cost_report_counts_the_checkpoints_float_size(half_checkpoint, data_root):
    parts = _parts(half_checkpoint, data_root, torch.bfloat16, "qa-lora", r=4, group_size=16)
    base, context = load_base(parts)
    model = parts.method.apply(base, context)
    report = parts.method.cost_report(model)
    layers = [m for m in model.modules() if isinstance(m, QALoraLinear)]
    assert report["float_target_bytes"] == sum(2 * m.in_features * m.out_features for m in layers)  # bf16
