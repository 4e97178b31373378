"""slopeft's encoder deep prompts (prefix-tuning on encoders): the attention they compute, masks, every
layer, the re-parameterisation, saving only the resolved prefix, and DeBERTa-v2."""

from __future__ import annotations

import json

import pytest
import torch

from slopeft.errors import ConfigError
from slopeft.methods.base import MethodContext
from slopeft.methods.deep_prompt import DeepPrompt, attach, attention_shape
from slopeft.methods.prompts import PrefixTuning
from tests.tolerance import assert_close

N = 3  # virtual tokens


def _bert(tiny_models, attn: str = "sdpa"):
    from transformers import AutoModelForSequenceClassification

    torch.manual_seed(0)
    return AutoModelForSequenceClassification.from_pretrained(
        tiny_models("bert"), num_labels=2, attn_implementation=attn
    ).eval()


def _inputs():
    ids = torch.tensor([[2, 40, 41, 42, 43, 3], [2, 50, 51, 3, 0, 0]])
    return {"input_ids": ids, "attention_mask": (ids != 0).long()}


def _context(arch: str = "bert") -> MethodContext:
    return MethodContext("encoder", arch, ["classifier"], "SEQ_CLS")


def test_a_layer_attends_to_prefix_then_tokens_exactly(tiny_models):
    """One self-attention layer with the prefix equals softmax(q·[Kp; K]ᵀ/√d + mask)·[Vp; V] by hand."""
    model = _bert(tiny_models, "eager")
    layers, heads, head_dim = attention_shape(model)
    prompt = DeepPrompt(layers, heads, head_dim, N).eval()
    attach(model, prompt)
    attention = model.bert.encoder.layer[1].attention.self
    hidden = torch.randn(2, 5, heads * head_dim)
    additive = torch.zeros(2, 1, 5, 5)
    additive[1, :, :, 3:] = torch.finfo(torch.float32).min  # the second row has two padding positions
    with torch.no_grad():
        output, _ = attention(hidden, attention_mask=additive)

        def split(x):
            return x.view(2, 5, heads, head_dim).transpose(1, 2)

        q, k, v = split(attention.query(hidden)), split(attention.key(hidden)), split(attention.value(hidden))
        pk, pv = prompt.layer(1, 2, torch.float32)
        scores = q @ torch.cat([pk, k], 2).transpose(-1, -2) / head_dim**0.5
        scores = scores + torch.cat([torch.zeros(2, 1, 5, N), additive], -1)
        expected = (scores.softmax(-1) @ torch.cat([pv, v], 2)).transpose(1, 2).reshape(2, 5, -1)
    assert_close(output, expected)


@pytest.mark.parametrize("attn", ["eager", "sdpa"])
def test_padding_does_not_change_a_row_and_attention_kinds_agree(tiny_models, attn):
    model = _bert(tiny_models, attn)
    torch.manual_seed(1)
    attach(model, DeepPrompt(*attention_shape(model), N).eval())
    inputs = _inputs()
    with torch.no_grad():
        batched = model(**inputs).logits
        alone = model(input_ids=inputs["input_ids"][1:, :4]).logits  # the padded row without its padding
    assert_close(batched[1:], alone)

    other = _bert(tiny_models, "sdpa" if attn == "eager" else "eager")
    torch.manual_seed(1)
    attach(other, DeepPrompt(*attention_shape(other), N).eval())
    with torch.no_grad():
        assert_close(other(**inputs).logits, batched)


def test_the_prefix_reaches_keys_and_values_of_every_layer(tiny_models):
    model = _bert(tiny_models)
    prompt = DeepPrompt(*attention_shape(model), N)
    attach(model, prompt)
    model(**_inputs(), labels=torch.tensor([0, 1])).loss.backward()
    layers, heads, head_dim = attention_shape(model)
    grad = prompt.prefix.grad.view(N, layers, 2, heads * head_dim)
    assert (grad.abs().sum(dim=(0, 3)) > 0).all()  # every layer's keys and values get a gradient


