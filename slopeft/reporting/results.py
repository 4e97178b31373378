"""From the results store to summarised results: one group per (task view, model, method) over seeds.

A *task view* is a task as trained and scored: its training set and its validation set. A run
scored on several validation sets (``RunConfig.extra_val_sets``: RTE trained on the machine-translated
set, scored on the machine-translated and on the leaderboard's human-translated validation) appears
in one view per set. Views on the task's default sets are named by the task alone.

Reads completed rows of a grid's store and each run's ``val_predictions[.<set>].json``, rebuilds the
validation examples the run was scored on (through the task, never through training code), and
computes per group: mean ± std and a 95% t-interval over seeds, bootstrap intervals over examples,
degenerate-run flags, per-class recall and prediction shares (classification tasks), costs; per
(view, model): a paired bootstrap test of every method against the best one and against full
fine-tuning; per task group and (model, method): the group's leaderboard average when all its tasks
are present on the leaderboard's validation sets.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

from slopeft.errors import SubmissionError
from slopeft.records import RunRecord, load_predictions
from slopeft.reporting.stats import (
    DEFAULT_DRAWS,
    TRANSLATION_DRAWS,
    Bootstrap,
    ClassBreakdown,
    PairedTest,
    average_of,
    bootstrap,
    class_breakdown,
    compare,
    is_degenerate,
    mean_std,
    seed_interval,
)
from slopeft.tasks import TASK_GROUPS, TASKS, TaskGroup

#: The method every other one is compared with (the study's reference).
REFERENCE_METHOD = "full"


def default_sets(task: str) -> tuple[str, str]:
    """(training set, validation set) a run on ``task`` uses unless told otherwise."""
    spec = TASKS.get(task).spec if task in TASKS else None
    return (spec.train_sets[0], spec.val_sets[0]) if spec else ("human", "human")


def task_view(task: str, train_set: str | None, val_set: str | None) -> tuple[str, str, str]:
    """(train set, validation set, view name) of a run on ``task``: unset sets are the task's
    defaults, and the view is named by the task alone on its default sets."""
    default_train, default_val = default_sets(task)
    train_set, val_set = train_set or default_train, val_set or default_val
    notes = []
    if train_set != default_train:
        notes.append(f"train {train_set}")
    if val_set != default_val:
        notes.append(f"validation {val_set}")
    return train_set, val_set, task if not notes else f"{task} ({', '.join(notes)})"


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
    train_set: str = "human"
    val_set: str = "human"
    view: str = ""  # the task view's name (see :func:`task_view`)
    extra_val: bool = False  # scored on one of the run's extra validation sets, not its own
    method_name: str = ""  # the registered method (``method`` is the grid's label: ``full-lr5e-05``)


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
    vs_reference: PairedTest | None = None
    reference_method: str | None = None
    notes: list[str] = field(default_factory=list)
    train_set: str = "human"
    val_set: str = "human"
    view: str = ""
    classes: ClassBreakdown | None = None  # classification tasks: recall and prediction share per label

    def __post_init__(self) -> None:
        self.view = self.view or self.task

    @property
    def seed_interval(self) -> tuple[float, float] | None:
        """The 95% t-interval of the mean over seeds (None with one seed)."""
        return seed_interval([r.main for r in self.runs])

    @property
    def on_default_sets(self) -> bool:
        """True for the task's default training and validation sets."""
        return self.view == self.task

    @property
    def on_leaderboard_val(self) -> bool:
        """True when scored on the task's default validation set, the one the leaderboard's test set
        matches (whatever the run trained on: a submission may train on any set)."""
        spec = TASKS.get(self.task).spec if self.task in TASKS else None
        return spec is None or self.val_set == spec.val_sets[0]

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
        """The task views present, in order (a task's name for its default sets)."""
        return list(dict.fromkeys(g.view for g in self.groups))

    def by_task(self, view: str) -> list[Group]:
        return [g for g in self.groups if g.view == view]


