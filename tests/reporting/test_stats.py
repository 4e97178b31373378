"""Statistics: mean ± std, degenerate flags, bootstrap intervals with the task's metric, MultiRC by question,
the paired bootstrap test."""

from __future__ import annotations

import random

import numpy as np
import pytest

from slopeft.reporting.stats import (
    average_of,
    bootstrap,
    class_breakdown,
    compare,
    is_degenerate,
    mean_std,
    paired_bootstrap,
    resampling_units,
)
from slopeft.tasks import get_task
from slopeft.tasks.base import TASKS, Example


def _cb(n: int = 60, seed: int = 0) -> tuple:
    task = get_task("slo-superglue/cb")  # metrics need no data files
    rng = random.Random(seed)
    labels = task.spec.labels
    examples = [Example(i, {}, rng.choice(labels)) for i in range(n)]
    return task, examples


def _noisy(examples, accuracy: float, labels, seed: int) -> dict:
    rng = random.Random(seed)
    return {
        e.idx: e.label if rng.random() < accuracy else rng.choice([x for x in labels if x != e.label])
        for e in examples
    }


def test_mean_std_and_degenerate():
    assert mean_std([0.5]) == (0.5, None)
    mean, std = mean_std([0.4, 0.6])
    assert mean == pytest.approx(0.5) and std == pytest.approx(np.std([0.4, 0.6], ddof=1))
    assert is_degenerate({1: "a", 2: "a"}) and is_degenerate({})
    assert not is_degenerate({1: "a", 2: "b"})
    assert is_degenerate({1: True, 2: True}) and not is_degenerate({1: 0, 2: 1})


def test_bootstrap_uses_the_task_metric_and_brackets_the_point():
    task, examples = _cb()
    predictions = _noisy(examples, 0.7, task.spec.labels, 1)
    result = bootstrap(task, examples, [predictions], draws=150, seed=0)
    assert set(result.point) == {"accuracy", "macro_f1", "average"}  # every metric of CB, from cb_scores
    assert result.point == pytest.approx(task.metrics(predictions, examples))
    for name in result.point:
        assert result.low[name] <= result.point[name] <= result.high[name]
        assert len(result.draws[name]) == 150
    assert 0.1 < result.high["accuracy"] - result.low["accuracy"] < 0.5
    again = bootstrap(task, examples, [predictions], draws=150, seed=0)
    assert again.low == result.low and again.high == result.high  # seeded
    perfect = bootstrap(task, examples, [{e.idx: e.label for e in examples}], draws=50)
    assert perfect.low["accuracy"] == perfect.high["accuracy"] == 1.0


def test_seeds_are_averaged_on_the_same_draws():
    task, examples = _cb()
    a, b = (_noisy(examples, acc, task.spec.labels, s) for acc, s in ((0.9, 1), (0.5, 2)))
    cache: dict = {}
    both = bootstrap(task, examples, [a, b], draws=100, seed=3, cache=cache)
    one_a = bootstrap(task, examples, [a], draws=100, seed=3)  # no cache: scored afresh
    one_b = bootstrap(task, examples, [b], draws=100, seed=3, cache=cache)
    np.testing.assert_allclose(
        both.draws["accuracy"], (one_a.draws["accuracy"] + one_b.draws["accuracy"]) / 2
    )
    assert both.point["accuracy"] == pytest.approx((one_a.point["accuracy"] + one_b.point["accuracy"]) / 2)


