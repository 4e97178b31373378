"""Resumable checkpoints without pickle: tensors in safetensors, everything else in JSON.

A checkpoint holds the trainable parameters, every optimiser's and scheduler's state, the
method's own state, the torch RNG state and the trainer's counters. Optimiser state dicts
are nested; tensors are lifted out into one safetensors file under path-like keys and the
rest is stored as JSON with ``{"__tensor__": key}`` placeholders.
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import load_file, save_file

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


def _join(obj: Any, tensors: dict[str, torch.Tensor]) -> Any:
    if isinstance(obj, dict):
        if "__tensor__" in obj:
            return tensors[obj["__tensor__"]]
        if "__dict__" in obj:
            return {_join(k, tensors): _join(v, tensors) for k, v in obj["__dict__"]}
        if "__list__" in obj:
            return [_join(v, tensors) for v in obj["__list__"]]
    return obj


def save_checkpoint(directory: Path, state: dict[str, Any]) -> None:
    """Writes ``state`` (nested dicts/lists of tensors and JSON values) atomically to ``directory``."""
    directory = Path(directory)
    tmp = directory.with_name(directory.name + ".tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    tensors: dict[str, torch.Tensor] = {}
    skeleton = _split(state, "s", tensors)
    save_file(tensors, str(tmp / TENSORS))
    (tmp / STATE).write_text(json.dumps(skeleton))
    old = directory.with_name(directory.name + ".old")
    shutil.rmtree(old, ignore_errors=True)
    if directory.exists():
        os.replace(directory, old)
    os.replace(tmp, directory)
    shutil.rmtree(old, ignore_errors=True)


def load_checkpoint(directory: Path) -> dict[str, Any] | None:
    """The state saved by :func:`save_checkpoint`, or None when there is no complete checkpoint."""
    directory = Path(directory)
    if not (directory / STATE).is_file() or not (directory / TENSORS).is_file():
        old = directory.with_name(directory.name + ".old")  # killed between the two renames
        if (old / STATE).is_file():
            directory = old
        else:
            return None
    tensors = load_file(str(directory / TENSORS))
    return _join(json.loads((directory / STATE).read_text()), tensors)
