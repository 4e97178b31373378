"""SuperGLUE and SI-NLI metrics against the official evaluator's numbers."""

from __future__ import annotations

import json
import random

import numpy as np
import pytest

from slopeft.metrics.classification import (
    accuracy,
    accuracy_from_confusion,
    cb_scores,
    cb_scores_from_confusion,
    confusion_cells,
    multirc_scores,
    nli_scores,
    nli_scores_from_confusion,
)
from slopeft.tasks import get_tasks
from slopeft.tasks.submission import (
    parse_unit,
    read_prediction_files,
    score_unit,
    submission_files,
    write_zip,
)
from slopeft.tasks.superglue import superglue_leaderboard

# The evaluator's README (eval_question_answering, "Reference output check") prints these for its
# sample_submission.zip scored against sample_reference_dataset.zip.
EVALUATOR_SAMPLE_NUMBERS = {
    "BoolQ Accuracy": 0.6666666666666666,
    "CB Accuracy": 0.6666666666666666,
    "CB F1 Score": 0.4,
    "CB Average": 0.5333333333333333,
    "COPA Accuracy": 0.6666666666666666,
    "MultiRC F1a Score": 0.4,
    "MultiRC EM": 0.0,
    "MultiRC Average": 0.2,
    "RTE Accuracy": 0.6666666666666666,
    "WSC Accuracy": 0.0,
    "Average": 0.45555555555555555,
}

# Predictions that, against the `tiny_superglue` references, reproduce the sample numbers. The
# evaluator's own sample zips are not reachable from this machine, so the fixture is constructed to
# the same figures and goes through the same zip → parse → score path as a real submission.
SAMPLE_PREDICTIONS = {
    "BoolQ.jsonl": [{"idx": 0, "label": "true"}, {"idx": 1, "label": "TRUE"}, {"idx": 2, "label": "true"}],
    "CB.jsonl": [{"idx": i, "label": "entailment"} for i in range(3)],
    "COPA.jsonl": [{"idx": 0, "label": 0}, {"idx": 1, "label": 1}, {"idx": 2, "label": 0}],
    "RTE.jsonl": [{"idx": 0, "label": "entailment"}, {"idx": 1, "label": "not_entailment"}, {"idx": 2, "label": "not_entailment"}],
    "WSC.jsonl": [{"idx": 0, "label": "False"}, {"idx": 1, "label": "True"}, {"idx": 2, "label": "false"}],
    "MultiRC.jsonl": [
        {"idx": 0, "passage": {"questions": [
            {"idx": 0, "answers": [{"idx": 0, "label": 1}, {"idx": 1, "label": 1}]},
            {"idx": 1, "answers": [{"idx": 2, "label": 0}, {"idx": 3, "label": 0}]},
        ]}}
    ],
}


def _zip(tmp_path, files: dict[str, list[dict]]):
    texts = {name: "".join(json.dumps(r) + "\n" for r in rows) for name, rows in files.items()}
    return write_zip(texts, tmp_path / "sample_submission.zip")


def test_evaluator_sample_numbers(tiny_superglue, tmp_path):
    tasks = get_tasks("slo-superglue", tiny_superglue)
    predictions = parse_unit(tasks, read_prediction_files(_zip(tmp_path, SAMPLE_PREDICTIONS)), "val")
    board = score_unit(tasks, predictions, "val").board
    assert board.keys() == EVALUATOR_SAMPLE_NUMBERS.keys()
    for name, expected in EVALUATOR_SAMPLE_NUMBERS.items():
        assert board[name] == pytest.approx(expected, abs=1e-12), name


def test_gold_scored_against_itself_is_perfect(real_data_env):
    """The evaluator README's check: qa_validation.zip against itself gives 1.0 everywhere."""
    tasks = get_tasks("slo-superglue")
    gold = {t.name: {e.idx: e.label for e in t.examples("val")} for t in tasks}
    files = {k: v.encode() for k, v in submission_files(tasks, gold, "val").items()}
    board = score_unit(tasks, parse_unit(tasks, files, "val"), "val").board
    assert board and all(value == 1.0 for value in board.values()), board


