"""Where slopeft keeps its cache (prepared models, downloaded data)."""

from __future__ import annotations

import os
from pathlib import Path


def cache_dir() -> Path:
    """The user cache: ``$SLOPEFT_CACHE``, else ``$XDG_CACHE_HOME/slopeft``, else ``~/.cache/slopeft``."""
    if env := os.environ.get("SLOPEFT_CACHE"):
        return Path(env).expanduser()
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base).expanduser() / "slopeft"
