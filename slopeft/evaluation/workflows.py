"""What the evaluation commands do, as functions (the CLI only parses flags and prints)."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

from slopeft.errors import ConfigError
from slopeft.evaluation.baselines import run_baseline
from slopeft.tasks import SPLITS, TASKS, expand_task_names, get_tasks
from slopeft.tasks.submission import (
    ScoreReport,
    parse_unit,
    read_prediction_files,
    score_unit,
    submission_files,
    write_zip,
)


@dataclass
class WorkflowResult:
    title: str
    report: ScoreReport | None
    messages: list[str] = field(default_factory=list)

    def as_json(self) -> dict:
        if self.report is None:
            return {}
        return {
            "per_task": self.report.per_task,
            "leaderboard": self.report.board,
            "unavailable": self.report.notes,
        }


def translation_options(
    task_name: str, train_src: Path | None = None, train_tgt: Path | None = None, test_src: Path | None = None
) -> dict:
    """Task options for user-provided parallel files; only the tasks whose spec lists them take them."""
    options: dict = {}
    if (train_src is None) != (train_tgt is None):
        raise ConfigError(
            "Pass --train-src and --train-tgt together: two line-aligned files, source and target."
        )
    if train_src is not None:
        options["train_files"] = (train_src, train_tgt)
    if test_src is not None:
        options["test_source"] = test_src
    if options and any(set(options) - set(TASKS.get(n).spec.options) for n in expand_task_names(task_name)):
        takers = [name for name, task in TASKS.items() if set(options) <= set(task.spec.options)]
        raise ConfigError(
            f"--train-src/--train-tgt/--test-src apply to the tasks that read your own parallel files "
            f"({', '.join(takers)}), not {task_name}."
        )
    return options


def _check_split(split: str) -> None:
    if split not in SPLITS:
        raise ConfigError(f"Unknown split {split!r}; choose train, val or test.")


def baseline_workflow(
    task_name: str,
    strategy: str,
    split: str,
    train_set: str | None,
    seed: int,
    data_dir: Path | None,
    output: Path | None,
    submission: Path | None,
    task_options: dict | None = None,
    strategy_options: dict | None = None,
) -> WorkflowResult:
    """Runs a baseline, writes its predictions (submission format) and, on a labelled split, its metrics."""
    _check_split(split)
    tasks = get_tasks(task_name, data_dir, train_set, **(task_options or {}))
    notes: list[str] = []
    predictions = run_baseline(tasks, strategy, split, seed=seed, notes=notes, **(strategy_options or {}))
    files = submission_files(tasks, predictions, split)
    output = output or Path("outputs") / "baselines" / task_name.replace("/", "-") / f"{strategy}-{split}"
    predictions_dir = output / "predictions"
    predictions_dir.mkdir(parents=True, exist_ok=True)
    for name, text in files.items():
        (predictions_dir / name).write_text(text, encoding="utf-8")
    messages = [*notes, f"Predictions written to {predictions_dir}"]
    report = None
    if split != "test":
        report = score_unit(tasks, predictions, split)
        metrics = {
            "task": task_name,
            "strategy": strategy,
            "strategy_options": strategy_options or {},
            "split": split,
            "seed": seed,
            "train_set": train_set or "default",
            **WorkflowResult("", report).as_json(),
        }
        (output / "metrics.json").write_text(json.dumps(metrics, indent=2, ensure_ascii=False) + "\n")
        messages.append(f"Metrics written to {output / 'metrics.json'}")
    if submission is not None:
        write_zip(files, submission)
        messages.append(f"Submission zip written to {submission}")
    title = f"{strategy} baseline · {task_name} · {split}"
    return WorkflowResult(title, report, messages)


def score_workflow(
    task_name: str, predictions_path: Path, split: str, data_dir: Path | None
) -> WorkflowResult:
    """Scores a submission zip or folder on a labelled split."""
    _check_split(split)
    if split == "test":
        raise ConfigError(
            "The test split has no labels here (the leaderboard withholds them). Score --split val, "
            "or use `slopeft submission check` to validate a test submission."
        )
    tasks = get_tasks(task_name, data_dir)
    predictions = parse_unit(tasks, read_prediction_files(predictions_path), split)
    return WorkflowResult(
        f"{task_name} · {split} · {predictions_path}", score_unit(tasks, predictions, split)
    )


def check_workflow(
    task_name: str, zip_path: Path, data_dir: Path | None, task_options: dict | None = None
) -> str:
    """Validates a test submission; returns a one-line summary."""
    tasks = get_tasks(task_name, data_dir, **(task_options or {}))
    predictions = parse_unit(tasks, read_prediction_files(zip_path), "test")
    counts = ", ".join(f"{name.split('/')[-1]} {len(p)}" for name, p in predictions.items())
    summary = f"valid submission for {task_name} ({counts} predictions)"
    for note in dict.fromkeys(n for t in tasks if (n := t.local_test_note())):
        summary += f". {note}"
    return summary


def evaluate_workflow(run_dir: Path, split: str, data_dir: Path | None, batch_size: int) -> WorkflowResult:
    """Loads a trained run and scores it on a labelled split."""
    from slopeft.evaluation.prediction import load_run, predict_split

    _check_split(split)
    if split == "test":
        raise ConfigError(
            "The test split has no labels here; use `slopeft predict --run DIR --split test` to write "
            "leaderboard predictions."
        )
    parts, model, record = load_run(run_dir, data_dir=str(data_dir) if data_dir else None)
    predictions = predict_split(parts, model, split, batch_size)
    report = score_unit([parts.task], {parts.task.name: predictions}, split)
    return WorkflowResult(f"{record.run_id} · {split}", report)


def predict_workflow(
    run_dir: Path, split: str, data_dir: Path | None, batch_size: int, test_src: Path | None = None
) -> WorkflowResult:
    """Writes a trained run's predictions for ``split`` in submission format under run/predictions/<split>/."""
    from slopeft.evaluation.prediction import load_run, predict_split

    _check_split(split)
    options = translation_options_for_run(run_dir, test_src)
    parts, model, record = load_run(
        run_dir, data_dir=str(data_dir) if data_dir else None, task_options=options
    )
    predictions = predict_split(parts, model, split, batch_size)
    files = submission_files([parts.task], {parts.task.name: predictions}, split)
    out = Path(run_dir) / "predictions" / split
    out.mkdir(parents=True, exist_ok=True)
    for name, text in files.items():
        (out / name).write_text(text, encoding="utf-8")
    report = score_unit([parts.task], {parts.task.name: predictions}, split) if split != "test" else None
    return WorkflowResult(f"{record.run_id} · {split}", report, [f"Predictions written to {out}"])


