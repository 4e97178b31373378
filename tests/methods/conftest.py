"""Fixtures for method tests: tiny models built once per session, and the run parts of a task on them."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable

import pytest

from slopeft.config import RunConfig, TrainingConfig
from slopeft.methods import METHODS
from slopeft.models.heads.generative import GenerationHead
from slopeft.tasks import TASKS
from slopeft.training.build import RunParts, prepare_parts

MAX_LENGTH = 32


@pytest.fixture(scope="session")
def run_parts(tiny_models, data_root) -> Callable[..., RunParts]:
    """``run_parts(arch, task, method, max_length=None, **options)``: task, head and method for a tiny
    model (cached per arch + task + max_length), the head fitted to the method (``Head.for_method``).

    Reads the real SloBench data (``data_root``); inputs are cut to 32 tokens to keep tests fast
    (translation: 32 + the tokens generated, which share a causal model's sequence).
    """
    cache: dict[tuple[str, str, int], RunParts] = {}

    def get(arch: str, task: str, method: str, max_length: int | None = None, **options) -> RunParts:
        if max_length is None:
            translation = TASKS.get(task).spec.kind == "translation"
            max_length = MAX_LENGTH + (GenerationHead.max_new_tokens if translation else 0)
        if (arch, task, max_length) not in cache:
            config = RunConfig(
                task=task,
                model=str(tiny_models(arch)),
                method="lora",
                data_dir=str(data_root),
                training=TrainingConfig(max_length=max_length),
            )
            cache[arch, task, max_length] = prepare_parts(config)
        parts = cache[arch, task, max_length]
        method_ = METHODS.get(method)(options)
        return dataclasses.replace(parts, method=method_, head=parts.head.for_method(method_))

    return get
