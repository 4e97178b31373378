"""Request inputs → task examples → what the adapter's head feeds the model.

An input to ``/v1/predict`` is shaped like a row of the task's own data: a SloBench SuperGLUE
JSONL line (parsed by the task's own row parser, so a MultiRC passage becomes one example per
answer and a WSC row reads its ``target`` spans), an SI-NLI pair ``{premise, hypothesis}``, or a
translation source ``{source}``. Labels and unknown keys in a row are ignored; a missing ``idx``
is the input's position.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from slopeft.errors import DataError
from slopeft.serving.adapters import ServedAdapter, SharedBase
from slopeft.tasks.base import Example, Task


class InputError(ValueError):
    """A malformed input; ``loc`` is its place in the request body (FastAPI's convention)."""

    def __init__(self, loc: Sequence[str | int], message: str) -> None:
        super().__init__(message)
        self.loc = tuple(loc)
        self.message = message


class TooLong(ValueError):
    """An input longer than the server's token limit."""

    def __init__(self, position: int, tokens: int, limit: int) -> None:
        super().__init__(
            f"Input {position} has {tokens:,} tokens; this server takes at most {limit:,} per input "
            "(--max-input-tokens). Shorten it or split it."
        )


# The task's row checks name the field: "missing field 'x'" or "field 'x' is 5, not text".
_MISSING_FIELD = re.compile(r"field '([^']+)'")


def row_examples(task: Task, row: Mapping[str, Any], position: int, where: Sequence[str | int]) -> list[Example]:
    """The examples of one posted data row (several for a MultiRC passage).

    Raises:
        InputError: naming the field that is missing or of the wrong type.
    """
    if not isinstance(row, Mapping):
        raise InputError(where, f"each input is an object shaped like a {task.name} data row")
    try:
        examples = task.examples_from_input(row, position)  # the task's own row parser and checks
    except DataError as err:
        missing = _MISSING_FIELD.search(str(err))
        raise InputError([*where, missing.group(1)] if missing else where, str(err)) from None
    except (KeyError, TypeError, AttributeError) as err:
        raise InputError(where, f"input {position} is not shaped like a {task.name} row ({err!r})") from None
    for example in examples:
        for key, value in example.inputs.items():
            if not key.endswith(("_index", "_idx")) and not isinstance(value, str):
                raise InputError([*where, key], f"{key} must be a string, not {type(value).__name__}")
    return examples


def parse_inputs(task: Task, rows: Sequence[Any]) -> list[tuple[int, Example]]:
    """(input position, example) for every example of the posted rows."""
    parsed = []
    for position, row in enumerate(rows):
        for example in row_examples(task, row, position, ["body", "inputs", position]):
            parsed.append((position, example))
    return parsed


@dataclass
class Prepared:
    """An example ready to queue: the head's features and the input's token count."""

    position: int
    example: Example
    features: Any
    tokens: int


def prepare(
    base: SharedBase, adapter: ServedAdapter, examples: Sequence[tuple[int, Example]], max_input_tokens: int
) -> list[Prepared]:
    """Tokenises examples the way the adapter's head does for ``slopeft predict``.

    Raises:
        TooLong: an input over ``max_input_tokens`` (counted before the head's cut to ``max_length``).
    """
    head = adapter.head
    prepared = []
    with base.tokenizer_lock:
        for position, example in examples:
            tokens = head.input_tokens(example)
            if tokens > max_input_tokens:
                raise TooLong(position, tokens, max_input_tokens)
            if adapter.lane == "encode":
                features = head.encode([example], with_labels=False)[0]
            elif adapter.lane == "score":
                features = head.candidate_rows(example)[0]
            else:
                features = head.prompt_ids(example)[0]
            prepared.append(Prepared(position, example, features, tokens))
    return prepared
