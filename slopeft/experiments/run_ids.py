"""A run's id: ``<task>-<model>-<method>-s<seed>-<hash>``, the hash over its configuration's differences
from a frozen reference.

The id names a run's folder and the finished record committed under ``results/<grid>/<run_id>/``, which
a grid run treats as done: changing how ids are made orphans those records. So everything that makes
an id lives here, and ``tests/experiments/test_frozen_run_ids.py`` pins the ids of every shipped grid.
"""

from __future__ import annotations

import hashlib
import json
import re
from pathlib import Path
from typing import Any

TINY_PREFIX = "tiny:"


def config_hash(config: dict[str, Any]) -> str:
    """sha256 of the canonical JSON of a run configuration."""
    canonical = json.dumps(config, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(canonical.encode()).hexdigest()


#: A training run's settings as they stood when run ids were frozen (slopeft 0.1, December 2026).
#: A run id hashes only what differs from these values. So a setting added later, at a value that
#: keeps the old behaviour, leaves every existing id valid (and with it the finished records
#: committed under results/), while a changed default does change the ids of the runs that used
#: it. A new TrainingConfig field must be added here with the value that reproduces the behaviour
#: before it existed (tests/experiments/test_grid.py checks that every field is listed).
HASH_REFERENCE: dict[str, Any] = {
    "train_set": None,
    "val_set": None,
    "extra_val_sets": [],
    "method_options": {},
    "training": {
        "epochs": 3.0,
        "max_steps": 0,
        "batch_size": 16,
        "grad_accumulation": 1,
        "learning_rate": None,
        "weight_decay": 0.0,
        "warmup_ratio": 0.06,
        "scheduler": "linear",
        "max_length": 256,
        "eval_batch_size": 32,
        "eval_every": 0,
        "patience": 0,
        "class_weights": False,
        "group_by_length": True,
        "precision": "auto",
        "max_train_examples": 0,
        "max_eval_examples": 0,
        "max_grad_norm": 1.0,
        "log_every": 10,
        "malloc_mmap_threshold_kib": 2048,
        "select_best": True,
    },
}


def _differences(values: dict[str, Any], reference: dict[str, Any]) -> dict[str, Any]:
    """``values`` without the entries equal to ``reference``'s (recursively into mappings)."""
    kept = {}
    for key, value in values.items():
        if key in reference and isinstance(value, dict) and isinstance(reference[key], dict):
            nested = _differences(value, reference[key])
            if nested:
                kept[key] = nested
        elif key not in reference or not _same(value, reference[key]):
            kept[key] = value
    return kept


def _same(a: Any, b: Any) -> bool:
    if isinstance(a, bool) or isinstance(b, bool):
        return a is b
    return a == b


def run_config_hash(run_config: dict[str, Any]) -> str:
    """The hash in a training run's id: its configuration's differences from :data:`HASH_REFERENCE`."""
    return config_hash({"kind": "train", **_differences(run_config, HASH_REFERENCE)})


def _slug(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]+", "-", text).strip("-") or "x"


def short_task(task: str) -> str:
    from slopeft.tasks import TASKS

    return TASKS.get(task).spec.short_name.replace("/", "-")


def short_model(model: str) -> str:
    if model.startswith(TINY_PREFIX):
        return "tiny-" + model[len(TINY_PREFIX) :]
    return _slug(Path(model).name if ("/" in model or Path(model).exists()) else model)


def make_run_id(task: str, model: str, method: str, seed: int, digest: str) -> str:
    """``<task>-<model>-<method>-s<seed>-<hash>``: readable, and unique through the hash."""
    return f"{short_task(task)}-{short_model(model)}-{_slug(method)}-s{seed}-{digest[:10]}"