def _multirc():
    task = get_task("slo-superglue/multirc")
    examples, predictions = [], {}
    idx = 0
    for question in range(10):
        for _ in range(3):
            label = idx % 2
            examples.append(Example(idx, {"passage_idx": question // 5, "question_idx": question}, label))
            # questions 0-5 entirely right, 6-9 each with one wrong answer
            predictions[idx] = label if question < 6 or idx % 3 else 1 - label
            idx += 1
    return task, examples, predictions


def test_multirc_is_resampled_by_question():
    task, examples, predictions = _multirc()
    units = resampling_units(task, examples)
    assert len(units) == 10 and all(len(u) == 3 for u in units)
    result = bootstrap(task, examples, [predictions], draws=200, seed=0)
    assert result.point["em"] == pytest.approx(0.6)
    # every draw holds 10 whole questions (a question drawn twice counts twice): EM is a multiple of 1/10
    em = result.draws["em"] * 10
    np.testing.assert_allclose(em, np.round(em), atol=1e-9)
    assert len(set(np.round(em))) > 3
    pair_task = get_task("slo-superglue/rte")
    assert len(resampling_units(pair_task, examples)) == len(examples)  # other tasks: by example


def test_paired_bootstrap():
    task, examples = _cb(120)
    good = _noisy(examples, 0.9, task.spec.labels, 1)
    bad = _noisy(examples, 0.4, task.spec.labels, 2)
    test = paired_bootstrap(task, examples, [good], [bad], draws=150, seed=0)
    assert test.metric == "average" and test.delta > 0.3
    assert test.p_value < 0.01 and test.low > 0
    same = paired_bootstrap(task, examples, [good], [good], draws=20)
    assert same.delta == 0 and same.p_value == 1.0
    cache: dict = {}
    close = _noisy(examples, 0.88, task.spec.labels, 3)
    near = compare(
        bootstrap(task, examples, [good], draws=150, seed=0, cache=cache),
        bootstrap(task, examples, [close], draws=150, seed=0, cache=cache),
        "average",
    )
    assert near.p_value > 0.05 and near.low < 0 < near.high
    # compare() on two bootstraps with the same draws is the paired test without rescoring
    direct = compare(
        bootstrap(task, examples, [good], draws=150, seed=0, cache=cache),
        bootstrap(task, examples, [bad], draws=150, seed=0, cache=cache),
        "average",
    )
    assert (direct.delta, direct.p_value, direct.low, direct.high) == (
        test.delta,
        test.p_value,
        test.low,
        test.high,
    )


def test_average_of_tasks():
    point, low, high = average_of([(0.5, np.array([0.4, 0.5, 0.6])), (0.7, np.array([0.6, 0.7, 0.8]))])
    assert point == pytest.approx(0.6) and low < point < high


SUMMED_TASKS = [name for name in TASKS.names() if not get_task(name).spec.unit_fields]


def _examples_and_seeds(task) -> tuple[list[Example], list[dict]]:
    """70 labelled examples and three systems' predictions of different quality."""
    rng = random.Random(7)
    if task.spec.labels is not None:
        examples = [Example(i, {}, rng.choice(task.spec.labels)) for i in range(70)]
        return examples, [_noisy(examples, a, task.spec.labels, s) for s, a in enumerate((0.3, 0.6, 1.0))]
    words = "the a cat dog sat ran on under mat house quickly slowly red . , !".split()
    examples = [Example(i, {"source": ""}, " ".join(rng.choices(words, k=rng.randint(1, 14)))) for i in range(70)]
    def edited(keep: float) -> dict:
        return {
            e.idx: " ".join(w if rng.random() < keep else rng.choice(words) for w in e.label.split()) for e in examples
        }
    return examples, [edited(0.3), edited(0.7), {e.idx: "" for e in examples}]


@pytest.mark.parametrize("name", SUMMED_TASKS)
def test_draws_scored_from_summed_statistics_equal_draws_scored_one_by_one(name, monkeypatch):
    """Every task whose metrics are sums over examples (the classification tasks from confusion counts,
    translation from per-segment statistics) gives the draws its metric function gives."""
    task = get_task(name)
    examples, seeds = _examples_and_seeds(task)
    assert task.metric_statistics(seeds[0], examples) is not None  # the fast path is taken
    draws = 40 if task.spec.kind == "translation" else 120
    summed = bootstrap(task, examples, seeds, draws=draws, seed=5)
    monkeypatch.setattr(type(task), "metric_statistics", lambda self, *args: None)
    one_by_one = bootstrap(task, examples, seeds, draws=draws, seed=5)
    assert summed.point == one_by_one.point
    assert list(summed.draws) == list(one_by_one.draws)
    for metric in one_by_one.draws:
        scale = max(1.0, float(np.abs(one_by_one.draws[metric]).max()))
        np.testing.assert_allclose(summed.draws[metric], one_by_one.draws[metric], rtol=0, atol=1e-12 * scale)
        assert summed.low[metric] == pytest.approx(one_by_one.low[metric], abs=1e-12 * scale)


def test_a_task_whose_count_form_disagrees_is_scored_one_by_one_with_a_warning(monkeypatch):
    task, examples = _cb()
    predictions = _noisy(examples, 0.7, task.spec.labels, 1)
    exact = bootstrap(task, examples, [predictions], draws=50, seed=0)
    wrong = lambda self, confusion: {"accuracy": 0 * confusion.sum(axis=(-2, -1)), "macro_f1": 0, "average": 0}  # noqa: E731
    monkeypatch.setattr(type(task), "metrics_from_confusion", wrong)
    with pytest.warns(UserWarning, match="disagrees"):
        fallen_back = bootstrap(task, examples, [predictions], draws=50, seed=0)
    for metric in exact.draws:
        np.testing.assert_array_equal(fallen_back.draws[metric], exact.draws[metric])


def test_class_breakdown_pools_the_seeds_and_names_the_classes_a_seed_never_predicts():
    labels = ("entailment", "neutral", "contradiction")
    gold = ["entailment"] * 4 + ["neutral"] * 4 + ["contradiction"] * 2
    examples = [Example(i, {}, label) for i, label in enumerate(gold)]
    seed_1 = dict(enumerate(gold))  # all right
    seed_2 = dict(enumerate(["entailment"] * 4 + ["contradiction"] * 6))  # never neutral
    breakdown = class_breakdown(labels, examples, {1: seed_1, 2: seed_2})
    assert breakdown.labels == labels
    assert breakdown.recall == (1.0, 0.5, 1.0)  # neutral: 4 of 8 pooled gold rows
    assert breakdown.predicted == pytest.approx((8 / 20, 4 / 20, 8 / 20))
    assert breakdown.never_predicted == {2: ("neutral",)}
    # A label with no gold row has no recall; boolean label spaces (BoolQ) work as they are loaded from JSON.
    none_true = class_breakdown((False, True), [Example(0, {}, False)], {1: {0: True}})
    assert none_true.recall == (0.0, None) and none_true.never_predicted == {1: (False,)}
    with pytest.raises(ValueError, match="outside the task's label space"):
        class_breakdown(labels, examples, {1: {**seed_1, 0: "maybe"}})
