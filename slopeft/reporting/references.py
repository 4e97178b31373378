"""Published reference points (``docs/slobench.md``), shipped with their sources, and our numbers beside them."""

from __future__ import annotations

import csv
import io
from dataclasses import dataclass
from importlib import resources

from slopeft.reporting.results import Group, Results, default_sets
from slopeft.tasks import TASKS

REFERENCE_FILE = "reference_points.csv"


def _split_note(task: str) -> str:
    """How our split compares with a reference point published on the leaderboard's test set."""
    validation = TASKS.get(task).spec.validation if task in TASKS else ""
    return f"published on the SloBench test set; ours on {validation}" if validation else "same split"


@dataclass(frozen=True)
class ReferencePoint:
    board: str
    split: str
    system: str
    task: str
    metric: str
    value: float
    source: str


def reference_points() -> list[ReferencePoint]:
    """The shipped reference points (``slopeft/resources/reference_points.csv``)."""
    text = resources.files("slopeft").joinpath("resources", REFERENCE_FILE).read_text(encoding="utf-8")
    return [
        ReferencePoint(
            row["board"],
            row["split"],
            row["system"],
            row["task"],
            row["metric"],
            float(row["value"]),
            row["source"],
        )
        for row in csv.DictReader(io.StringIO(text))
    ]


@dataclass
class Comparison:
    reference: ReferencePoint
    ours: float | None
    by: str
    note: str

    @property
    def delta(self) -> float | None:
        return None if self.ours is None else self.ours - self.reference.value


def _metric_mean(group: Group, metric: str) -> float | None:
    if group.ci is not None and metric in group.ci.point:
        return group.ci.point[metric]
    values = [r.metrics.get(metric) for r in group.runs]
    if any(v is None for v in values):
        return None
    return sum(values) / len(values)


def _limited(group: Group) -> int:
    """The validation examples a group was scored on when it was limited (0: the whole set)."""
    counts = {r.record.val_examples for r in group.runs}
    return max(counts) if group.runs[0].record.eval_limit else 0


def compare_with_references(results: Results) -> list[Comparison]:
    """For each reference point, our best system on the same task and metric (our majority baseline for
    the majority rows), with what differs between the two numbers."""
    rows = []
    for ref in reference_points():
        majority = ref.system.lower().startswith("majority")
        candidates = [
            g
            for g in results.groups
            if g.task == ref.task
            and g.on_leaderboard_val
            and ((g.kind == "baseline" and g.method == "majority") if majority else g.kind == "train")
        ]
        # A reference point was trained on the task's default training set (the majority rows: the
        # majority class of the human-translated train): ours on another set is a different
        # system, used only when the grid has none on the default set, and then said.
        default_train, _ = default_sets(ref.task)
        candidates = [g for g in candidates if g.train_set == default_train] or candidates
        scored = [(v, g) for g in candidates if (v := _metric_mean(g, ref.metric)) is not None]
        if not scored:
            reason = "not computed here" if candidates else "no such run in this grid"
            if ref.metric == "BERTScore":
                reason = "BERTScore is not computed offline (it needs roberta-large / mBERT weights)"
            rows.append(Comparison(ref, None, "—", reason))
            continue
        value, group = max(scored, key=lambda item: item[0])
        notes = [_split_note(ref.task)] if ref.split == "test" else ["same split"]
        if group.train_set != default_train:
            notes.append(
                f"ours trained on the {group.train_set} training set, the reference on the {default_train} one"
            )
        if limit := _limited(group):
            notes.append(f"ours on the first {limit} validation examples only")
        if group.degenerate_runs:
            notes.append(f"{group.degenerate_runs}/{group.seeds} of our runs degenerate")
        rows.append(Comparison(ref, value, f"{group.model} · {group.method}", "; ".join(notes)))
    return rows
