"""Model-free baselines: the first row of every results table.

A strategy maps (task, training examples, examples to predict, seed) to predictions
(idx → label). The model-based ones (zero-/few-shot prompting, :mod:`slopeft.evaluation.prompting`)
are registered here too, so this registry lists every strategy.
"""

from __future__ import annotations

import random
from collections import Counter
from collections.abc import Callable, Sequence
from typing import Any

from slopeft.errors import ConfigError
from slopeft.evaluation import prompting
from slopeft.registry import Registry
from slopeft.tasks.base import Example, Task

BaselineStrategy = Callable[..., dict[int, Any]]
BASELINES: Registry[BaselineStrategy] = Registry("baseline strategy", "baseline strategies")


def _require_labels(task: Task, strategy: str) -> tuple[Any, ...]:
    if task.spec.labels is None:
        raise ConfigError(
            f"The {strategy} baseline needs a label space; {task.name} is a generation task. "
            "Use --strategy copy-source for translation."
        )
    return task.spec.labels


@BASELINES.register("majority")
def majority(
    task: Task, train: Sequence[Example], targets: Sequence[Example], seed: int = 0, **_: Any
) -> dict[int, Any]:
    """Every input gets the most frequent training label (ties: the earlier label of the label space)."""
    labels = _require_labels(task, "majority")
    counts = Counter(e.label for e in train)
    best = max(labels, key=lambda label: (counts[label], -labels.index(label)))
    return {e.idx: best for e in targets}


@BASELINES.register("random")
def uniform_random(
    task: Task, train: Sequence[Example], targets: Sequence[Example], seed: int = 0, **_: Any
) -> dict[int, Any]:
    """Each input gets a label drawn uniformly from the label space (seeded)."""
    labels = _require_labels(task, "random")
    rng = random.Random(seed)
    return {e.idx: rng.choice(labels) for e in targets}


@BASELINES.register("stratified")
def stratified(
    task: Task, train: Sequence[Example], targets: Sequence[Example], seed: int = 0, **_: Any
) -> dict[int, Any]:
    """Each input gets a label drawn from the training label distribution (seeded)."""
    labels = _require_labels(task, "stratified")
    counts = Counter(e.label for e in train)
    rng = random.Random(seed)
    weights = [counts[label] for label in labels]
    return {e.idx: rng.choices(labels, weights=weights)[0] for e in targets}


@BASELINES.register("copy-source")
def copy_source(
    task: Task, train: Sequence[Example], targets: Sequence[Example], seed: int = 0, **_: Any
) -> dict[int, Any]:
    """Translation lower bound: the hypothesis is the untranslated source sentence."""
    if task.spec.kind != "translation":
        raise ConfigError(f"copy-source is a translation baseline; {task.name} is not a translation task.")
    return {e.idx: e.inputs["source"] for e in targets}


BASELINES.add("zero-shot", prompting.zero_shot)
BASELINES.add("few-shot", prompting.few_shot)


def run_baseline(
    tasks: Sequence[Task], strategy: str, split: str, seed: int = 0, **options: Any
) -> dict[str, dict[int, Any]]:
    """Predictions of baseline ``strategy`` for ``split`` of every task, trained on each task's train split."""
    predict = BASELINES.get(strategy)
    shared = {"_loaded": {}, **options}  # a model loaded for one task of a group serves the next
    return {t.name: predict(t, t.examples("train"), t.examples(split), seed=seed, **shared) for t in tasks}
