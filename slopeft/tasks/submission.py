"""Submission zips: writing them, reading them back, checking them and scoring them.

A *submission unit* is what the leaderboard takes in one zip: the members of a task group
(:class:`~slopeft.tasks.base.TaskGroup`, e.g. the six Slovene SuperGLUE tasks) together, or one task. The same parsing code serves
``slopeft submission check`` (against the test inputs) and ``slopeft score`` (against val).
"""

from __future__ import annotations

import os
import tempfile
import zipfile
import zlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from slopeft.errors import SubmissionError
from slopeft.files import check_output
from slopeft.tasks.base import TASK_GROUPS, Split, Task

Predictions = dict[int, Any]


@dataclass
class ScoreReport:
    """Per-task metrics, and the leaderboard's dictionary where the unit has one."""

    per_task: dict[str, dict[str, float]]
    board: dict[str, float]
    notes: dict[str, str]
    warnings: list[str] = field(default_factory=list)
    scoring: dict[str, dict[str, str]] = field(default_factory=dict)  # task → its scoring choices


def expected_files(tasks: Sequence[Task]) -> set[str] | None:
    """The exact file names a zip must hold, or None for 'exactly one file, any name'."""
    if all(t.submission_name_required for t in tasks):
        return {t.submission_name for t in tasks}
    (_,) = tasks  # a unit of several tasks names its files
    return None


# The largest real prediction file is well under 2 MB (MultiRC's test answers; an MT file of 1,233
# lines is about 200 KB), so 64 MiB per file, 128 MiB in all and 64 files leave room for anything
# legitimate while a zip bomb (a 400 KB zip holding a 400 MB member) is refused before it is inflated.
MAX_MEMBER_BYTES = 64 * 2**20
MAX_TOTAL_BYTES = 128 * 2**20
MAX_MEMBERS = 64
_CHUNK = 2**20


def _mib(size: int) -> str:
    return f"{size / 2**20:.1f} MiB" if size >= 2**20 else f"{size:,} bytes"


def _too_large(path: Path, name: str, size: str) -> SubmissionError:
    return SubmissionError(
        f"{path}: {name} holds {size}, more than the {_mib(MAX_MEMBER_BYTES)} a prediction file may hold "
        "(real ones are under 2 MB). It is not a prediction file, or the zip is damaged or built to "
        "exhaust memory; rebuild it from the prediction files alone (`zip -j out.zip *.jsonl`)."
    )


def _too_much(path: Path, total: int) -> SubmissionError:
    return SubmissionError(
        f"{path} holds {_mib(total)} of files in all, more than the {_mib(MAX_TOTAL_BYTES)} a submission "
        "may hold. Keep only the prediction files and zip them again (`zip -j out.zip *.jsonl`)."
    )


def _ambiguous_names(path: Path, names: Sequence[str]) -> None:
    """Refuses two files of one name, or of names that differ only in letter case: which of them the
    leaderboard reads is not defined (a zip keeps both; a case-insensitive disk keeps one)."""
    groups: dict[str, list[str]] = {}
    for name in names:
        groups.setdefault(name.casefold(), []).append(name)
    clashes = [group for group in groups.values() if len(group) > 1]
    if clashes:
        shown = "; ".join(" and ".join(repr(n) for n in group) for group in clashes[:5])
        raise SubmissionError(
            f"{path} is ambiguous: it holds files of the same name or of names that differ only in letter "
            f"case ({shown}), and which one the leaderboard reads is not defined. Keep exactly one file "
            "per name and zip them again."
        )


def _read_folder(path: Path) -> dict[str, bytes]:
    files = [p for p in sorted(path.iterdir()) if p.is_file() and not p.name.startswith(".")]
    if len(files) > MAX_MEMBERS:
        raise SubmissionError(
            f"{path} holds {len(files)} files; a submission holds at most a few (SuperGLUE: 6). Pass the "
            "folder that holds only the prediction files."
        )
    _ambiguous_names(path, [p.name for p in files])
    total = 0
    for p in files:
        size = p.stat().st_size
        if size > MAX_MEMBER_BYTES:
            raise _too_large(path, p.name, _mib(size))
        total += size
    if total > MAX_TOTAL_BYTES:
        raise _too_much(path, total)
    return {p.name: p.read_bytes() for p in files}


