"""Position limits of real model configs, and the head's text budget once a method adds positions."""

from __future__ import annotations

import dataclasses
import json

import pytest
from transformers import AutoTokenizer

from slopeft.errors import ConfigError
from slopeft.methods import METHODS
from slopeft.methods.base import AddedPositions, Method
from slopeft.models.heads import build_head
from slopeft.models.heads.base import pad
from slopeft.models.positions import PositionLimits, position_limits
from slopeft.tasks import get_task
from slopeft.tasks.formats import TaskFormat


@pytest.mark.parametrize(
    ("config", "family", "limits"),
    [
        ({"model_type": "camembert", "max_position_embeddings": 514, "pad_token_id": 1}, "encoder", (512, None)),
        ({"model_type": "xlm-roberta", "max_position_embeddings": 514, "pad_token_id": 1}, "encoder", (512, None)),
        ({"model_type": "bert", "max_position_embeddings": 512, "pad_token_id": 0}, "encoder", (512, None)),
        (  # DeBERTa-v3: relative positions only
            {"model_type": "deberta-v2", "max_position_embeddings": 512, "position_biased_input": False},
            "encoder",
            (None, None),
        ),
        ({"model_type": "gpt2", "n_positions": 1024}, "causal", (1024, None)),
        ({"model_type": "gemma3_text", "max_position_embeddings": 32768}, "causal", (32768, None)),
        ({"model_type": "gemma3", "text_config": {"max_position_embeddings": 131072}}, "causal", (131072, None)),
        ({"model_type": "marian", "max_position_embeddings": 512}, "seq2seq", (512, 512)),
        (  # t5-small's config.json carries an n_positions its relative attention never uses
            {"model_type": "t5", "n_positions": 512, "relative_attention_num_buckets": 32},
            "seq2seq",
            (None, None),
        ),
    ],
)
def test_position_limits_of_real_configs(config, family, limits):
    assert position_limits(config, family) == PositionLimits(*limits)


def test_padding_rounds_up_but_never_past_the_limit_and_never_cuts():
    assert pad([[1] * 108], 0).shape[1] == 112
    assert pad([[1] * 108], 0, limit=108).shape[1] == 108
    assert pad([[1] * 100], 0, limit=108).shape[1] == 104
    assert pad([[1] * 108], 0, limit=100).shape[1] == 108  # a row is never cut by padding


def _head(tiny_models, arch, task, family, max_length):
    folder = tiny_models(arch)
    config = json.loads((folder / "config.json").read_text())
    return build_head(
        TaskFormat.for_task(get_task(task)),
        AutoTokenizer.from_pretrained(folder),
        family,
        max_length=max_length,
        positions=position_limits(config, family),
    )


@pytest.mark.parametrize(("max_length", "budget"), [(512, 128 - 20), (100, 100 - 20)])
def test_the_text_budget_leaves_room_for_the_prompt_above_and_below_the_models_limit(
    real_data_env, tiny_models, max_length, budget
):
    head = _head(tiny_models, "camembert", "slo-superglue/boolq", "encoder", max_length)
    assert head.sequence_limit == min(max_length, 128)  # 130 positions, RoBERTa-style from padding_idx + 1
    prompted = head.for_method(METHODS.get("prompt-tuning")())
    assert prompted.text_budget == budget and head.text_budget == min(max_length, 128)  # the original stays
    example = max(get_task("slo-superglue/boolq").examples("val")[:50], key=lambda e: len(e.inputs["passage"]))
    (feature,) = prompted.encode([example])
    assert len(feature["input_ids"]) == budget and prompted.truncated == 1
    assert prompted.collate([feature])["input_ids"].shape[1] + 20 <= 128
    # Prefix tuning's deep prompts on an encoder take no positions; LoRA none either.
    assert head.for_method(METHODS.get("prefix-tuning")()).text_budget == min(max_length, 128)
    assert head.for_method(METHODS.get("lora")()).text_budget == min(max_length, 128)


def test_a_max_length_above_the_models_limit_is_reported_not_silently_lowered(real_data_env, tiny_models):
    head = _head(tiny_models, "camembert", "slo-superglue/boolq", "encoder", 512)
    assert head.length_cap == "the model's 128 positions"
    assert head.length_cap_note() == (
        "training.max_length 512 is more than this model takes: inputs are cut at 128 tokens "
        "(the model's 128 positions)."
    )
    head.positions = PositionLimits()  # a model whose config states no positions: the tokenizer's limit
    assert head.length_cap == "the tokenizer's limit of 128 tokens"
    assert head.length_cap_note("max_length").startswith("max_length 512 is more")
    for within in (128, 100):
        assert _head(tiny_models, "camembert", "slo-superglue/boolq", "encoder", within).length_cap_note() is None