def run_results(rows: Sequence[dict[str, Any]]) -> list[RunResult]:
    """Completed store rows as :class:`RunResult` (predictions loaded from their run folders)."""
    results = []
    for row in rows:
        if row["status"] != "completed" or not row.get("record"):
            continue
        record = RunRecord.from_dict(row["record"], f"the store's record of {row['run_id']}")
        metrics = record.metrics
        # One result per validation set the run was scored on: its own, then the extra ones.
        scorings = [(record.config.get("val_set"), metrics.val, metrics.main, False)]
        for val_set, extra in (metrics.extra_val or {}).items():
            scorings.append((val_set, extra["metrics"], extra["main"], True))
        for val_set, values, main, extra in scorings:
            train_set, val_set, view = task_view(row["task"], record.config.get("train_set"), val_set)
            predictions = None
            if row.get("run_dir"):
                predictions = load_predictions(row["run_dir"], val_set if extra else None)
            results.append(
                RunResult(
                    run_id=row["run_id"],
                    kind=row["kind"],
                    task=row["task"],
                    model=row["model"],
                    method=row["method"],
                    seed=row["seed"],
                    main_metric=metrics.main_metric,
                    main=float(main),
                    metrics=values,
                    cost=record.cost,
                    predictions=predictions,
                    degenerate=is_degenerate(predictions) if predictions is not None else None,
                    record=record,
                    method_name=row.get("method_name") or record.config.get("method") or "",
                    train_set=train_set,
                    val_set=val_set,
                    view=view,
                    extra_val=extra,
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
    keyed: dict[tuple[str, str, str, str], list[RunResult]] = {}
    for run in runs:
        keyed.setdefault((run.task, run.view, run.model, run.method), []).append(run)
    tasks_cache: dict[tuple[str, str], Any] = {}
    scores_cache: dict = {}  # identical prediction sets (degenerate runs) are scored once
    inputs: dict[int, tuple[Any, list, int]] = {}  # a group's task, examples and draws, for rebootstrap
    notes: list[str] = []
    groups: list[Group] = []
    for (task_name, view, model, method), members in sorted(keyed.items(), key=_group_order):
        members.sort(key=lambda r: r.seed)
        mean, std = mean_std([r.main for r in members])
        first = members[0]
        group = Group(
            task_name,
            model,
            method,
            first.kind,
            members,
            first.main_metric,
            mean,
            std,
            train_set=first.train_set,
            val_set=first.val_set,
            view=view,
        )
        groups.append(group)
        if any(r.predictions is None for r in members):
            group.notes.append("no saved predictions: no interval")
            continue
        if (task_name, first.val_set) not in tasks_cache:
            # Only the validation examples are read: the training set does not change them.
            spec = TASKS.get(task_name).spec
            val_set = first.val_set if len(spec.val_sets) > 1 else None
            tasks_cache[task_name, first.val_set] = get_task(task_name, data_dir, val_set=val_set)
        task = tasks_cache[task_name, first.val_set]
        covered = set(members[0].predictions)
        if any(set(r.predictions) != covered for r in members):
            group.notes.append("seeds were scored on different examples: no interval")
            continue
        examples = [e for e in task.examples("val") if e.idx in covered]
        n = min(draws, TRANSLATION_DRAWS) if task.spec.kind == "translation" else draws
        try:
            group.ci = bootstrap(
                task, examples, [r.predictions for r in members], draws=n, seed=seed, cache=scores_cache
            )
            if task.spec.labels is not None:
                group.classes = class_breakdown(task.spec.labels, examples, {r.seed: r.predictions for r in members})
        except (SubmissionError, ValueError) as err:
            # A predictions file the task cannot score (edited by hand, or written by other code): the
            # group keeps its recorded scores, flagged; the rest of the report is unaffected.
            group.ci = group.classes = None
            group.notes.append(f"saved predictions not scorable, no interval or tests: {err}")
            continue
        inputs[id(group)] = (task, examples, n)

    def rebootstrap(group: Group, seeds: set[int]) -> Bootstrap:
        task, examples, n = inputs[id(group)]
        chosen = [r.predictions for r in group.runs if r.seed in seeds]
        return bootstrap(task, examples, chosen, draws=n, seed=seed, cache=scores_cache)  # per-seed scores cached

    _paired_against_best(groups, rebootstrap)
    averages = [a for _, group in TASK_GROUPS.items() for a in _group_averages(group, groups)]
    return Results(grid, groups, averages, failed, draws, notes)


def _group_order(item) -> tuple:
    (task, view, model, method), members = item
    return (task, view != task, view, members[0].kind != "baseline", model, method)


#: The bootstrap of a group's runs of the given seeds (the same draws as its ``ci``).
Rebootstrap = Callable[[Group, set[int]], Bootstrap]


def _paired(group: Group, other: Group, rebootstrap: Rebootstrap) -> PairedTest | None:
    """``group`` against ``other`` on the same examples, over the seeds both have: while a study is
    under way one system may have more seeds than the other, and comparing seed 1 + 2 with seed 1
    alone would mix seed-to-seed variation into the difference (a seed fixes the head's start and
    the data order for every method alike)."""
    if group.ci is None or other.ci is None:
        return None
    if set(group.runs[0].predictions or {}) != set(other.runs[0].predictions or {}):
        group.notes.append(f"scored on other examples than {other.method}: no paired test")
        return None
    mine, theirs = {r.seed for r in group.runs}, {r.seed for r in other.runs}
    if mine == theirs:
        return compare(group.ci, other.ci, group.main_metric)
    common = mine & theirs
    if not common:
        group.notes.append(f"no seed in common with {other.method}: compared over every seed of each")
        return compare(group.ci, other.ci, group.main_metric)
    test = compare(rebootstrap(group, common), rebootstrap(other, common), group.main_metric)
    return replace(test, seeds=tuple(sorted(common)))


def _paired_against_best(groups: list[Group], rebootstrap: Rebootstrap) -> None:
    """Within each (task view, model), the paired test of every method against the best-scoring one
    and against full fine-tuning (:data:`REFERENCE_METHOD`) where it ran; in a sweep, whose variants
    are labelled by their settings (``full-lr5e-05``), against its best-scoring full fine-tuning."""
    by_key: dict[tuple[str, str], list[Group]] = {}
    for group in groups:
        if group.kind == "train":
            by_key.setdefault((group.view, group.model), []).append(group)
    for members in by_key.values():
        best = max(members, key=lambda g: g.mean)
        reference = next((g for g in members if g.method == REFERENCE_METHOD), None)
        if reference is None:
            variants = [g for g in members if g.runs[0].method_name == REFERENCE_METHOD]
            reference = max(variants, key=lambda g: g.mean) if variants else None
        for group in members:
            group.best_method = best.method
            if group is not best:
                group.vs_best = _paired(group, best, rebootstrap)
            if reference is not None and group is not reference:
                group.reference_method = reference.method
                group.vs_reference = group.vs_best if reference is best else _paired(group, reference, rebootstrap)


def _group_averages(task_group: TaskGroup, groups: list[Group]) -> list[Average]:
    members, part = task_group.members, task_group.average_parts
    by_system: dict[tuple[str, str], dict[str, Group]] = {}
    for group in groups:
        # The board averages the leaderboard's validation sets; a system trained on two sets of a task
        # enters with the task's default training set.
        if group.task in members and group.on_leaderboard_val:
            tasks = by_system.setdefault((group.model, group.method), {})
            if group.task not in tasks or not tasks[group.task].on_default_sets:
                tasks[group.task] = group
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
                _, low, high = average_of(
                    [(tasks[t].ci.point[part[t]], tasks[t].ci.draws[part[t]]) for t in members]
                )
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