def test_cb_macro_f1_runs_over_present_classes_only():
    # sklearn's macro average without labels= skips a class absent from both sides, as the evaluator does.
    two_classes = cb_scores(["entailment", "contradiction"], ["entailment", "contradiction"])
    assert two_classes["macro_f1"] == 1.0
    scores = cb_scores(["entailment", "neutral", "contradiction"], ["entailment", "entailment", "entailment"])
    assert scores["accuracy"] == pytest.approx(1 / 3)
    assert scores["macro_f1"] == pytest.approx((0.5 + 0 + 0) / 3)
    assert scores["average"] == pytest.approx((1 / 3 + 0.5 / 3) / 2)


def test_multirc_exact_match_needs_every_answer_of_a_question_right():
    scores = multirc_scores([0, 0, 1, 1], [1, 0, 0, 1], [1, 0, 0, 0])
    assert scores["em"] == 0.5
    assert scores["f1a"] == pytest.approx(2 * 1 / (2 * 1 + 0 + 1))


def test_multirc_all_zero_predictions_score_zero_f1():
    assert multirc_scores([0, 1], [1, 1], [0, 0]) == {"f1a": 0.0, "em": 0.0, "average": 0.0}


def test_nli_per_class_scores():
    refs = ["entailment", "neutral", "contradiction", "neutral"]
    preds = ["entailment", "neutral", "neutral", "contradiction"]
    scores = nli_scores(refs, preds)
    assert scores["accuracy"] == 0.5
    assert scores["precision(neutral)"] == 0.5
    assert scores["recall(neutral)"] == 0.5
    assert scores["f1(contradiction)"] == 0.0
    assert scores["f1(entailment)"] == 1.0


def test_leaderboard_average_only_with_all_six_tasks():
    partial = superglue_leaderboard({"BoolQ": {"accuracy": 1.0}})
    assert partial == {"BoolQ Accuracy": 1.0}


# -- the confusion-count forms the bootstrap uses ---------------------------------------------


def _confusion(references, predictions, labels):
    k = len(labels)
    return np.bincount(confusion_cells(references, predictions, labels), minlength=k * k).reshape(k, k)


def _random_pairs(rng: random.Random, labels, n: int, skew: float):
    """References and predictions over ``labels``; with a high skew some classes never appear."""
    weights = [skew**i for i in range(len(labels))]
    references = rng.choices(labels, weights, k=n)
    predictions = [r if rng.random() < 0.5 else rng.choices(labels, weights)[0] for r in references]
    return references, predictions


CASES = [(n, skew, seed) for n in (1, 3, 40) for skew in (1.0, 0.05) for seed in range(6)]


@pytest.mark.parametrize(("n", "skew", "seed"), CASES)
def test_nli_and_cb_scores_from_confusion_equal_the_scikit_learn_ones(n, skew, seed):
    rng = random.Random(seed)
    nli = ("entailment", "neutral", "contradiction")
    references, predictions = _random_pairs(rng, nli, n, skew)
    from_counts = nli_scores_from_confusion(_confusion(references, predictions, nli), nli)
    assert from_counts.keys() == nli_scores(references, predictions, nli).keys()
    for name, value in nli_scores(references, predictions, nli).items():
        assert float(from_counts[name]) == pytest.approx(value, abs=1e-12), name
    # CB's macro mean runs over the classes present, which a skewed draw leaves out.
    from_counts = cb_scores_from_confusion(_confusion(references, predictions, nli))
    for name, value in cb_scores(references, predictions).items():
        assert float(from_counts[name]) == pytest.approx(value, abs=1e-12), name
    assert float(accuracy_from_confusion(_confusion(references, predictions, nli))) == accuracy(
        references, predictions
    )


def test_confusion_scores_work_on_a_stack_of_matrices():
    rng = random.Random(3)
    nli = ("entailment", "neutral", "contradiction")
    pairs = [_random_pairs(rng, nli, 25, 0.3) for _ in range(5)]
    stacked = nli_scores_from_confusion(np.stack([_confusion(r, p, nli) for r, p in pairs]), nli)
    for i, (references, predictions) in enumerate(pairs):
        for name, value in nli_scores(references, predictions, nli).items():
            assert stacked[name][i] == pytest.approx(value, abs=1e-12)
    # Nothing predicted for a class: its precision is 0 (zero_division=0), as scikit-learn says.
    only_first = nli_scores_from_confusion(_confusion(["neutral", "entailment"], ["entailment"] * 2, nli), nli)
    assert float(only_first["precision(neutral)"]) == 0.0 and float(only_first["f1(contradiction)"]) == 0.0
