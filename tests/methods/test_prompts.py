"""Prompt tuning, p-tuning and PEFT's prefix tuning: initialisation, options and where they apply."""

from __future__ import annotations

import pytest
import torch
from transformers import AutoTokenizer

from slopeft.errors import ConfigError
from slopeft.methods.prompts import DEFAULT_INIT_TEXT, PromptTuning
from slopeft.training.build import load_base
from tests.tolerance import assert_close

RTE, COPA = "slo-superglue/rte", "slo-superglue/copa"


def _batch(parts, n=4):
    return parts.head.collate(parts.head.encode(parts.task.examples("train")[:n], with_labels=True))


@pytest.mark.parametrize("arch", ["bert", "gemma", "t5"])
def test_prompt_starts_as_the_embeddings_of_the_init_text(run_parts, tiny_models, arch):
    parts = run_parts(arch, RTE, "prompt-tuning", num_virtual_tokens=50)
    base, context = load_base(parts)
    words = base.get_input_embeddings().weight.detach().clone()
    model = parts.method.apply(base, context)
    prompt = model.prompt_encoder["default"].embedding.weight.detach()
    tokenizer = AutoTokenizer.from_pretrained(tiny_models(arch))
    ids = tokenizer(DEFAULT_INIT_TEXT, add_special_tokens=False)["input_ids"]
    assert 1 < len(ids) < prompt.shape[0]  # the text is repeated to fill the prompt
    expected = words[torch.tensor((ids * prompt.shape[0])[: prompt.shape[0]])]
    torch.testing.assert_close(prompt, expected, atol=0, rtol=0)


def test_label_words_or_vocabulary_samples_can_initialise_the_prompt(run_parts):
    parts = run_parts("bert", RTE, "prompt-tuning", init_text="da ne", num_virtual_tokens=4)
    base, context = load_base(parts)
    words = base.get_input_embeddings().weight.detach().clone()
    prompt = parts.method.apply(base, context).prompt_encoder["default"].embedding.weight.detach()
    assert all(any(torch.equal(row, w) for w in words) for row in prompt)

    parts = run_parts("bert", RTE, "prompt-tuning", init="vocab", num_virtual_tokens=4)
    base, context = load_base(parts)
    words = base.get_input_embeddings().weight.detach().clone()
    prompt = parts.method.apply(base, context).prompt_encoder["default"].embedding.weight.detach()
    assert all(any(torch.equal(row, w) for w in words) for row in prompt)


@pytest.mark.parametrize("method", ["prompt-tuning", "p-tuning"])
def test_input_prompts_refuse_encoder_multiple_choice(run_parts, method):
    parts = run_parts("bert", COPA, method)
    with pytest.raises(ConfigError, match="multiple-choice head") as err:
        load_base(parts)  # load_base runs method.check
    assert "PEFT has no task type for multiple choice" in str(err.value)
    assert "prefix-tuning" in str(err.value)


def test_p_tuning_lstm_encoder_trains(run_parts):
    parts = run_parts("bert", RTE, "p-tuning", encoder="lstm", encoder_hidden_size=16)
    base, context = load_base(parts)
    model = parts.method.apply(base, context)
    assert model.peft_config["default"].encoder_reparameterization_type == "LSTM"
    model(**_batch(parts)).loss.backward()
    lstm = model.prompt_encoder["default"].lstm_head
    assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in lstm.parameters())


@pytest.mark.parametrize("arch", ["gemma", "t5"])
def test_peft_prefix_tuning_with_reparameterisation_saves_and_loads(run_parts, arch, tmp_path):
    parts = run_parts(arch, RTE, "prefix-tuning", prefix_projection=True, encoder_hidden_size=16)
    base, context = load_base(parts)
    model = parts.method.apply(base, context)
    assert any("transform" in n for n, p in model.named_parameters() if p.requires_grad)  # the MLP trains
    batch = _batch(parts)
    with torch.no_grad():  # move the prefix away from its initial value
        for parameter in model.parameters():
            if parameter.requires_grad:
                parameter.add_(0.1 * torch.randn_like(parameter))
    model.eval()
    parts.method.save(model, tmp_path)
    base, context = load_base(parts)
    loaded = parts.method.load(base, tmp_path, context).eval()
    with torch.no_grad():
        assert_close(loaded(**batch).logits, model(**batch).logits)


@pytest.mark.parametrize(
    ("options", "words"),
    [
        ({"init": "labels"}, "text, vocab or random"),
        ({"num_virtual_tokens": 0}, "at least 1"),
        ({"init_text": " "}, "empty"),
    ],
)
def test_invalid_prompt_tuning_options_are_config_errors(options, words):
    with pytest.raises(ConfigError, match=words):
        PromptTuning(options)


@pytest.mark.parametrize("method", ["prompt-tuning", "p-tuning", "prefix-tuning"])
@pytest.mark.parametrize("arch", ["gemma", "t5"])
def test_generation_uses_the_prompt_like_a_full_forward_pass(run_parts, arch, method):
    """Greedy ``generate`` (cached, as translation predicts) gives the logits of full forward passes.

    Without slopeft's cache shim, PEFT 0.21 on transformers 5 drops the prefix during generation and
    re-inserts the prompt before every new token.
    """
    parts = run_parts(arch, "mt/en-sl", method)
    base, context = load_base(parts)
    model = parts.method.apply(base, context).eval()
    torch.manual_seed(0)
    with torch.no_grad():  # a prompt far from its initialisation, so that a dropped prompt shows
        for parameter in model.parameters():
            if parameter.requires_grad:
                parameter.add_(torch.randn_like(parameter))
    inputs = parts.head.collate(parts.head.encode(parts.task.examples("val")[:1], with_labels=False))
    steps = 3
    with torch.no_grad():
        out = model.generate(
            **inputs,
            max_new_tokens=steps,
            do_sample=False,
            output_logits=True,
            return_dict_in_generate=True,
            pad_token_id=parts.head.pad_id,
        )
        for step, logits in enumerate(out.logits):
            if arch == "gemma":
                ids = out.sequences[:, : inputs["input_ids"].shape[1] + step]
                expected = model(input_ids=ids, attention_mask=torch.ones_like(ids)).logits[:, -1]
            else:
                expected = model(**inputs, decoder_input_ids=out.sequences[:, : step + 1]).logits[:, -1]
            assert_close(logits, expected)
