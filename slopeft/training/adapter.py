"""The saved adapter of a run: the method's files plus what they belong to, written and read back checked."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path
from typing import Any

from torch import nn

from slopeft.errors import ConfigError
from slopeft.methods import MethodContext
from slopeft.training.build import RunParts, base_fingerprint

ADAPTER_DIR = "adapter"
ADAPTER_META = "slopeft_adapter.json"
ADAPTER_FORMAT = 1


def save_adapter(parts: RunParts, model: nn.Module, context: MethodContext, adapter_dir: Path) -> None:
    """Writes the method's adapter and :data:`ADAPTER_META` (what it belongs to) into ``adapter_dir``
    atomically: a temporary folder, then a rename."""
    tmp = adapter_dir.with_name(adapter_dir.name + ".tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    parts.method.save(model, tmp)
    meta = {
        "format_version": ADAPTER_FORMAT,
        "method": parts.method.name,
        "method_options": parts.method.options_dict(),
        "task": parts.task.name,
        "labels": [str(label) for label in parts.task.spec.labels or []],
        "base": base_fingerprint(parts),
        "family": parts.family,
        "architecture": parts.architecture,
        "head_modules": context.head_modules,
    }
    (tmp / ADAPTER_META).write_text(json.dumps(meta, indent=2) + "\n")
    if adapter_dir.exists():
        shutil.rmtree(adapter_dir)
    os.replace(tmp, adapter_dir)


def read_adapter_meta(adapter_dir: Path, written_by: str | None = None) -> dict[str, Any]:
    """The :data:`ADAPTER_META` of a saved adapter; a missing file or another format is a ConfigError.

    Args:
        written_by: the slopeft version of the run that wrote it, for the message.
    """
    meta_path = Path(adapter_dir) / ADAPTER_META
    if not meta_path.is_file():
        raise ConfigError(f"{adapter_dir} has no {ADAPTER_META}; it was not written by slopeft train.")
    meta = json.loads(meta_path.read_text())
    if meta.get("format_version") != ADAPTER_FORMAT:
        raise ConfigError(
            f"{adapter_dir} uses adapter format {meta.get('format_version')}, this slopeft reads format "
            f"{ADAPTER_FORMAT}. Use the slopeft version that wrote it ({written_by})."
        )
    return meta
