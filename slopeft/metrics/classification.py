"""Pure metric functions for the SloBench classification boards.

Each function reproduces one computation of the official evaluator
(``clarinsi/slobench-eval-docker``: ``eval_question_answering/qa_eval.py`` and
``eval_sequence_pair_classification/eval_seq_pair.py``) with scikit-learn, as those
scripts do, so the numbers are identical.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Hashable, Mapping, Sequence

import numpy as np
from sklearn.metrics import accuracy_score, f1_score, precision_score, recall_score


def accuracy(references: Sequence[Hashable], predictions: Sequence[Hashable]) -> float:
    """Share of predictions equal to the reference."""
    _same_length(references, predictions)
    return float(accuracy_score(list(references), list(predictions)))


def cb_scores(references: Sequence[str], predictions: Sequence[str]) -> dict[str, float]:
    """CB: accuracy, macro-F1 and their mean ("CB Average").

    The evaluator calls ``f1_score(average="macro")`` without ``labels=``, so the macro mean
    runs over the classes present in references or predictions, not always all three.
    """
    _same_length(references, predictions)
    acc = float(accuracy_score(references, predictions))
    macro_f1 = float(f1_score(references, predictions, average="macro", zero_division=0))
    return {"accuracy": acc, "macro_f1": macro_f1, "average": (acc + macro_f1) / 2}


def multirc_scores(
    question_ids: Sequence[int], references: Sequence[int], predictions: Sequence[int]
) -> dict[str, float]:
    """MultiRC: F1 over all answers (positive class 1), exact match per question, their mean.

    Args:
        question_ids: for each answer, the idx of its question.
        references, predictions: 0/1 per answer, aligned with ``question_ids``.
    """
    _same_length(references, predictions)
    _same_length(question_ids, references)
    # The evaluator's f1_score uses sklearn's default zero_division, which yields 0 when
    # nothing is predicted positive (the majority baseline); pass it explicitly, same value.
    f1a = float(f1_score(list(references), list(predictions), pos_label=1, zero_division=0))
    correct: dict[int, bool] = defaultdict(lambda: True)
    for question, gold, pred in zip(question_ids, references, predictions, strict=True):
        correct[question] &= int(gold) == int(pred)
    em = sum(correct.values()) / len(correct)
    return {"f1a": f1a, "em": float(em), "average": (f1a + em) / 2}


def nli_scores(
    references: Sequence[str],
    predictions: Sequence[str],
    classes: Sequence[str] = ("entailment", "neutral", "contradiction"),
) -> dict[str, float]:
    """SI-NLI: accuracy plus one-vs-rest precision, recall and F1 for each class."""
    _same_length(references, predictions)
    scores = {"accuracy": float(accuracy_score(references, predictions))}
    for cls in classes:
        gold = [r == cls for r in references]
        pred = [p == cls for p in predictions]
        scores[f"precision({cls})"] = float(precision_score(gold, pred, zero_division=0))
        scores[f"recall({cls})"] = float(recall_score(gold, pred, zero_division=0))
        scores[f"f1({cls})"] = float(f1_score(gold, pred, zero_division=0))
    return scores


# -- the same metrics from confusion counts --------------------------------------------------
# A bootstrap scores a thousand resampled validation sets per run. Calling scikit-learn on each
# costs ~10 ms per metric (input validation dominates), which made a report of a 240-run study take
# CPU-hours. Where a metric depends only on the (reference, prediction) pair counts, these compute
# it for a whole stack of confusion matrices in one numpy expression. They follow scikit-learn's
# definitions (zero_division=0; CB's macro mean over the classes present) and tests hold them equal
# to the functions above to 1e-12 (tests/metrics/test_classification.py).
#
# ``confusion`` is (..., K, K): rows are references, columns predictions, classes in the task's
# label order; every function returns arrays of shape ``confusion.shape[:-2]``.


def confusion_cells(
    references: Sequence[Hashable], predictions: Sequence[Hashable], labels: Sequence[Hashable]
) -> np.ndarray:
    """Per example, the flat confusion cell (reference index × K + prediction index)."""
    _same_length(references, predictions)
    position = {label: i for i, label in enumerate(labels)}
    k = len(labels)
    return np.asarray([position[r] * k + position[p] for r, p in zip(references, predictions, strict=True)])


def accuracy_from_confusion(confusion: np.ndarray) -> np.ndarray:
    total = confusion.sum(axis=(-2, -1))
    return np.trace(confusion, axis1=-2, axis2=-1) / total


def _one_vs_rest(confusion: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(true positives, false positives, false negatives) per class, shape (..., K)."""
    tp = np.diagonal(confusion, axis1=-2, axis2=-1)
    return tp, confusion.sum(axis=-2) - tp, confusion.sum(axis=-1) - tp


