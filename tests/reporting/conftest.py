"""The reporting tests reuse the experiments' session fixtures (one smoke grid per test session)."""

from tests.experiments.conftest import grid_env, shared_models, smoke_grid  # noqa: F401
