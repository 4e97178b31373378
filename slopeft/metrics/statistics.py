"""Per-example sufficient statistics of a metric: how a bootstrap scores a thousand resampled sets at once.

Many SloBench metrics are a function of sums over examples: accuracy and per-class F1 of the
confusion counts, NLTK's sentence averages and corpus BLEU of per-sentence values and n-gram counts,
sacreBLEU's corpus scores of its per-sentence statistics. For such a metric, a task gives one row of
numbers per example; the metric of any multiset of examples (a bootstrap draw: example i drawn c_i
times) is ``finish(Σ c_i · row_i)``, so B draws cost one (B × n) @ (n × d) product and one ``finish``
instead of B calls of the metric function. ``finish`` must reproduce the metric function: the
bootstrap compares the two on the full set before it uses a task's statistics, and tests hold every
task's two paths equal draw by draw.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class MetricStatistics:
    """Attributes:
    values: (examples × d) one row of statistics per example, in the order of the examples scored.
    finish: summed rows, shape (..., d) → metric name → array of shape (...).
    """

    values: np.ndarray
    finish: Callable[[np.ndarray], dict[str, np.ndarray]]

    def metrics_of_counts(self, counts: np.ndarray) -> dict[str, np.ndarray]:
        """The metrics of each row of ``counts`` (draws × examples: how often each example is drawn)."""
        return self.finish(counts @ self.values)


def confusion_statistics(
    cells: np.ndarray, k: int, from_confusion: Callable[[np.ndarray], dict[str, np.ndarray]]
) -> MetricStatistics:
    """Statistics of a metric of the confusion matrix: one-hot confusion cells per example.

    Args:
        cells: per example, its cell (reference index × k + prediction index).
        k: the number of classes.
        from_confusion: (..., k, k) confusion counts → metric → array (the metric's count form).
    """
    one_hot = np.zeros((len(cells), k * k), dtype=np.int64)
    one_hot[np.arange(len(cells)), cells] = 1
    return MetricStatistics(one_hot, lambda summed: from_confusion(summed.reshape(*summed.shape[:-1], k, k)))
