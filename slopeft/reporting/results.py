"""From the results store to summarised results: one group per (task, model, method) over seeds.

Reads completed rows of a grid's store and each run's ``val_predictions.json``, rebuilds the
validation examples the run was scored on (through the task, never through training code), and
computes per group: mean ± std over seeds, bootstrap intervals, degenerate-run flags, costs;
per (task, model): a paired bootstrap test of every method against the best one; per task group
and (model, method): the group's leaderboard average when all its tasks are present.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from slopeft.records import RunRecord, load_predictions
from slopeft.reporting.stats import (
    DEFAULT_DRAWS,
    TRANSLATION_DRAWS,
    Bootstrap,
    PairedTest,
    average_of,
    bootstrap,
    compare,
    is_degenerate,
    mean_std,
)
from slopeft.tasks import TASK_GROUPS, TaskGroup


@dataclass
class RunResult:
    run_id: str
    kind: str
    task: str
    model: str
    method: str
    seed: int
    main_metric: str
    main: float
    metrics: dict[str, float]
    cost: dict[str, Any]
    predictions: dict[int, Any] | None
    degenerate: bool | None  # None: no saved predictions to tell
    record: RunRecord


@dataclass
class Group:
    """One system on one task: every seed's run, summarised."""

    task: str
    model: str
    method: str
    kind: str
    runs: list[RunResult]
    main_metric: str
    mean: float
    std: float | None
    ci: Bootstrap | None = None
    vs_best: PairedTest | None = None
    best_method: str | None = None
    notes: list[str] = field(default_factory=list)

    @property
    def degenerate_runs(self) -> int:
        return sum(bool(r.degenerate) for r in self.runs)

    @property
    def seeds(self) -> int:
        return len(self.runs)

    def cost(self, key: str, how: str = "mean") -> float | None:
        values = [r.cost.get(key) for r in self.runs if r.cost.get(key) is not None]
        if not values:
            return None
        return max(values) if how == "max" else sum(values) / len(values)

    @property
    def label(self) -> str:
        return f"{self.model} · {self.method}"


@dataclass
class Average:
    """A task group's leaderboard average of one (model, method)."""

    model: str
    method: str
    mean: float
    std: float | None
    seeds: int
    low: float | None
    high: float | None
    degenerate_runs: int
    group: str = ""  # the task group's name


@dataclass
class Results:
    grid: str
    groups: list[Group]
    averages: list[Average]
    failed: list[dict[str, Any]]
    draws: int
    notes: list[str] = field(default_factory=list)

    def tasks(self) -> list[str]:
        return list(dict.fromkeys(g.task for g in self.groups))

    def by_task(self, task: str) -> list[Group]:
        return [g for g in self.groups if g.task == task]


def run_results(rows: Sequence[dict[str, Any]]) -> list[RunResult]:
    """Completed store rows as :class:`RunResult` (predictions loaded from their run folders)."""
    results = []
    for row in rows:
        if row["status"] != "completed" or not row.get("record"):
            continue
        record = RunRecord.from_dict(row["record"], f"the store's record of {row['run_id']}")
        predictions = load_predictions(row["run_dir"]) if row.get("run_dir") else None
        metrics = record.metrics
        results.append(
            RunResult(
                run_id=row["run_id"],
                kind=row["kind"],
                task=row["task"],
                model=row["model"],
                method=row["method"],
                seed=row["seed"],
                main_metric=metrics.main_metric,
                main=float(metrics.main),
                metrics=metrics.val,
                cost=record.cost,
                predictions=predictions,
                degenerate=is_degenerate(predictions) if predictions is not None else None,
                record=record,
            )
        )
    return results


