"""Session fixtures for grid tests: one tiny-model folder and one completed smoke grid per session."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.experiments.smoke import completed_smoke_grid, subprocess_env


@pytest.fixture(scope="session")
def shared_models(tmp_path_factory) -> Path:
    path = tmp_path_factory.getbasetemp() / "grid-models"
    path.mkdir(exist_ok=True)
    return path


@pytest.fixture(scope="session")
def grid_env(tmp_path_factory, data_root) -> dict[str, str]:
    cache = tmp_path_factory.getbasetemp() / "grid-cache"
    cache.mkdir(exist_ok=True)
    return subprocess_env(data_root, cache)


@pytest.fixture(scope="session")
def smoke_grid(tmp_path_factory, grid_env, shared_models) -> Path:
    """The smoke grid's output folder, completed (the kill test fills it first when it runs first)."""
    return completed_smoke_grid(tmp_path_factory.getbasetemp() / "smoke-grid", grid_env, shared_models)
