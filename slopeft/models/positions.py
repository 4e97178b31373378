"""How long a model's sequences may be, and how much of that length a method takes.

A model's position table bounds every sequence it reads: BERT's learned position embeddings have
``max_position_embeddings`` rows; RoBERTa-style models (CamemBERT/SloBERTa, XLM-R) number positions
from ``padding_idx + 1``, so ``padding_idx + 1`` fewer rows hold text (514 → 512); a Marian model's
sinusoidal table bounds its encoder and its decoder; a causal LM's ``max_position_embeddings`` is its
context. Relative-position models (T5, mT5; DeBERTa-v2/v3 without absolute positions) have no table.

Methods that put something in front of the text take part of that length
(:meth:`slopeft.methods.base.Method.added_positions`, an
:class:`~slopeft.methods.base.AddedPositions`): prompt tuning's and P-tuning's virtual tokens
are prepended to the input embeddings; PEFT's prefix tuning on causal and seq2seq models puts its
prefix in the key/value cache, which moves the tokens' positions back by its length (on a seq2seq
model, the decoder's). The head subtracts them from its budget (:class:`slopeft.models.heads.Head`).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class PositionLimits:
    """The longest sequences a model can read, in positions (None: no table bounds it)."""

    input: int | None = None
    """The sequence the head encodes: an encoder's input, a causal LM's prompt and continuation,
    a seq2seq model's encoder input."""
    decoder: int | None = None
    """A seq2seq model's decoder sequence (its labels, or what it generates)."""


# Model types whose position ids start at padding_idx + 1 (RoBERTa's create_position_ids_from_*).
_PADDING_OFFSET_TYPES = frozenset(
    {
        "roberta",
        "camembert",
        "xlm-roberta",
        "xlm-roberta-xl",
        "roberta-prelayernorm",
        "data2vec-text",
        "longformer",
        "mpnet",
        "ibert",
        "luke",
        "xmod",
        "markuplm",
    }
)


def position_limits(config: Mapping[str, Any], family: str) -> PositionLimits:
    """The position limits of a model from its ``config.json`` dict; ``family`` is its model family."""
    if isinstance(config.get("text_config"), Mapping):  # multimodal checkpoints: the language model's
        config = config["text_config"]
    table: int | None
    if "relative_attention_num_buckets" in config or config.get("position_biased_input") is False:
        # T5-style relative attention buckets, or DeBERTa-v2/v3's relative-only positions: any length
        # fits (some T5 configs carry an unused n_positions).
        table = None
    else:
        table = config.get("max_position_embeddings") or config.get("n_positions")
        if table and config.get("model_type") in _PADDING_OFFSET_TYPES:
            pad = config.get("pad_token_id")
            table -= (1 if pad is None else pad) + 1
    if family != "seq2seq":
        return PositionLimits(table)
    return PositionLimits(
        config.get("max_source_positions") or table, config.get("max_target_positions") or table
    )
