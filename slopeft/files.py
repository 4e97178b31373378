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

from slopeft.errors import ConfigError, SlopeftError

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


def check_output(path: Path | str, kind: str = "file", option: str = "") -> Path:
    """Refuses an output path that cannot become a ``kind`` ("file" or "folder"): a folder where a file
    must go, a file where a folder must go, or a file among the folders above it. Commands check their
    output options with it before any work, so a typo costs no training."""
    path = Path(path)
    named = f"{option} {path}" if option else str(path)
    for parent in path.parents:  # the nearest existing one decides
        if parent.exists():
            if not parent.is_dir():
                raise ConfigError(f"Cannot write {named}: {parent} is a file, not a folder. Choose another path, "
                                   "or move that file away.")
            break
    if kind == "file" and path.is_dir():
        raise ConfigError(f"{named} is a folder; it must name a file. Add a file name to the path, or choose "
                           "another path.")
    if kind == "folder" and path.exists() and not path.is_dir():
        raise ConfigError(f"{named} is a file; it must name a folder. Choose another path, or move that file away.")
    return path


def _tmp_name(path: Path) -> Path:
    return path.with_name(f".{path.name}.{os.getpid()}.tmp")


@contextlib.contextmanager
def atomic_path(path: Path | str, what: str = "") -> Iterator[Path]:
    """A temporary path beside ``path`` to write to; renamed to ``path`` when the block succeeds,
    removed when it fails. An ``OSError`` of a full or read-only disk becomes a :class:`WriteError`."""
    path = check_output(path)  # a folder in the way would fail only at the rename, naming the temporary
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


#: errno values of a path of the wrong shape: a file where a folder must be, or the other way round.
PATH_SHAPE_ERRNOS = {errno.ENOTDIR, errno.EEXIST, errno.EISDIR}


def path_shape_error(err: OSError) -> SlopeftError | None:
    """The one-paragraph error for an output path the user named with a file where a folder must be
    (``--output notes.txt`` for a folder, ``--out notes.txt/report``), or a folder where a file must
    be; None for any other OSError."""
    path = err.filename or "a path"
    if err.errno == errno.ENOTDIR:
        return SlopeftError(f"Cannot use {path}: part of it is a file where a folder must be. Point the option "
                            "at a folder path, or move that file away.")
    if err.errno == errno.EEXIST:
        return SlopeftError(f"Cannot create the folder {path}: a file of that name is in the way. Point the "
                            "option at another path, or move the file away.")
    if err.errno == errno.EISDIR:
        return SlopeftError(f"{path} is a folder where a file must be. Name a file (for example out.zip) instead.")
    return None


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
