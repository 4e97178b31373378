"""Rich tables for the terminal."""

from __future__ import annotations

from collections.abc import Iterable, Mapping

from rich.table import Table

from slopeft.records import RunRecord
from slopeft.tasks import group_of


def format_value(value: object) -> str:
    if isinstance(value, float):
        return f"{value:.3f}"
    return str(value)


def table(title: str, columns: Iterable[str], rows: Iterable[Iterable[object]]) -> Table:
    """A simple rich table; floats shown with three decimals."""
    result = Table(title=title, title_justify="left")
    for column in columns:
        result.add_column(column)
    for row in rows:
        result.add_row(*(format_value(v) for v in row))
    return result


def metrics_table(
    title: str, per_task: Mapping[str, Mapping[str, float]], board: Mapping[str, float] | None = None
) -> Table:
    """One row per (task, metric); the leaderboard average, when present, as the last row."""
    rows = [(task, name, value) for task, scores in per_task.items() for name, value in scores.items()]
    if board and "Average" in board:
        groups = sorted({group.name for task in per_task if (group := group_of(task)) is not None})
        rows.append((", ".join(groups) or "all", "Average (leaderboard)", board["Average"]))
    return table(title, ("task", "metric", "value"), rows)


def run_table(records: Iterable[RunRecord]) -> Table:
    """One row per training run's record: score and what it cost."""
    rows = []
    for r in records:
        cost = r.cost
        rows.append(
            (
                r.task,
                r.config["model"],
                r.config["method"],
                r.config["seed"],
                f"{r.metrics.main_metric} {r.metrics.main:.3f}",
                f"{cost['trainable']:,}",
                f"{cost['trainable_share']:.3%}",
                f"{cost['adapter_bytes'] / 2**20:.2f}",
                f"{cost['train_seconds']:.0f}",
                f"{cost['train_examples_per_s']:.1f}",
                f"{cost['peak_rss_mb']:.0f}" if cost.get("peak_rss_mb") else "-",
            )
        )
    return table(
        "Runs",
        (
            "task",
            "model",
            "method",
            "seed",
            "val",
            "trainable",
            "share of base",
            "adapter MB",
            "train s",
            "train ex/s",
            "peak RSS MB",
        ),
        rows,
    )