def _read_member(archive: zipfile.ZipFile, member: zipfile.ZipInfo, path: Path) -> bytes:
    """The member's bytes, read in chunks and stopped at the cap whatever its header claims."""
    chunks, size = [], 0
    with archive.open(member) as handle:
        while chunk := handle.read(_CHUNK):
            size += len(chunk)
            if size > MAX_MEMBER_BYTES:
                raise _too_large(path, member.filename, f"more than {_mib(MAX_MEMBER_BYTES)}")
            chunks.append(chunk)
    return b"".join(chunks)


def _check_members(path: Path, members: list[zipfile.ZipInfo]) -> None:
    nested = [m.filename for m in members if "/" in m.filename.rstrip("/") or "\\" in m.filename]
    if nested:
        raise SubmissionError(
            f"{path} holds files inside folders ({', '.join(nested[:5])}). The leaderboard reads only "
            "the zip's top level: zip the files themselves (`zip -j out.zip *.jsonl`), without folders "
            "or __MACOSX metadata."
        )
    if len(members) > MAX_MEMBERS:
        raise SubmissionError(
            f"{path} holds {len(members)} files; a submission holds at most a few (SuperGLUE: 6). Zip only "
            "the prediction files (`zip -j out.zip *.jsonl`)."
        )
    _ambiguous_names(path, [m.filename for m in members])
    odd = [
        f"{m.filename} ({why})"
        for m in members
        for why in (
            "encrypted" if m.flag_bits & 0x1 else None,
            "a symbolic link" if m.create_system == 3 and (m.external_attr >> 16) & 0o170000 == 0o120000 else None,
            "compressed with a method other than stored or deflate"
            if m.compress_type not in (zipfile.ZIP_STORED, zipfile.ZIP_DEFLATED)
            else None,
        )
        if why
    ]
    if odd:
        raise SubmissionError(
            f"{path} holds members the leaderboard may not read as plain files: {', '.join(odd[:5])}. "
            "Zip the plain prediction files, unencrypted, with `zip -j out.zip *.jsonl`."
        )
    for m in members:
        if m.file_size > MAX_MEMBER_BYTES:
            raise _too_large(path, m.filename, f"{_mib(m.file_size)} once unpacked")
    total = sum(m.file_size for m in members)
    if total > MAX_TOTAL_BYTES:
        raise _too_much(path, total)


def read_prediction_files(path: Path) -> dict[str, bytes]:
    """The files of a submission zip or of a folder of prediction files (top level only).

    Refused, each with a SubmissionError saying what to do: a zip member inside a folder
    (``preds/CB.jsonl``) or macOS metadata (``__MACOSX``), since the leaderboard reads the zip's top
    level only; anything ambiguous — two members of one name, names that differ only in letter case,
    encrypted members, symbolic links, compression other than stored/deflate; a file above
    :data:`MAX_MEMBER_BYTES` (checked against the header and again while inflating, so a lying header
    does not help), more than :data:`MAX_TOTAL_BYTES` in all or more than :data:`MAX_MEMBERS` files;
    a damaged zip.
    """
    path = Path(path)
    if path.is_dir():
        return _read_folder(path)
    if not path.is_file():
        raise SubmissionError(
            f"{path} does not exist. Pass a submission zip or a folder of prediction files."
        )
    try:
        with zipfile.ZipFile(path) as archive:
            members = [m for m in archive.infolist() if not m.is_dir()]
            _check_members(path, members)
            return {m.filename: _read_member(archive, m, path) for m in members}
    except (zipfile.BadZipFile, zlib.error, EOFError, NotImplementedError, RuntimeError) as err:
        raise SubmissionError(
            f"{path} is not a valid zip file ({err}). Re-create it with `zip -j out.zip *.jsonl`."
        ) from None


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
    warnings = [w for t in tasks for w in t.metric_warnings()]
    scoring = {t.name: t.scoring() for t in tasks if t.scoring()}
    return ScoreReport(per_task, board, notes, warnings, scoring)


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
    with_bom = sorted(name for name, text in files.items() if text.startswith("\ufeff"))
    if with_bom:
        # The leaderboard's evaluator does not strip a byte-order mark (see slopeft.tasks.reading).
        raise SubmissionError(
            f"{', '.join(with_bom)} start(s) with a byte-order mark (U+FEFF), which the leaderboard's "
            "evaluator would read as part of the first line. Remove it from the prediction file(s) "
            "(an editor's \"UTF-8 with BOM\" adds one) and assemble the zip again."
        )
    out = check_output(out)
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
