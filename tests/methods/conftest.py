"""Fixtures for method tests: tiny models built once per session, and the run parts of a task on them."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable

import pytest

from slopeft.config import RunConfig, TrainingConfig
from slopeft.methods import METHODS
from slopeft.training.build import RunParts, prepare_parts

MAX_LENGTH = 32


@pytest.fixture(scope="session")
def run_parts(tiny_models, data_root) -> Callable[..., RunParts]:
    """``run_parts(arch, task, method, **options)``: task, head and method for a tiny model (cached per arch+task).

    Reads the real SloBench data (``data_root``); inputs are cut to 32 tokens to keep tests fast.
    """
    cache: dict[tuple[str, str], RunParts] = {}

    def get(arch: str, task: str, method: str, **options) -> RunParts:
        if (arch, task) not in cache:
            config = RunConfig(
                task=task,
                model=str(tiny_models(arch)),
                method="lora",
                data_dir=str(data_root),
                training=TrainingConfig(max_length=MAX_LENGTH),
            )
            cache[arch, task] = prepare_parts(config)
        return dataclasses.replace(cache[arch, task], method=METHODS.get(method)(options))

    return get