def summarise(
    rows: Sequence[dict[str, Any]],
    grid: str = "",
    data_dir: str | None = None,
    draws: int = DEFAULT_DRAWS,
    seed: int = 0,
) -> Results:
    """Groups, intervals, paired tests and SuperGLUE averages of a grid's store rows.

    Args:
        rows: the store's rows (``ResultsStore.rows()``).
        grid: the grid's name (for titles).
        data_dir: where the task data is (else $SLOPEFT_DATA); needed for the labels of the
            validation examples the bootstrap resamples.
        draws: bootstrap draws (translation tasks use at most :data:`TRANSLATION_DRAWS`).
        seed: the draws' seed.
    """
    from slopeft.tasks import get_task

    runs = run_results(rows)
    failed = [r for r in rows if r["status"] != "completed"]
    keyed: dict[tuple[str, str, str], list[RunResult]] = {}
    for run in runs:
        keyed.setdefault((run.task, run.model, run.method), []).append(run)
    tasks_cache: dict[str, Any] = {}
    scores_cache: dict = {}  # identical prediction sets (degenerate runs) are scored once
    notes: list[str] = []
    groups: list[Group] = []
    for (task_name, model, method), members in sorted(keyed.items(), key=_group_order):
        members.sort(key=lambda r: r.seed)
        mean, std = mean_std([r.main for r in members])
        group = Group(task_name, model, method, members[0].kind, members, members[0].main_metric, mean, std)
        groups.append(group)
        if any(r.predictions is None for r in members):
            group.notes.append("no saved predictions: no interval")
            continue
        if task_name not in tasks_cache:
            tasks_cache[task_name] = get_task(task_name, data_dir)
        task = tasks_cache[task_name]
        covered = set(members[0].predictions)
        if any(set(r.predictions) != covered for r in members):
            group.notes.append("seeds were scored on different examples: no interval")
            continue
        examples = [e for e in task.examples("val") if e.idx in covered]
        n = min(draws, TRANSLATION_DRAWS) if task.spec.kind == "translation" else draws
        group.ci = bootstrap(
            task, examples, [r.predictions for r in members], draws=n, seed=seed, cache=scores_cache
        )
    _paired_against_best(groups)
    averages = [a for _, group in TASK_GROUPS.items() for a in _group_averages(group, groups)]
    return Results(grid, groups, averages, failed, draws, notes)


def _group_order(item) -> tuple:
    (task, model, method), members = item
    return (task, members[0].kind != "baseline", model, method)


def _paired_against_best(groups: list[Group]) -> None:
    """Within each (task, model), the paired test of every method against the best-scoring one."""
    by_key: dict[tuple[str, str], list[Group]] = {}
    for group in groups:
        if group.kind == "train":
            by_key.setdefault((group.task, group.model), []).append(group)
    for members in by_key.values():
        best = max(members, key=lambda g: g.mean)
        for group in members:
            group.best_method = best.method
            if group is best or group.ci is None or best.ci is None:
                continue
            if set(group.runs[0].predictions or {}) != set(best.runs[0].predictions or {}):
                group.notes.append(f"scored on other examples than {best.method}: no paired test")
                continue
            group.vs_best = compare(group.ci, best.ci, group.main_metric)


def _group_averages(task_group: TaskGroup, groups: list[Group]) -> list[Average]:
    members, part = task_group.members, task_group.average_parts
    by_system: dict[tuple[str, str], dict[str, Group]] = {}
    for group in groups:
        if group.task in members:
            by_system.setdefault((group.model, group.method), {})[group.task] = group
    averages = []
    for (model, method), tasks in by_system.items():
        if set(tasks) != set(members):
            continue
        seeds = sorted(set.intersection(*({r.seed for r in g.runs} for g in tasks.values())))
        per_seed = []
        for seed in seeds:
            parts = [next(r for r in tasks[t].runs if r.seed == seed).metrics[part[t]] for t in members]
            per_seed.append(sum(parts) / len(parts))
        if not per_seed:
            continue
        mean, std = mean_std(per_seed)
        low = high = None
        if all(tasks[t].ci is not None for t in members):
            lengths = {len(tasks[t].ci.draws[part[t]]) for t in members}
            if len(lengths) == 1:
                _, low, high = average_of([(tasks[t].ci.point[part[t]], tasks[t].ci.draws[part[t]]) for t in members])
        averages.append(
            Average(
                model,
                method,
                mean,
                std,
                len(seeds),
                low,
                high,
                sum(g.degenerate_runs for g in tasks.values()),
                task_group.name,
            )
        )
    return averages
