"""Resumable checkpoints without pickle: tensors in safetensors, everything else in JSON.

A checkpoint holds the trainable parameters, every optimiser's and scheduler's state, the
method's own state, the RNG states and the trainer's counters, all as of one batch boundary,
and the run's configuration (a resume with another configuration is refused). Optimiser state
dicts are nested; tensors are lifted out into one safetensors file under path-like keys and the
rest is stored as JSON with ``{"__tensor__": key}`` placeholders.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
from pathlib import Path
from typing import Any

import torch

from slopeft.errors import ConfigError
from slopeft.files import as_os_error, is_disk_error, save_tensors, write_error

TENSORS = "checkpoint.safetensors"
STATE = "checkpoint.json"


def _split(obj: Any, path: str, tensors: dict[str, torch.Tensor]) -> Any:
    if isinstance(obj, torch.Tensor):
        tensors[path] = obj.detach().cpu().clone()
        return {"__tensor__": path}
    if isinstance(obj, dict):
        return {
            "__dict__": [
                [_split(k, f"{path}.k{i}", tensors), _split(v, f"{path}.{i}", tensors)]
                for i, (k, v) in enumerate(obj.items())
            ]
        }
    if isinstance(obj, list | tuple):
        return {"__list__": [_split(v, f"{path}.{i}", tensors) for i, v in enumerate(obj)]}
    return obj


def _join(obj: Any, tensors: dict[str, torch.Tensor] | None) -> Any:
    """Rebuilds what :func:`_split` split; with ``tensors`` None the tensors are left out (None)."""
    if isinstance(obj, dict):
        if "__tensor__" in obj:
            return None if tensors is None else tensors[obj["__tensor__"]]
        if "__dict__" in obj:
            return {_join(k, tensors): _join(v, tensors) for k, v in obj["__dict__"]}
        if "__list__" in obj:
            return [_join(v, tensors) for v in obj["__list__"]]
    return obj


def _old(directory: Path) -> Path:
    return directory.with_name(directory.name + ".old")


def exists(directory: Path) -> bool:
    """Whether anything of a checkpoint is there (the folder, or the copy a killed save left)."""
    directory = Path(directory)
    return directory.exists() or _old(directory).exists()


def save_checkpoint(directory: Path, state: dict[str, Any]) -> None:
    """Writes ``state`` (nested dicts/lists of tensors and JSON values) atomically to ``directory``.

    The new checkpoint is written beside the old one and renamed into place; a failed write (a full
    disk) removes what it wrote, keeps the old checkpoint and raises a WriteError.
    """
    directory = Path(directory)
    tmp = directory.with_name(directory.name + ".tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    try:
        tmp.mkdir(parents=True)
        tensors: dict[str, torch.Tensor] = {}
        skeleton = _split(state, "s", tensors)
        save_tensors(tensors, tmp / TENSORS)
        (tmp / STATE).write_text(json.dumps(skeleton), encoding="utf-8")
    except Exception as err:
        shutil.rmtree(tmp, ignore_errors=True)
        disk = as_os_error(err)
        if disk is not None and is_disk_error(disk):
            raise write_error(directory, disk, "the previous checkpoint, if any, is kept") from None
        raise
    old = _old(directory)
    shutil.rmtree(old, ignore_errors=True)
    if directory.exists():
        os.replace(directory, old)
    os.replace(tmp, directory)
    shutil.rmtree(old, ignore_errors=True)


def _complete(directory: Path) -> Path | None:
    """The folder holding a complete checkpoint: ``directory``, or the copy a save killed between its two
    renames left behind."""
    if (directory / STATE).is_file() and (directory / TENSORS).is_file():
        return directory
    old = _old(directory)
    if (old / STATE).is_file() and (old / TENSORS).is_file():
        return old
    return None


def _damaged(directory: Path, what: str) -> ConfigError:
    return ConfigError(
        f"The checkpoint in {directory} cannot be used: {what}. Restore it, or delete {directory} to train the "
        "run again from step 0 (without --resume)."
    )


def _skeleton(directory: Path) -> Any:
    try:
        return json.loads((directory / STATE).read_text(encoding="utf-8"))
    except (OSError, ValueError) as err:
        raise _damaged(directory, f"{STATE} is not readable JSON ({err})") from None


def load_checkpoint(directory: Path) -> dict[str, Any] | None:
    """The state saved by :func:`save_checkpoint`; None when there is no checkpoint at all.

    Raises:
        ConfigError: a checkpoint folder without its two files, or with a damaged one — resuming from
            it would silently restart from step 0 or fail later.
    """
    directory = Path(directory)
    if not exists(directory):
        return None
    found = _complete(directory)
    if found is None:
        present = sorted(p.name for p in directory.iterdir()) if directory.is_dir() else []
        missing = [name for name in (STATE, TENSORS) if name not in present]
        raise _damaged(directory, f"it lacks {' and '.join(missing)} (found: {', '.join(present) or 'nothing'})")
    skeleton = _skeleton(found)
    try:
        from safetensors.torch import load_file

        tensors = load_file(str(found / TENSORS))
    except Exception as err:  # noqa: BLE001  (safetensors raises its own error type for a damaged file)
        raise _damaged(found, f"{TENSORS} is damaged ({str(err).splitlines()[0][:200]})") from None
    try:
        state = _join(skeleton, tensors)
    except (KeyError, TypeError, ValueError) as err:
        raise _damaged(found, f"{STATE} does not match {TENSORS} ({type(err).__name__}: {err})") from None
    if not isinstance(state, dict) or not {"trainer", "weights", "optimizers", "schedulers"} <= set(state):
        raise _damaged(found, f"{STATE} is not a slopeft checkpoint (it lacks the trainer's state)")
    return state


def _saved_state(directory: Path) -> tuple[Path, Any] | None:
    """(the folder, the saved state with its tensors left out as None) of a checkpoint, from the
    JSON only; None when there is no complete checkpoint. Raises ConfigError for unreadable JSON."""
    directory = Path(directory)
    found = _complete(directory) if exists(directory) else None
    if found is None:
        return None
    return found, _join(_skeleton(found), None)


def saved_config(directory: Path) -> dict[str, Any] | None:
    """The run configuration a checkpoint was saved with (None for checkpoints older than that
    record, or when there is no checkpoint); reads the JSON only."""
    saved = _saved_state(directory)
    if saved is None:
        return None
    found, state = saved
    with contextlib.suppress(KeyError, TypeError, ValueError, AttributeError):
        config = state.get("config") if isinstance(state, dict) else None
        return config if isinstance(config, dict) else None
    raise _damaged(found, f"{STATE} is not a slopeft checkpoint")


def saved_progress(directory: Path) -> dict[str, Any] | None:
    """How far a checkpoint's run had trained, from the JSON only (no tensors are read): ``epoch``
    (epochs completed), ``batch_in_epoch``, ``step``, ``train_cpu_seconds`` and ``saved`` (the
    checkpoint's modification time, seconds since the epoch); None without a readable checkpoint.
    For progress displays: it never raises."""
    try:
        saved = _saved_state(directory)
        if saved is None:
            return None
        found, state = saved
        trainer = state["trainer"]
        return {
            "epoch": int(trainer["epoch"]),
            "batch_in_epoch": int(trainer.get("batch_in_epoch") or 0),
            "step": int(trainer["step"]),
            "train_cpu_seconds": float(trainer.get("train_cpu_seconds") or 0.0),
            "saved": (found / STATE).stat().st_mtime,
        }
    except (ConfigError, OSError, ValueError, KeyError, TypeError, AttributeError):
        return None