def test_reparameterised_prefix_saves_only_the_resolved_vectors(tiny_models, tmp_path):
    method = PrefixTuning({"prefix_projection": True, "encoder_hidden_size": 16, "num_virtual_tokens": N})
    model = method.apply(_bert(tiny_models), _context())
    trainable = {n for n, p in model.named_parameters() if p.requires_grad}
    assert trainable == {
        "deep_prompt.embedding",
        "deep_prompt.mlp.0.weight",
        "deep_prompt.mlp.0.bias",
        "deep_prompt.mlp.2.weight",
        "deep_prompt.mlp.2.bias",
        "classifier.weight",
        "classifier.bias",
    }
    with torch.no_grad():  # some "training"
        for parameter in model.parameters():
            if parameter.requires_grad:
                parameter.add_(0.1 * torch.randn_like(parameter))
    model.eval()
    method.save(model, tmp_path)

    from safetensors.torch import load_file

    saved = load_file(tmp_path / "adapter_model.safetensors")
    layers, heads, head_dim = attention_shape(model)
    assert set(saved) == {"deep_prompt.prefix", "classifier.weight", "classifier.bias"}
    assert saved["deep_prompt.prefix"].shape == (N, layers * 2 * heads * head_dim)
    config = json.loads((tmp_path / "adapter_config.json").read_text())
    assert config["peft_type"] == "SLOPEFT_DEEP_PROMPT" and config["num_layers"] == layers

    loaded = PrefixTuning(method.options_dict()).load(_bert(tiny_models), tmp_path, _context()).eval()
    assert loaded.deep_prompt.prefix is not None and not hasattr(loaded.deep_prompt, "mlp")
    with torch.no_grad():
        assert_close(loaded(**_inputs()).logits, model(**_inputs()).logits)


def test_dropout_on_the_prefix_only_in_training(tiny_models):
    model = _bert(tiny_models)
    attach(model, DeepPrompt(*attention_shape(model), N, dropout=0.5))
    model.eval()
    with torch.no_grad():
        assert torch.equal(model(**_inputs()).logits, model(**_inputs()).logits)


# -- DeBERTa-v2/v3 ---------------------------------------------------------------------------------------


def _deberta(path):
    from transformers import AutoModelForSequenceClassification

    return AutoModelForSequenceClassification.from_pretrained(path, num_labels=2).eval()


@pytest.fixture(scope="module")
def deberta_dir(tmp_path_factory):
    from transformers import DebertaV2Config, DebertaV2ForSequenceClassification

    torch.manual_seed(0)
    config = DebertaV2Config(
        vocab_size=100, hidden_size=32, num_hidden_layers=2, num_attention_heads=4, intermediate_size=64,
        max_position_embeddings=64, relative_attention=True, position_buckets=16, pos_att_type=["p2c", "c2p"],
        share_att_key=True, norm_rel_ebd="layer_norm", pooler_hidden_size=32, pad_token_id=0,
    )  # fmt: skip
    path = tmp_path_factory.mktemp("deberta")
    DebertaV2ForSequenceClassification(config).save_pretrained(path)
    return path


def test_deberta_forward_is_reproduced_exactly_without_a_prefix(deberta_dir):
    model = _deberta(deberta_dir)
    inputs = _inputs()
    with torch.no_grad():
        expected = model(**inputs).logits
        attach(model, DeepPrompt(*attention_shape(model), 0).eval())
        torch.testing.assert_close(model(**inputs).logits, expected, atol=0, rtol=0)


