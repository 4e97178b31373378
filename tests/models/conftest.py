"""Fixtures for model tests: tiny models built once per session, and a session-wide prepare cache."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest


@pytest.fixture(scope="session")
def tiny_model_dir(tiny_models) -> Callable[[str], Path]:
    """The suite-wide tiny-model builder (tests/conftest.py), under this package's historical name."""
    return tiny_models


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
