"""Untuned generative baselines: zero-shot and k-shot prompting (the study's "untuned" rows).

A causal or seq2seq model scores each label's Slovene word after a task prompt (or each COPA
choice), or continues a translation prompt. Few-shot prompts put k training demonstrations,
drawn per example with a seeded generator, in front of the prompt.
"""

from __future__ import annotations

import json
import random
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from slopeft.config import MIN_MAX_LENGTH
from slopeft.errors import ConfigError
from slopeft.tasks.base import Example, Task
from slopeft.tasks.formats import TaskFormat


class FewShotContext:
    """k demonstrations (prompt + gold answer) from the training set, chosen per example by a seeded RNG."""

    def __init__(self, task_format: TaskFormat, train: Sequence[Example], shots: int, seed: int) -> None:
        if shots > len(train):
            raise ConfigError(
                f"{shots} shots requested but {task_format.task.name} has {len(train)} training rows."
            )
        self.format, self.train, self.shots, self.seed = task_format, list(train), shots, seed

    def __call__(self, example: Example) -> str:
        rng = random.Random(f"{self.seed}:{example.idx}")
        pool = [
            e for e in rng.sample(self.train, min(len(self.train), self.shots + 1)) if e.idx != example.idx
        ]
        demos = pool[: self.shots]
        return "".join(self.format.prompt(d) + self.format.target(d) + "\n\n" for d in demos)


def _prompting(
    task: Task,
    train: Sequence[Example],
    targets: Sequence[Example],
    seed: int = 0,
    *,
    model: str | None = None,
    shots: int = 0,
    max_length: int = 512,
    batch_size: int = 8,
    notes: list[str] | None = None,
    _loaded: dict | None = None,
    **_: Any,
) -> dict[int, Any]:
    from slopeft.models.catalogue import family_of
    from slopeft.models.heads import build_head
    from slopeft.models.positions import position_limits
    from slopeft.models.sources import load_tokenizer, model_path, resolve_model

    if model is None:
        raise ConfigError("Prompting baselines need a generative model: add --model (e.g. gemma-3-270m).")
    for name, value, low in (("shots", shots, 0), ("max_length", max_length, MIN_MAX_LENGTH), ("batch_size", batch_size, 1)):
        # The CLI checks its flags; grid files reach here directly.
        if isinstance(value, bool) or not isinstance(value, int) or value < low:
            raise ConfigError(f"The prompting baseline's {name} must be an integer ≥ {low}, not {value!r}.")
    source = resolve_model(model)
    path = model_path(source)
    tokenizer = load_tokenizer(source)
    base_config = json.loads((Path(path) / "config.json").read_text())
    family = source.family or family_of(base_config)
    if family == "encoder":
        raise ConfigError(
            f"{model} is an encoder: zero-/few-shot prompting needs a causal or seq2seq model "
            "(e.g. gemma-3-270m). Encoders get task heads through training."
        )
    task_format = TaskFormat.for_task(task)
    head = build_head(
        task_format,
        tokenizer,
        family,
        max_length=max_length,
        input_prefix=source.input_prefix,
        positions=position_limits(base_config, family),
    )
    capped = head.length_cap_note("max_length")
    if notes is not None and capped:
        notes.append(f"{task.name}: {capped}")
    if shots:
        head.context = FewShotContext(task_format, train, shots, seed)
    cache = _loaded if _loaded is not None else {}
    key = (path, head.auto_class)
    if key not in cache:
        cache.clear()  # keep one model in memory
        cache[key] = head.load_model(path)
    predictions = head.predict(cache[key], targets, batch_size=batch_size)
    if notes is not None and head.truncated:
        notes.append(
            f"{task.name}: {head.truncated} of {len(targets)} prompts cut to {head.sequence_limit} tokens "
            "(left side: demonstrations, then passage text)"
        )
    return predictions


def zero_shot(
    task: Task, train: Sequence[Example], targets: Sequence[Example], seed: int = 0, **options: Any
) -> dict[int, Any]:
    """The model's own preference among label words / choices, or its continuation of a translation prompt."""
    return _prompting(task, train, targets, seed, **{**options, "shots": 0})


def few_shot(
    task: Task, train: Sequence[Example], targets: Sequence[Example], seed: int = 0, **options: Any
) -> dict[int, Any]:
    """Zero-shot with k training demonstrations in front of each prompt (``--shots``, default 3)."""
    return _prompting(task, train, targets, seed, **{"shots": 3, **options})
