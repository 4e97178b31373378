"""Prediction with a trained run: its base model and saved adapter loaded back, checked against each other."""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

from torch import nn

from slopeft.records import RunRecord, read_record
from slopeft.training.adapter import ADAPTER_DIR, read_adapter_meta
from slopeft.training.build import RunParts, check_fingerprint, load_base, prepare_parts


def load_run(
    run_dir: Path,
    model_override: str | None = None,
    data_dir: str | None = None,
    task_options: dict | None = None,
) -> tuple[RunParts, nn.Module, RunRecord]:
    """The trained model of a finished run: base model + saved adapter, checked against each other."""
    record = read_record(run_dir)
    config = record.run_config()
    if model_override:
        config = dataclasses.replace(config, model=model_override)
    if data_dir:
        config = dataclasses.replace(config, data_dir=data_dir)
    adapter_dir = Path(run_dir) / ADAPTER_DIR
    meta = read_adapter_meta(adapter_dir, record.versions.get("slopeft"))
    parts = prepare_parts(config, task_options)
    check_fingerprint(meta["base"], parts, adapter_dir)
    base, context = load_base(parts)
    model = parts.method.load(base, adapter_dir, context)
    model.eval()
    return parts, model, record


def predict_split(parts: RunParts, model: nn.Module, split: str, batch_size: int) -> dict[int, Any]:
    """The model's predictions (idx → label) for every example of ``split`` of the run's task."""
    return parts.head.predict(model, parts.task.examples(split), batch_size=batch_size)