def _ratio(numerator: np.ndarray, denominator: np.ndarray) -> np.ndarray:
    """numerator / denominator, 0 where the denominator is 0 (scikit-learn's zero_division=0)."""
    safe = np.where(denominator == 0, 1, denominator)
    return np.where(denominator == 0, 0.0, numerator / safe)


def _f1(tp: np.ndarray, fp: np.ndarray, fn: np.ndarray) -> np.ndarray:
    # scikit-learn's own form (2·tp / (2·tp + fp + fn)), not 2PR / (P + R), so the floats agree.
    return _ratio(2 * tp, 2 * tp + fp + fn)


def cb_scores_from_confusion(confusion: np.ndarray) -> dict[str, np.ndarray]:
    """:func:`cb_scores` from confusion counts."""
    acc = accuracy_from_confusion(confusion)
    tp, fp, fn = _one_vs_rest(confusion)
    present = (tp + fp + fn) > 0
    macro_f1 = np.where(present, _f1(tp, fp, fn), 0.0).sum(axis=-1) / present.sum(axis=-1)
    return {"accuracy": acc, "macro_f1": macro_f1, "average": (acc + macro_f1) / 2}


def nli_scores_from_confusion(confusion: np.ndarray, classes: Sequence[str]) -> dict[str, np.ndarray]:
    """:func:`nli_scores` from confusion counts (classes in the matrix's order)."""
    scores = {"accuracy": accuracy_from_confusion(confusion)}
    tp, fp, fn = _one_vs_rest(confusion)
    for i, cls in enumerate(classes):
        scores[f"precision({cls})"] = _ratio(tp[..., i], tp[..., i] + fp[..., i])
        scores[f"recall({cls})"] = _ratio(tp[..., i], tp[..., i] + fn[..., i])
        scores[f"f1({cls})"] = _f1(tp[..., i], fp[..., i], fn[..., i])
    return scores


def leaderboard(
    per_task: Mapping[str, Mapping[str, float]],
    names: Mapping[tuple[str, str], str],
    average_parts: Mapping[str, str],
) -> dict[str, float]:
    """A leaderboard's metric dictionary from per-task scores, as the evaluator writes it.

    Args:
        per_task: task → metric → value, for the tasks scored.
        names: (task, metric) → the name the leaderboard gives that number; other metrics are left out.
        average_parts: task → the metric that enters the board's ``Average`` (a plain mean over the
            tasks); ``Average`` is present only when every one of these tasks is scored.
    """
    board = {
        names[(task, key)]: value
        for task, scores in per_task.items()
        for key, value in scores.items()
        if (task, key) in names
    }
    if average_parts and all(task in per_task for task in average_parts):
        parts = [per_task[task][key] for task, key in average_parts.items()]
        board["Average"] = sum(parts) / len(parts)
    return board


def _same_length(a: Sequence, b: Sequence) -> None:
    if len(a) != len(b):
        raise ValueError(f"references and predictions differ in length ({len(a)} vs {len(b)})")
    if not a:
        raise ValueError("cannot score an empty set of predictions")
