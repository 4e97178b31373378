"""Label codecs: how each task's labels appear in data files and in submissions.

The official files are inconsistent (JSON booleans, ``"0,0"`` / ``"1.0"`` strings and
floats in the machine-translated MultiRC), while the evaluator is strict in its own ways
(BoolQ/WSC labels go through ``str(v).lower()``, MultiRC exact match compares
``str(label)`` so ``1.0`` silently differs from ``1``). A codec keeps those rules in one place.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class LabelCodec:
    """Parses gold labels leniently, submitted labels as strictly as the evaluator, and writes labels.

    ``parse_gold`` and ``parse_submitted`` raise ``ValueError`` with a short reason.
    """

    labels: tuple[Any, ...]
    parse_gold: Callable[[Any], Any]
    parse_submitted: Callable[[Any], Any]
    write: Callable[[Any], Any]
    legal: str  # how legal submitted values are described in error messages


def _bool_from_text(value: Any) -> bool:
    text = str(value).lower()  # the evaluator's boolean_mapping
    if text == "true":
        return True
    if text == "false":
        return False
    raise ValueError(f"{value!r} is neither true nor false")


def _binary_gold(value: Any) -> int:
    # The MT MultiRC stores "0,0" (decimal comma) and "1.0"; never let a non-empty string
    # fall through as truthy. A JSON boolean is refused too: for COPA it does not say which choice
    # (true = choice 1 or choice 2?), and no official file writes one.
    if isinstance(value, bool):
        raise ValueError(f"{json.dumps(value)} is a JSON boolean, not 0 or 1: write the integer 0 or 1")
    if isinstance(value, str):
        value = value.strip().replace(",", ".")
    try:
        number = float(value)
    except (TypeError, ValueError):
        raise ValueError(f"{value!r} is not 0 or 1") from None
    if number not in (0.0, 1.0):
        raise ValueError(f"{value!r} is not 0 or 1")
    return int(number)


def _binary_submitted(value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value not in (0, 1):
        raise ValueError(f"{value!r} is not the JSON integer 0 or 1")
    return value


def _choice(labels: tuple[str, ...]) -> Callable[[Any], str]:
    def parse(value: Any) -> str:
        if value not in labels:
            raise ValueError(f"{value!r} is not one of {', '.join(labels)}")
        return value

    return parse


def boolean_codec(true_text: str, false_text: str) -> LabelCodec:
    """Booleans written as ``true_text``/``false_text``; any casing is accepted back."""
    return LabelCodec(
        labels=(False, True),
        parse_gold=_bool_from_text,
        parse_submitted=_bool_from_text,
        write=lambda v: true_text if v else false_text,
        legal=f'"{true_text}" or "{false_text}" (any casing)',
    )


def choice_codec(labels: tuple[str, ...]) -> LabelCodec:
    """String labels matched exactly, as the evaluator's label mappings do."""
    parse = _choice(labels)
    return LabelCodec(labels, parse, parse, lambda v: v, " / ".join(labels))


BINARY_CODEC = LabelCodec(
    labels=(0, 1),
    parse_gold=_binary_gold,
    parse_submitted=_binary_submitted,
    write=int,
    legal="the JSON integers 0 or 1",
)
