"""Submission zips: writing them, reading them back, checking them and scoring them.

A *submission unit* is what the leaderboard takes in one zip: the members of a task group
(:class:`~slopeft.tasks.base.TaskGroup`, e.g. the six Slovene SuperGLUE tasks) together, or one task. The same parsing code serves
``slopeft submission check`` (against the test inputs) and ``slopeft score`` (against val).
"""

from __future__ import annotations

import os
import tempfile
import zipfile
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from slopeft.errors import SubmissionError
from slopeft.tasks.base import TASK_GROUPS, Split, Task

Predictions = dict[int, Any]


@dataclass
class ScoreReport:
    """Per-task metrics, and the leaderboard's dictionary where the unit has one."""

    per_task: dict[str, dict[str, float]]
    board: dict[str, float]
    notes: dict[str, str]


def expected_files(tasks: Sequence[Task]) -> set[str] | None:
    """The exact file names a zip must hold, or None for 'exactly one file, any name'."""
    if all(t.submission_name_required for t in tasks):
        return {t.submission_name for t in tasks}
    (_,) = tasks  # a unit of several tasks names its files
    return None


def read_prediction_files(path: Path) -> dict[str, bytes]:
    """The files of a submission zip or of a folder of prediction files (top level only).

    A zip member inside a folder (``preds/CB.jsonl``) or macOS metadata (``__MACOSX``) is
    an error: the leaderboard reads the zip's top level only.
    """
    path = Path(path)
    if path.is_dir():
        return {
            p.name: p.read_bytes()
            for p in sorted(path.iterdir())
            if p.is_file() and not p.name.startswith(".")
        }
    if not path.is_file():
        raise SubmissionError(
            f"{path} does not exist. Pass a submission zip or a folder of prediction files."
        )
    try:
        with zipfile.ZipFile(path) as archive:
            members = [m for m in archive.infolist() if not m.is_dir()]
            nested = [m.filename for m in members if "/" in m.filename.rstrip("/")]
            if nested:
                raise SubmissionError(
                    f"{path} holds files inside folders ({', '.join(nested[:5])}). The leaderboard reads only "
                    "the zip's top level: zip the files themselves (`zip -j out.zip *.jsonl`), without folders "
                    "or __MACOSX metadata."
                )
            return {m.filename: archive.read(m) for m in members}
    except zipfile.BadZipFile:
        raise SubmissionError(f"{path} is not a valid zip file. Re-create it with `zip -j`.") from None


def parse_unit(tasks: Sequence[Task], files: Mapping[str, bytes], split: Split) -> dict[str, Predictions]:
    """Validates ``files`` against ``split`` of ``tasks``; returns per-task predictions.

    Raises:
        SubmissionError: listing missing/extra files, or the first task file's problems.
    """
    expected = expected_files(tasks)
    if expected is not None:
        missing, extra = sorted(expected - files.keys()), sorted(files.keys() - expected)
        if missing or extra:
            parts = ([f"missing {', '.join(missing)}"] if missing else []) + (
                [f"unexpected {', '.join(extra)}"] if extra else []
            )
            raise SubmissionError(
                f"The submission must hold exactly {', '.join(sorted(expected))} and nothing else: "
                f"{'; '.join(parts)}. Add the missing files and remove the others."
            )
    result = {}
    for task in tasks:
        task_files = {task.submission_name: files[task.submission_name]} if expected else dict(files)
        result[task.name] = task.parse_submission(task_files, task.examples(split))
    return result


def score_unit(tasks: Sequence[Task], predictions: Mapping[str, Predictions], split: Split) -> ScoreReport:
    """Scores per-task predictions on a labelled split, plus the leaderboard dictionary of their groups."""
    per_task = {t.name: t.metrics(predictions[t.name], t.examples(split)) for t in tasks}
    board: dict[str, float] = {}
    for _, group in TASK_GROUPS.items():
        members = {name: scores for name, scores in per_task.items() if name in group.members}
        if members:
            board.update(group.board(members))
    notes = {k: v for t in tasks for k, v in t.metric_notes().items()}
    return ScoreReport(per_task, board, notes)


def submission_files(
    tasks: Sequence[Task], predictions: Mapping[str, Predictions], split: Split
) -> dict[str, str]:
    """The submission's files (name → text) for per-task predictions on ``split``."""
    files: dict[str, str] = {}
    for task in tasks:
        files.update(task.submission_contents(predictions[task.name], task.examples(split)))
    return files


def write_zip(files: Mapping[str, str], out: Path) -> Path:
    """Writes ``files`` at the top level of zip ``out`` atomically (temp file, then rename)."""
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    handle, tmp = tempfile.mkstemp(dir=out.parent, prefix=f".{out.name}.", suffix=".part")
    os.close(handle)
    try:
        with zipfile.ZipFile(tmp, "w", compression=zipfile.ZIP_DEFLATED) as archive:
            for name, text in sorted(files.items()):
                archive.writestr(name, text.encode("utf-8"))
        os.replace(tmp, out)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
    return out
