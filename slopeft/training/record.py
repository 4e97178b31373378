"""The run record: one JSON file per run with everything needed to trust and compare it."""

from __future__ import annotations

import hashlib
import json
import platform
import subprocess
from pathlib import Path
from typing import Any

import slopeft

RECORD = "record.json"


def library_versions() -> dict[str, str]:
    import accelerate
    import peft
    import torch
    import transformers

    return {
        "slopeft": slopeft.__version__,
        "torch": torch.__version__,
        "transformers": transformers.__version__,
        "peft": peft.__version__,
        "accelerate": accelerate.__version__,
        "python": platform.python_version(),
    }


def git_commit() -> dict[str, Any]:
    """The commit of the slopeft checkout running this (None when installed from a wheel), and whether it is dirty."""
    root = Path(slopeft.__file__).resolve().parent.parent
    try:
        commit = subprocess.run(
            ["git", "-C", str(root), "rev-parse", "HEAD"],
            capture_output=True,
            text=True,
            timeout=5,
            check=True,
        ).stdout.strip()
        dirty = bool(
            subprocess.run(
                ["git", "-C", str(root), "status", "--porcelain", "--untracked-files=no"],
                capture_output=True,
                text=True,
                timeout=5,
            ).stdout.strip()
        )
        return {"commit": commit, "dirty": dirty}
    except (OSError, subprocess.SubprocessError):
        return {"commit": None, "dirty": None}


def data_fingerprint(files: list[Path]) -> str:
    """sha256 over the bytes of the files a run read (train and validation)."""
    digest = hashlib.sha256()
    for path in sorted(set(files)):
        digest.update(path.name.encode())
        digest.update(Path(path).read_bytes())
    return digest.hexdigest()


def write_json_atomic(path: Path, data: dict[str, Any]) -> None:
    """Writes JSON through a temporary file and a rename: a reader never sees half a record, and a
    failed write (a full disk) leaves no temporary file behind (:func:`slopeft.files.write_json_atomic`)."""
    from slopeft.files import write_json_atomic as write

    write(path, data)


def read_record(run_dir: Path) -> dict[str, Any]:
    from slopeft.errors import ConfigError

    path = Path(run_dir) / RECORD
    if not path.is_file():
        raise ConfigError(
            f"{run_dir} is not a finished slopeft run (no {RECORD}). Pass the folder `slopeft train` "
            "wrote (runs/...), or train it first."
        )
    return json.loads(path.read_text(encoding="utf-8"))