def translation_options_for_run(run_dir: Path, test_src: Path | None) -> dict:
    from slopeft.records import read_record

    return translation_options(read_record(run_dir).task, test_src=test_src) if test_src else {}


def submit_workflow(
    run_dirs: list[Path], out: Path, data_dir: Path | None, batch_size: int
) -> WorkflowResult:
    """One leaderboard zip from runs' test predictions: one run per task of a group (the six SuperGLUE
    tasks), or a single run of a task in no group (SI-NLI, MT)."""
    from slopeft.records import read_record
    from slopeft.tasks import group_of

    by_task: dict[str, Path] = {}
    for run_dir in run_dirs:
        task = read_record(run_dir).task
        if task in by_task:
            raise ConfigError(f"Two runs for {task}: {by_task[task]} and {run_dir}. Pass one run per task.")
        by_task[task] = Path(run_dir)
    groups = {group.name: group for task in by_task if (group := group_of(task)) is not None}
    if groups:
        group = next(iter(groups.values()))
        members = set(group.members)
        missing, others = sorted(members - set(by_task)), sorted(set(by_task) - members)
        if missing or others:
            raise ConfigError(
                f"A {group.title} submission needs one run per task; missing {', '.join(missing) or '-'}"
                f"{'; other tasks: ' + ', '.join(others) if others else ''}."
            )
        unit = group.name
    elif len(by_task) == 1:
        unit = next(iter(by_task))
    else:
        raise ConfigError(
            "Pass one run for every task of a group (slopeft data list), or exactly one run of another task."
        )
    files: dict[str, str] = {}
    messages = []
    for run_dir in by_task.values():
        folder = run_dir / "predictions" / "test"
        if not folder.is_dir():
            messages += predict_workflow(run_dir, "test", data_dir, batch_size).messages
        files.update({p.name: p.read_text(encoding="utf-8") for p in sorted(folder.iterdir()) if p.is_file()})
    write_zip(files, out)
    summary = check_workflow(unit, out, data_dir)
    return WorkflowResult(f"submission {out}", None, [*messages, f"Wrote {out}", f"Checked: {summary}"])