def test_a_prompt_that_leaves_no_room_is_a_config_error_with_the_numbers(real_data_env, tiny_models):
    head = _head(tiny_models, "camembert", "slo-superglue/boolq", "encoder", 256)
    with pytest.raises(ConfigError) as err:
        head.for_method(METHODS.get("prompt-tuning")({"num_virtual_tokens": 130}))
    message = str(err.value)
    assert "min(training.max_length 256, the tokenizer's 128, the model's 128 positions) = 128" in message
    assert "− 130 positions prompt-tuning adds in front = -2 tokens" in message
    assert "lower prompt-tuning's num_virtual_tokens" in message

    head = _head(tiny_models, "bert", "slo-superglue/boolq", "encoder", 23)
    with pytest.raises(ConfigError, match=r"= 23 − 20 positions p-tuning adds in front − 3 special tokens = 0 tokens") as err:
        head.for_method(METHODS.get("p-tuning")())
    assert "raise training.max_length (the model allows 128)" in str(err.value)


def test_generation_budgets(real_data_env, tiny_models):
    # Causal: prompt + 20 virtual tokens + 128 generated tokens share the sequence.
    gemma = _head(tiny_models, "gemma", "mt/en-sl", "causal", 512)
    assert gemma.sequence_limit == 256
    assert gemma.for_method(METHODS.get("prompt-tuning")())._prompt_budget() == 256 - 20 - 128
    with pytest.raises(ConfigError, match=r"= 140 − 20 positions prompt-tuning adds in front − 128 generated tokens = -8"):
        _head(tiny_models, "gemma", "mt/en-sl", "causal", 140).for_method(METHODS.get("prompt-tuning")())
    # Seq2seq: prefix tuning's prefix sits in the decoder, so fewer tokens are generated and trained.
    marian = _head(tiny_models, "marian", "mt/en-sl", "seq2seq", 512)
    prefixed = marian.for_method(METHODS.get("prefix-tuning")())
    assert (prefixed.text_budget, prefixed.decoder_budget, prefixed.generation_length) == (128, 108, 108)
    prompted = marian.for_method(METHODS.get("prompt-tuning")())  # PEFT prompts the encoder only
    assert (prompted.text_budget, prompted.decoder_budget, prompted.generation_length) == (108, 128, 128)
    with pytest.raises(ConfigError, match="128 decoder positions − 130 positions prefix-tuning adds there = -2") as err:
        marian.for_method(METHODS.get("prefix-tuning")({"num_virtual_tokens": 130}))
    assert "lower prefix-tuning's num_virtual_tokens below 128" in str(err.value)


class _Lengthening(Method):
    """None of the shipped methods: it lengthens every sequence, and the head learns by how much
    through ``added_positions`` alone."""

    name = "lengthening"
    config_class = dataclasses.make_dataclass("LengtheningOptions", [])

    def __init__(self, added: AddedPositions) -> None:
        super().__init__()
        self.added = added

    def apply(self, model, context):
        return model

    def added_positions(self, family):
        return self.added


@pytest.mark.parametrize(
    ("arch", "task", "family"),
    [("bert", "slo-superglue/boolq", "encoder"), ("gemma", "slo-superglue/boolq", "causal"), ("marian", "mt/en-sl", "seq2seq")],
)
def test_any_method_that_adds_positions_gets_the_same_budget(real_data_env, tiny_models, arch, task, family):
    head = _head(tiny_models, arch, task, family, 512)
    limit = head.sequence_limit
    lengthened = head.for_method(_Lengthening(AddedPositions(input=7, decoder=3, option="width")))
    assert lengthened.text_budget == limit - 7
    if family == "seq2seq":
        assert lengthened.decoder_budget == head.positions.decoder - 3
    with pytest.raises(ConfigError, match=f"= {limit} − {limit} positions lengthening adds in front") as err:
        head.for_method(_Lengthening(AddedPositions(input=limit, option="width")))
    assert "lower lengthening's width" in str(err.value)


def test_a_causal_target_longer_than_the_budget_is_cut_and_the_prompt_keeps_half(real_data_env, tiny_models):
    head = _head(tiny_models, "gemma", "mt/en-sl", "causal", 160).for_method(METHODS.get("prompt-tuning")())
    examples = get_task("mt/en-sl").examples("train")
    long = dataclasses.replace(examples[0], label=" ".join(e.label for e in examples[:20]))
    (feature,) = head.encode([long])
    assert head.truncated == 1
    assert len(feature["input_ids"]) == head.text_budget == 140
    prompt = sum(label == -100 for label in feature["labels"])
    assert prompt == min(len(head._full_prompt_ids(long)), 70)  # at most half the budget; the target has the rest
    assert feature["input_ids"][prompt:] == feature["labels"][prompt:]
