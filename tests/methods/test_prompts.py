"""Prompt tuning, p-tuning and PEFT's prefix tuning: initialisation, options, multiple choice, generation."""

from __future__ import annotations

import pytest
import torch
from transformers import AutoTokenizer

from slopeft.errors import ConfigError
from slopeft.methods import METHODS
from slopeft.methods.prompts import DEFAULT_INIT_TEXT, PromptTuning
from slopeft.training.build import load_base
from tests.methods._positions import PositionProbe, generate_to_the_end, long_examples
from tests.tolerance import assert_close

RTE, COPA = "slo-superglue/rte", "slo-superglue/copa"


def _batch(parts, n=4):
    return parts.head.collate(parts.head.encode(parts.task.examples("train")[:n], with_labels=True))


@pytest.mark.parametrize("arch", ["bert", "gemma", "t5"])
def test_prompt_starts_as_the_embeddings_of_the_init_text(run_parts, tiny_models, arch):
    parts = run_parts(arch, RTE, "prompt-tuning", max_length=96, num_virtual_tokens=50)
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
@pytest.mark.parametrize("arch", ["bert", "xlm-roberta"])
def test_multiple_choice_gets_the_same_prompt_in_front_of_every_choice(run_parts, arch, method):
    parts = run_parts(arch, COPA, method, num_virtual_tokens=5)
    base, context = load_base(parts)
    assert context.task_type is None  # PEFT has no task type for multiple choice
    model = parts.method.apply(base, context)
    batch = _batch(parts, n=3)
    seen = {}

    def capture(module, args, kwargs):
        seen.update(kwargs)

    model.base_model.register_forward_pre_hook(capture, with_kwargs=True)
    model.eval()
    with torch.no_grad():
        logits = model(**batch).logits
        prompt = model.resolved_prompt()
        words = base.get_input_embeddings()(batch["input_ids"])
    embeds = seen["inputs_embeds"]  # (examples, choices, 5 + length, hidden)
    assert embeds.shape[:2] == batch["input_ids"].shape[:2] == logits.shape
    for example in range(3):
        for choice in range(2):
            torch.testing.assert_close(embeds[example, choice, :5], prompt, atol=0, rtol=0)
            torch.testing.assert_close(embeds[example, choice, 5:], words[example, choice], atol=0, rtol=0)
    assert (seen["attention_mask"][..., :5] == 1).all()
    assert torch.equal(seen["attention_mask"][..., 5:], batch["attention_mask"])
    if "token_type_ids" in batch:
        assert (seen["token_type_ids"][..., :5] == 0).all()
        assert torch.equal(seen["token_type_ids"][..., 5:], batch["token_type_ids"])
    with torch.no_grad():  # the prompt is used: another prompt, other scores
        for parameter in model.prompt_encoder.parameters():
            parameter.add_(torch.randn_like(parameter))
        assert not torch.allclose(model(**batch).logits, logits)
    model.train()
    model(**_batch(parts, n=2)).loss.backward()
    assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in model.prompt_encoder.parameters())
    assert {n for n, p in model.named_parameters() if p.requires_grad} == {
        n for n, _ in model.named_parameters() if n.startswith("prompt_encoder.") or ".classifier." in n
    }


@pytest.mark.parametrize("method", ["prompt-tuning", "p-tuning"])
def test_multiple_choice_prompt_run_saves_a_safetensors_adapter_and_reloads_it(
    real_data_env, tiny_models, tmp_path, method
):
    import json

    from slopeft.config import RunConfig, TrainingConfig
    from slopeft.evaluation.prediction import load_run
    from slopeft.training.run import train_run

    options = {"num_virtual_tokens": 6} | ({"init": "vocab"} if method == "prompt-tuning" else {"encoder_hidden_size": 8})
    config = RunConfig(
        task=COPA, model=str(tiny_models("bert")), method=method, output=str(tmp_path / "run"),
        method_options=options,
        training=TrainingConfig(epochs=1.0, batch_size=4, max_length=48, max_train_examples=8, max_eval_examples=8),
    )
    record = train_run(config)
    adapter = tmp_path / "run" / "adapter"
    assert sorted(p.name for p in adapter.iterdir()) == [
        "adapter_config.json", "adapter_model.safetensors", "slopeft_adapter.json"
    ]
    saved = json.loads((adapter / "adapter_config.json").read_text())
    assert saved["peft_type"] == "SLOPEFT_MULTIPLE_CHOICE_PROMPT" and saved["method"] == method
    prompt = 6 * 64
    encoder = 0 if method == "prompt-tuning" else (64 * 8 + 8) + (8 * 8 + 8) + (8 * 64 + 64)  # PEFT's MLP
    assert record["cost"]["trainable_without_head"] == prompt + encoder
    assert record["cost"]["trainable_head"] == 64 + 1  # one score per (premise, choice) row
    parts, model, _ = load_run(tmp_path / "run")
    val = parts.task.examples("val")[:8]
    reloaded = parts.head.predict(model, val, batch_size=4)
    saved_predictions = json.loads((tmp_path / "run" / "val_predictions.json").read_text())
    assert {str(e.idx): reloaded[e.idx] for e in val} == saved_predictions
    other = "p-tuning" if method == "prompt-tuning" else "prompt-tuning"
    base, context = load_base(parts)
    with pytest.raises(ConfigError, match=f"holds a {method} adapter, not a {other} prompt"):
        METHODS.get(other)().load(base, adapter, context)


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
    (feature,) = parts.head.encode(parts.task.examples("val")[:1], with_labels=False)
    # One row, unpadded: the training collate pads on the right, and a causal model would then
    # generate after the padding (slopeft's prediction pads causal prompts on the left).
    ids = torch.tensor([feature["input_ids"]])
    inputs = {"input_ids": ids, "attention_mask": torch.ones_like(ids)}
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


@pytest.mark.parametrize(
    ("arch", "method", "generated"),
    [
        ("marian", "lora", 128),
        ("marian", "prefix-tuning", 108),  # its prefix takes 20 of the decoder's 128 positions
        ("gemma", "prompt-tuning", 128),
        ("gemma", "prefix-tuning", 128),
    ],
)
def test_whole_generations_fit_the_position_table_with_what_the_method_adds(
    run_parts, monkeypatch, arch, method, generated
):
    """A long source, generated to the full length: every position fits, and the budget is used up."""
    parts = run_parts(arch, "mt/en-sl", method, max_length=512)
    base, context = load_base(parts)
    model = parts.method.apply(base, context).eval()
    generate_to_the_end(model)
    probe = PositionProbe(monkeypatch, model)
    head = parts.head
    assert head.generation_length == generated
    (example,) = long_examples(parts.task, n=1)
    (translation,) = head.predict(model, [example]).values()
    assert head.truncated == 1 and isinstance(translation, str)
    assert probe.seen and not probe.overruns(), probe.seen
    # The longest sequence reaches the end of the table: prompt + what the method adds + generation
    # (a causal model does not read its last generated token).
    assert all(size - 2 <= largest <= size - 1 for largest, size in probe.seen.values()), probe.seen
