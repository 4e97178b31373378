"""Statistics over runs: mean ± std over seeds, bootstrap confidence intervals, a paired test.

Every number is computed with the task's own metric function (``Task.metrics``, the code that
reproduces the SloBench evaluator), applied to resampled validation examples:

- **Resampling unit.** One validation example, except MultiRC, whose exact match is defined per
  question: there whole questions (all their answer options) are resampled, and a question drawn
  twice counts as two questions.
- **Seeds.** With several seeds, every bootstrap draw scores each seed's predictions on the same
  resampled examples and averages over seeds, so the interval is for the seed-averaged score.
- **Confidence interval.** Percentile bootstrap (95% by default, 1,000 draws).
- **Paired test.** Paired bootstrap (Koehn 2004; Berg-Kirkpatrick et al. 2012): both systems are
  scored on the same draws; the p-value is two-sided, from the draws' differences shifted to
  the null hypothesis of no difference: ``p = (1 + #{|δ_b − δ| ≥ |δ|}) / (B + 1)``.
- **Speed.** Where a task's metrics are functions of sums over examples (confusion counts for the
  classification tasks but MultiRC; per-sentence values and n-gram counts for translation), each
  draw is scored from the summed per-example statistics (``Task.metric_statistics``,
  :mod:`slopeft.metrics.statistics`) rather than by calling the metric function on the drawn
  examples: the same numbers (tests hold them equal draw by draw), all draws in one matrix product.
- **Degenerate runs.** Predictions that are all the same label (a collapsed classifier, or the
  majority baseline) are flagged wherever the run appears.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import math
import warnings
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from slopeft.tasks.base import Example, Task

DEFAULT_DRAWS = 1000
#: Translation metrics run NLTK over every segment: fewer draws keep a report to minutes.
TRANSLATION_DRAWS = 200


def mean_std(values: Sequence[float]) -> tuple[float, float | None]:
    """Mean and sample standard deviation (ddof=1; None for a single value)."""
    if not values:
        raise ValueError("mean_std of no values")
    array = np.asarray(values, dtype=float)
    return float(array.mean()), (float(array.std(ddof=1)) if len(array) > 1 else None)


def seed_interval(values: Sequence[float], confidence: float = 0.95) -> tuple[float, float] | None:
    """The t-interval of the mean of ``values`` (one score per seed): mean ± t·s/√n, n−1 degrees of
    freedom; None for fewer than two values. It covers seed-to-seed variation (initialisation, data
    order), which the bootstrap over validation examples does not."""
    if len(values) < 2:
        return None
    from scipy import stats

    mean, std = mean_std(values)
    half = float(stats.t.ppf(0.5 + confidence / 2, len(values) - 1)) * std / math.sqrt(len(values))
    return mean - half, mean + half


def is_degenerate(predictions: Mapping[Any, Any]) -> bool:
    """True when every prediction is the same label (or there are none)."""
    return len({json_key(v) for v in predictions.values()}) <= 1


def json_key(value: Any) -> Any:
    return value if isinstance(value, str | int | float | bool) or value is None else repr(value)


def resampling_units(task: Task, examples: Sequence[Example]) -> list[list[int]]:
    """Positions of ``examples`` grouped into the units the bootstrap draws (the task's ``unit_fields``:
    MultiRC's questions), one example each where the task names none."""
    fields = task.spec.unit_fields
    if not fields:
        return [[i] for i in range(len(examples))]
    groups: dict[tuple, list[int]] = {}
    for i, example in enumerate(examples):
        key = tuple(example.inputs.get(name) for name in fields)
        groups.setdefault(key, []).append(i)
    return list(groups.values())


def _draw(
    task: Task, examples: Sequence[Example], units: list[list[int]], picks: np.ndarray
) -> list[Example]:
    """The examples of one bootstrap draw; a unit drawn twice (a MultiRC question) counts as two units."""
    renumbered = task.spec.unit_fields[-1] if task.spec.unit_fields else None
    drawn: list[Example] = []
    for position, unit in enumerate(picks):
        for i in units[unit]:
            example = examples[i]
            if renumbered:
                example = dataclasses.replace(example, inputs={**example.inputs, renumbered: position})
            drawn.append(example)
    return drawn


def _restrict(predictions: Mapping[int, Any], examples: Sequence[Example]) -> dict[int, Any]:
    return {e.idx: predictions[e.idx] for e in examples}


@dataclass
class Bootstrap:
    """Seed-averaged scores of one system on one task, with percentile intervals.

    Attributes:
        point: each metric on the full validation set, averaged over seeds.
        low, high: the interval's bounds per metric.
        draws: per metric, the B seed-averaged scores of the draws (for averages across tasks).
        confidence: the interval's coverage (0.95).
    """

    point: dict[str, float]
    low: dict[str, float]
    high: dict[str, float]
    draws: dict[str, np.ndarray]
    confidence: float = 0.95


def draw_indices(n_units: int, draws: int, seed: int) -> np.ndarray:
    """(draws × n_units) unit indices; the same seed gives the same draws for every system."""
    return np.random.default_rng(seed).integers(0, n_units, size=(draws, n_units))


def _signature(values: Any) -> str:
    return hashlib.sha1(json.dumps(values, sort_keys=True, default=repr).encode()).hexdigest()


def _drawn_examples(
    task: Task, examples: Sequence[Example], draws: int, seed: int, cache: dict | None
) -> list[list[Example]]:
    key = ("draws", task.name, _signature([e.idx for e in examples]), draws, seed)
    if cache is not None and key in cache:
        return cache[key]
    units = resampling_units(task, examples)
    drawn = [_draw(task, examples, units, picks) for picks in draw_indices(len(units), draws, seed)]
    if cache is not None:
        cache[key] = drawn
    return drawn


def _one_seed(
    task: Task,
    examples: Sequence[Example],
    predictions: Mapping[int, Any],
    draws: int,
    seed: int,
    cache: dict | None,
) -> tuple[dict[str, float], dict[str, np.ndarray]]:
    """Full-set metrics and per-draw metrics of one prediction set (cached by content: degenerate
    runs of different methods often predict exactly the same)."""
    restricted = _restrict(predictions, examples)
    key = ("seed", task.name, _signature(sorted(restricted.items())), draws, seed)
    if cache is not None and key in cache:
        return cache[key]
    point = task.metrics(restricted, examples)
    summed = _draws_from_statistics(task, examples, restricted, point, draws, seed, cache)
    if summed is not None:
        values = summed
    else:
        scored: dict[str, list[float]] = {name: [] for name in point}
        for drawn in _drawn_examples(task, examples, draws, seed, cache):
            scores = task.metrics(_restrict(predictions, drawn), drawn)
            for name in scored:
                scored[name].append(float(scores[name]))
        values = {k: np.asarray(v) for k, v in scored.items()}
    result = ({k: float(v) for k, v in point.items()}, values)
    if cache is not None:
        cache[key] = result
    return result


def _draw_counts(
    task: Task, examples: Sequence[Example], draws: int, seed: int, cache: dict | None
) -> np.ndarray:
    """(draws × examples) how often each example is drawn: the draws of :func:`draw_indices`."""
    key = ("counts", task.name, _signature([e.idx for e in examples]), draws, seed)
    if cache is not None and key in cache:
        return cache[key]
    n = len(examples)
    picks = draw_indices(n, draws, seed)
    flat = (picks + np.arange(draws)[:, None] * n).ravel()
    counts = np.bincount(flat, minlength=draws * n).reshape(draws, n)
    if cache is not None:
        cache[key] = counts
    return counts


def _draws_from_statistics(
    task: Task,
    examples: Sequence[Example],
    predictions: Mapping[int, Any],
    point: Mapping[str, float],
    draws: int,
    seed: int,
    cache: dict | None,
) -> dict[str, np.ndarray] | None:
    """Every draw's metrics from the task's per-example statistics, or None where the task has none
    (:meth:`Task.metric_statistics`: MultiRC's per-question exact match)."""
    if task.spec.unit_fields:
        return None
    statistics = task.metric_statistics(predictions, examples)
    if statistics is None:
        return None
    whole = statistics.finish(statistics.values.sum(axis=0))
    agree = set(whole) == set(point) and all(
        math.isclose(float(whole[m]), point[m], rel_tol=1e-9, abs_tol=1e-12) for m in point
    )
    if not agree:
        # A task whose two paths disagree is a bug; score it the slow, exact way meanwhile.
        warnings.warn(
            f"{task.name}: metric_statistics disagrees with metrics on the full set "
            f"({ {k: float(v) for k, v in whole.items()} } vs {dict(point)}); the bootstrap scores "
            "every draw with metrics instead",
            stacklevel=2,
        )
        return None
    counts = _draw_counts(task, examples, draws, seed, cache)
    return {name: np.asarray(v, dtype=float) for name, v in statistics.metrics_of_counts(counts).items()}


def bootstrap(
    task: Task,
    examples: Sequence[Example],
    prediction_sets: Sequence[Mapping[int, Any]],
    draws: int = DEFAULT_DRAWS,
    seed: int = 0,
    confidence: float = 0.95,
    cache: dict | None = None,
) -> Bootstrap:
    """Bootstrap intervals of every metric of ``task`` for predictions of one or more seeds.

    Every seed is scored on the same draws; a draw's score is the mean over seeds.

    Args:
        task: the task (its ``metrics`` scores each draw).
        examples: the labelled validation examples the predictions cover.
        prediction_sets: one idx → label mapping per seed.
        draws: bootstrap draws.
        seed: the draws' seed (use the same seed for systems you compare).
        confidence: the interval's coverage.
        cache: a dict reused across calls to skip rescoring identical prediction sets.
    """
    if not prediction_sets:
        raise ValueError("bootstrap needs at least one set of predictions")
    per_seed = [_one_seed(task, examples, p, draws, seed, cache) for p in prediction_sets]
    names = list(per_seed[0][0])
    point = {name: float(np.mean([p[name] for p, _ in per_seed])) for name in names}
    arrays = {name: np.mean(np.stack([d[name] for _, d in per_seed]), axis=0) for name in names}
    tail = (1 - confidence) / 2 * 100
    return Bootstrap(
        point,
        {name: float(np.percentile(a, tail)) for name, a in arrays.items()},
        {name: float(np.percentile(a, 100 - tail)) for name, a in arrays.items()},
        arrays,
        confidence,
    )


@dataclass
class PairedTest:
    """A − B on the same examples: observed difference, its interval and the two-sided p-value."""

    metric: str
    delta: float
    low: float
    high: float
    p_value: float
    draws: int
    test: str = "paired bootstrap"
    seeds: tuple[int, ...] = ()  # the seeds compared where the two systems' seeds differ (empty: all of both)


def paired_bootstrap(
    task: Task,
    examples: Sequence[Example],
    a: Sequence[Mapping[int, Any]],
    b: Sequence[Mapping[int, Any]],
    metric: str | None = None,
    draws: int = DEFAULT_DRAWS,
    seed: int = 0,
    confidence: float = 0.95,
) -> PairedTest:
    """Paired bootstrap test of system A against system B (each one or more seeds) on ``metric``.

    Both are scored on the same resampled examples in every draw (units as in :func:`bootstrap`).
    """
    boot_a = bootstrap(task, examples, a, draws, seed, confidence)
    boot_b = bootstrap(task, examples, b, draws, seed, confidence)
    return compare(boot_a, boot_b, metric or task.spec.main_metric)


def compare(a: Bootstrap, b: Bootstrap, metric: str) -> PairedTest:
    """The paired test from two bootstraps made on the same examples with the same draw seed.

    Their draws are then the same resampled examples, so the per-draw differences are exactly
    what :func:`paired_bootstrap` computes, without scoring anything again.
    """
    if len(a.draws[metric]) != len(b.draws[metric]):
        raise ValueError("the two bootstraps have different numbers of draws")
    delta = a.point[metric] - b.point[metric]
    array = a.draws[metric] - b.draws[metric]
    tail = (1 - a.confidence) / 2 * 100
    if math.isclose(delta, 0.0, abs_tol=1e-12):
        p_value = 1.0
    else:
        p_value = float((1 + np.sum(np.abs(array - delta) >= abs(delta))) / (len(array) + 1))
    return PairedTest(
        metric,
        float(delta),
        float(np.percentile(array, tail)),
        float(np.percentile(array, 100 - tail)),
        p_value,
        len(array),
    )


def average_of(
    parts: Sequence[tuple[float, np.ndarray]], confidence: float = 0.95
) -> tuple[float, float, float]:
    """Mean of several tasks' scores and its interval from their (independent) bootstrap draws.

    Args:
        parts: (point score, draws) per task; every task's draws must have the same length.
    """
    point = float(np.mean([p for p, _ in parts]))
    stacked = np.mean(np.stack([d for _, d in parts]), axis=0)
    tail = (1 - confidence) / 2 * 100
    return point, float(np.percentile(stacked, tail)), float(np.percentile(stacked, 100 - tail))


@dataclass(frozen=True)
class ClassBreakdown:
    """How one system's predictions fall over a classification task's label space, pooled over seeds.

    Attributes:
        labels: the task's label space, in its order.
        recall: per label, the share of its gold examples predicted as it (every seed's predictions
            pooled); None for a label with no gold example among the scored ones.
        predicted: per label, its share of all predictions (pooled).
        never_predicted: seed → the labels that seed predicts for no example, where there are any:
            a run that predicts only some classes has half collapsed, which a degenerate-run flag
            (every prediction the same label) does not show.
    """

    labels: tuple[Any, ...]
    recall: tuple[float | None, ...]
    predicted: tuple[float, ...]
    never_predicted: dict[int, tuple[Any, ...]]


def class_breakdown(
    labels: Sequence[Any], examples: Sequence[Example], predictions_by_seed: Mapping[int, Mapping[int, Any]]
) -> ClassBreakdown:
    """Per-label recall and prediction shares of ``predictions_by_seed`` (seed → idx → label) on the
    labelled ``examples``, every seed's confusion matrix summed (scikit-learn's)."""
    from sklearn.metrics import confusion_matrix

    keys = [json_key(label) for label in labels]
    gold = [json_key(e.label) for e in examples]
    total = np.zeros((len(keys), len(keys)), dtype=np.int64)
    never: dict[int, tuple[Any, ...]] = {}
    for seed, predictions in predictions_by_seed.items():
        predicted = [json_key(predictions[e.idx]) for e in examples]
        unknown = set(predicted) - set(keys)
        if unknown:
            raise ValueError(f"seed {seed} predicts labels outside the task's label space {list(labels)}: {sorted(map(str, unknown))}")
        # labels= keeps the task's order and every label, predicted or not; rows are gold, columns predicted.
        matrix = confusion_matrix(gold, predicted, labels=keys)
        total += matrix
        missing = tuple(label for label, column in zip(labels, matrix.sum(axis=0), strict=True) if column == 0)
        if missing:
            never[seed] = missing
    gold_counts, predicted_counts = total.sum(axis=1), total.sum(axis=0)
    recall = tuple(
        None if gold_counts[i] == 0 else float(total[i, i] / gold_counts[i]) for i in range(len(keys))
    )
    share = predicted_counts / max(int(predicted_counts.sum()), 1)
    return ClassBreakdown(tuple(labels), recall, tuple(float(s) for s in share), never)
