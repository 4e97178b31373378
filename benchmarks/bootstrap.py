"""Bootstrap scoring: every draw scored from summed per-example statistics vs by the metric function.

A report bootstraps every (task, method) group over its seeds, 1,000 draws each (200 for
translation). For SI-NLI the metric function is ten scikit-learn calls, for translation NLTK's BLEU,
chrF and METEOR over every segment, which made the sweep's report (55 runs) take more than 30
CPU-minutes. Reports now score each draw from the task's summed per-example statistics
(``Task.metric_statistics``: confusion counts, per-segment values and n-gram counts); this script
runs both paths side by side, in one process, on a grid's committed validation predictions, and
prints the time per run and the largest difference between the two paths' draws.

    python benchmarks/bootstrap.py [--results results/sweep] [--task si-nli] [--runs 3] [--draws 1000]
    python benchmarks/bootstrap.py --results results/study --task mt/sl-en --draws 200
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np

from slopeft.records import load_predictions, load_record
from slopeft.reporting.stats import bootstrap
from slopeft.tasks import get_task


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--results", type=Path, default=Path("results/sweep"))
    parser.add_argument("--task", default="si-nli")
    parser.add_argument("--runs", type=int, default=3, help="how many of the grid's runs to score")
    parser.add_argument("--draws", type=int, default=1000)
    args = parser.parse_args()

    task = get_task(args.task)
    prediction_sets = []
    for record_file in sorted(args.results.glob("*/record.json")):
        if load_record(record_file).task == args.task:
            predictions = load_predictions(record_file.parent)
            if predictions is not None:
                prediction_sets.append((record_file.parent.name, predictions))
        if len(prediction_sets) == args.runs:
            break
    if not prediction_sets:
        raise SystemExit(f"no {args.task} run with saved predictions under {args.results}")
    examples = [e for e in task.examples("val") if e.idx in prediction_sets[0][1]]

    def timed(predictions) -> tuple[float, dict[str, np.ndarray]]:
        start = time.perf_counter()
        result = bootstrap(task, examples, [predictions], draws=args.draws, seed=0)
        return time.perf_counter() - start, result.draws

    counted_s, one_by_one_s, largest = [], [], 0.0
    for _name, predictions in prediction_sets:
        seconds, counted = timed(predictions)
        counted_s.append(seconds)
        original = type(task).metric_statistics
        type(task).metric_statistics = lambda self, *args: None  # the metric-per-draw path
        try:
            seconds, one_by_one = timed(predictions)
        finally:
            type(task).metric_statistics = original
        one_by_one_s.append(seconds)
        largest = max(largest, *(float(np.abs(counted[m] - one_by_one[m]).max()) for m in counted))

    counted_mean, one_by_one_mean = float(np.mean(counted_s)), float(np.mean(one_by_one_s))
    print(f"{args.task}: {len(prediction_sets)} runs × {args.draws} draws of {len(examples)} examples")
    print("| path | seconds per run | vs metric per draw |")
    print("| --- | --- | --- |")
    print(f"| metric function per draw | {one_by_one_mean:.2f} | 1× |")
    print(f"| summed statistics | {counted_mean:.4f} | {one_by_one_mean / counted_mean:.0f}× faster |")
    print(f"largest difference between the two paths' draws: {largest:.1e} (metrics on their own scale)")


if __name__ == "__main__":
    main()