def test_deberta_prefix_padding_gradients_and_save_load(deberta_dir, tmp_path):
    context = MethodContext("encoder", "deberta-v2", ["classifier", "pooler"], "SEQ_CLS")
    method = PrefixTuning({"num_virtual_tokens": N})
    model = method.apply(_deberta(deberta_dir), context)
    inputs = _inputs()
    model(**inputs, labels=torch.tensor([0, 1])).loss.backward()
    layers, heads, head_dim = attention_shape(model)
    grad = model.deep_prompt.prefix.grad.view(N, layers, 2, heads * head_dim)
    assert (grad.abs().sum(dim=(0, 3)) > 0).all()

    model.eval()
    with torch.no_grad():
        batched = model(**inputs).logits
        alone = model(input_ids=inputs["input_ids"][1:, :4]).logits
    assert_close(batched[1:], alone)

    method.save(model, tmp_path)
    loaded = PrefixTuning({"num_virtual_tokens": N}).load(_deberta(deberta_dir), tmp_path, context).eval()
    with torch.no_grad():
        assert_close(loaded(**inputs).logits, batched)


def test_vocabulary_init_starts_the_prefix_at_the_frozen_models_own_keys_and_values(tiny_models, monkeypatch):
    from slopeft.methods import deep_prompt

    ids = torch.tensor([40, 41, 57])
    monkeypatch.setattr(deep_prompt, "random_vocabulary_ids", lambda model, n: ids[:n])
    adapted = PrefixTuning({"init": "vocabulary", "num_virtual_tokens": N}).apply(_bert(tiny_models).train(), _context())
    assert adapted.training  # the activations are taken in eval mode, the mode is restored
    layers, heads, head_dim = attention_shape(adapted)
    blocks = adapted.deep_prompt.prefix.detach().view(N, layers, 2, heads * head_dim)
    # the same tokens through the bare model: its first layer's key and value projections
    bare = _bert(tiny_models)
    with torch.no_grad():
        hidden = bare.bert.embeddings(input_ids=ids.view(1, -1))
        attention = bare.bert.encoder.layer[0].attention.self
        assert_close(blocks[:, 0, 0], attention.key(hidden)[0])
        assert_close(blocks[:, 0, 1], attention.value(hidden)[0])
    assert not torch.equal(blocks[:, 1, 0], blocks[:, 0, 0])  # every layer its own activations
    # a multiple-choice model (COPA) gets the same prefix: the activations come from its encoder alone
    from transformers import AutoModelForMultipleChoice

    torch.manual_seed(0)
    choices = AutoModelForMultipleChoice.from_pretrained(tiny_models("bert"))
    context = MethodContext("encoder", "bert", ["classifier"], "SEQ_CLS")
    choice_prefix = PrefixTuning({"init": "vocabulary", "num_virtual_tokens": N}).apply(choices, context).deep_prompt.prefix
    assert_close(choice_prefix.detach().view(N, layers, 2, heads * head_dim)[:, 0, 0], blocks[:, 0, 0])
    # the default keeps P-tuning v2's N(0, 1); the option is checked where it cannot apply
    torch.manual_seed(5)
    normal = PrefixTuning({"num_virtual_tokens": N}).apply(_bert(tiny_models), _context()).deep_prompt.prefix
    assert abs(float(normal.std()) - 1) < 0.2
    with pytest.raises(ConfigError, match="init must be normal or vocabulary"):
        PrefixTuning({"init": "zeros"})
    with pytest.raises(ConfigError, match="with prefix_projection the MLP produces it"):
        PrefixTuning({"init": "vocabulary", "prefix_projection": True})
    # PEFT's prefix on causal and seq2seq models keeps its own start: the recipe's init is no error there
    PrefixTuning({"init": "vocabulary"}).check(MethodContext("causal", "gemma3_text", [], "CAUSAL_LM"))


def test_random_vocabulary_ids_avoid_the_special_token_range_and_follow_the_seed(tiny_models):
    from slopeft.methods.deep_prompt import random_vocabulary_ids

    model = _bert(tiny_models)
    torch.manual_seed(3)
    first = random_vocabulary_ids(model, 50)
    torch.manual_seed(3)
    assert torch.equal(first, random_vocabulary_ids(model, 50))
    vocab = model.config.vocab_size
    assert int(first.min()) >= min(1000, vocab // 2) and int(first.max()) < vocab
