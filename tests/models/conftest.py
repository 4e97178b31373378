"""Fixtures for model tests: tiny models built once per session, and a session-wide prepare cache."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from slopeft.models.tiny import make_tiny_model


@pytest.fixture(scope="session")
def tiny_model_dir(tmp_path_factory) -> Callable[[str], Path]:
    """``tiny_model_dir(arch)``: the folder of a tiny model of that architecture, built once per session."""
    root = tmp_path_factory.mktemp("tiny-models")
    built: dict[str, Path] = {}

    def get(arch: str) -> Path:
        if arch not in built:
            built[arch] = make_tiny_model(arch, root / arch)
        return built[arch]

    return get


@pytest.fixture(scope="session")
def offline_cache(tmp_path_factory) -> Path:
    """A cache shared by the whole session, so each pip model is prepared at most once per run."""
    return tmp_path_factory.mktemp("offline-cache")


@pytest.fixture
def empty_hub_cache(monkeypatch, tmp_path) -> Path:
    """An empty Hugging Face cache, whatever the machine has downloaded before."""
    import huggingface_hub.constants as hub_constants

    cache = tmp_path / "hf-cache"
    monkeypatch.setattr(hub_constants, "HF_HUB_CACHE", str(cache))
    return cache
