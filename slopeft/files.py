"""Writing result files so that a reader never sees half of one, and a full disk is a clear error.

Every file slopeft produces as a result (run records, predictions, submission zips, reports,
exports, published results) is written to a temporary name beside its destination and renamed
into place: a crash, a kill or a full disk leaves either the old file or the new one, never a
truncated one. A failed write removes its temporary file and raises :class:`WriteError`, a
:class:`~slopeft.errors.SlopeftError` naming the file and the remedy.
"""

from __future__ import annotations

import contextlib
import errno
import json
import os
import re
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from slopeft.errors import SlopeftError

#: errno values that mean "the destination cannot take the file" rather than a programming error.
DISK_ERRNOS = {errno.ENOSPC, errno.EDQUOT, errno.EROFS, errno.EACCES, errno.EPERM, errno.EFBIG, errno.EIO}


class WriteError(SlopeftError):
    """A result file could not be written (full disk, read-only or forbidden folder)."""


def write_error(path: Path | str, err: OSError, what: str = "") -> WriteError:
    """The one-paragraph error for a failed write of ``path``."""
    reason = err.strerror or type(err).__name__
    remedy = {
        errno.ENOSPC: "free some space on that disk (or point the output elsewhere)",
        errno.EDQUOT: "free some space within your quota (or point the output elsewhere)",
        errno.EROFS: "write to a folder on a writable disk",
        errno.EACCES: "write to a folder you may write to",
        errno.EPERM: "write to a folder you may write to",
    }.get(err.errno, "check the disk and the folder")
    return WriteError(
        f"Could not write {path} ({reason}){f'; {what}' if what else ''}. Nothing half-written was left "
        f"behind: {remedy}, then run the command again."
    )


def _tmp_name(path: Path) -> Path:
    return path.with_name(f".{path.name}.{os.getpid()}.tmp")


@contextlib.contextmanager
def atomic_path(path: Path | str, what: str = "") -> Iterator[Path]:
    """A temporary path beside ``path`` to write to; renamed to ``path`` when the block succeeds,
    removed when it fails. An ``OSError`` of a full or read-only disk becomes a :class:`WriteError`."""
    path = Path(path)
    tmp = _tmp_name(path)
    created = _missing_parents(path)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        yield tmp
        os.replace(tmp, path)
    except OSError as err:
        _clean_up(tmp, created)
        if err.errno in DISK_ERRNOS:
            raise write_error(path, err, what) from None
        raise
    except BaseException:
        _clean_up(tmp, created)
        raise


def _missing_parents(path: Path) -> list[Path]:
    """The folders above ``path`` that do not exist yet, deepest first."""
    missing = []
    for parent in path.parents:
        if parent.exists():
            break
        missing.append(parent)
    return missing


def _clean_up(tmp: Path, created: list[Path]) -> None:
    # A failed write leaves neither its temporary file nor the (empty) folders it made for it.
    with contextlib.suppress(OSError):
        tmp.unlink()
    for folder in created:
        with contextlib.suppress(OSError):
            folder.rmdir()


def write_text_atomic(path: Path | str, text: str, what: str = "") -> Path:
    """Writes UTF-8 ``text`` to ``path`` through a temporary file and a rename."""
    with atomic_path(path, what) as tmp:
        tmp.write_text(text, encoding="utf-8")
    return Path(path)


def write_bytes_atomic(path: Path | str, data: bytes, what: str = "") -> Path:
    with atomic_path(path, what) as tmp:
        tmp.write_bytes(data)
    return Path(path)


def write_json_atomic(path: Path | str, data: Any, what: str = "") -> Path:
    """Writes ``data`` as indented UTF-8 JSON through a temporary file and a rename."""
    return write_text_atomic(path, json.dumps(data, indent=2, ensure_ascii=False, default=str) + "\n", what)


def copy_atomic(source: Path | str, target: Path | str, what: str = "") -> Path:
    with atomic_path(target, what) as tmp:
        shutil.copyfile(source, tmp)
    return Path(target)


@contextlib.contextmanager
def atomic_dir(path: Path | str, what: str = "") -> Iterator[Path]:
    """A temporary folder beside ``path`` to fill; it replaces ``path`` when the block succeeds and
    is removed when it fails (a full disk becomes a :class:`WriteError`)."""
    path = Path(path)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    try:
        tmp.mkdir(parents=True)
        yield tmp
        old = path.with_name(f".{path.name}.{os.getpid()}.old")
        if path.exists():
            os.replace(path, old)
        os.replace(tmp, path)
        shutil.rmtree(old, ignore_errors=True)
    except OSError as err:
        shutil.rmtree(tmp, ignore_errors=True)
        if err.errno in DISK_ERRNOS:
            raise write_error(path, err, what) from None
        raise
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


def is_disk_error(err: BaseException) -> bool:
    """True for an OSError of a full, read-only or forbidden destination."""
    return isinstance(err, OSError) and err.errno in DISK_ERRNOS


def as_os_error(err: BaseException) -> OSError | None:
    """``err`` as an OSError: itself, or the OS error a safetensors SafetensorError reports in its text
    ("I/O error: No space left on device (os error 28)"); None for anything else."""
    if isinstance(err, OSError):
        return err
    match = re.search(r"\(os error (\d+)\)", str(err))
    if type(err).__name__ == "SafetensorError" and match:
        code = int(match.group(1))
        return OSError(code, os.strerror(code))
    return None


def save_tensors(tensors: dict, path: Path | str) -> None:
    """safetensors' ``save_file``, with a full disk reported as the OSError it is."""
    from safetensors.torch import save_file

    try:
        save_file(tensors, str(path))
    except Exception as err:
        disk = as_os_error(err)
        if disk is None or disk is err:
            raise
        disk.filename = str(path)
        raise disk from None
