"""Train, evaluate, predict and submit: the functions behind `slopeft train|evaluate|predict|submit`."""

from __future__ import annotations

import dataclasses
import json
import os
import shutil
import time
from pathlib import Path
from typing import Any

from rich.console import Console
from torch import nn

from slopeft.config import RunConfig, TrainingConfig, update_dataclass
from slopeft.errors import ConfigError
from slopeft.tasks import get_task
from slopeft.training.build import RunParts, base_fingerprint, check_fingerprint, load_base, prepare_parts
from slopeft.training.record import (
    RECORD,
    data_fingerprint,
    git_commit,
    library_versions,
    read_record,
    write_json_atomic,
)

ADAPTER_DIR = "adapter"
ADAPTER_META = "slopeft_adapter.json"
ADAPTER_FORMAT = 1
VAL_PREDICTIONS = "val_predictions.json"  # idx → predicted label on the validation examples scored


def extra_val_predictions(val_set: str) -> str:
    """The predictions file of an extra validation set (``RunConfig.extra_val_sets``)."""
    return f"val_predictions.{val_set}.json"


def _limit(examples: list, n: int) -> list:
    return examples[:n] if n else examples


def count_parameters(model: nn.Module, head_modules: list[str]) -> dict[str, int]:
    """Trainable parameters split into the method's own and the task head's."""

    def in_head(name: str) -> bool:
        padded = f".{name}."
        return any(f".{h}." in padded for h in head_modules)

    trainable = [(n, p.numel()) for n, p in model.named_parameters() if p.requires_grad]
    head = sum(c for n, c in trainable if in_head(n))
    total = sum(c for _, c in trainable)
    return {"trainable": total, "trainable_head": head, "trainable_without_head": total - head}


def folder_size(path: Path) -> int:
    return sum(f.stat().st_size for f in Path(path).rglob("*") if f.is_file())


def train_run(
    config: RunConfig, resume: bool = False, console: Console | None = None, task_options: dict | None = None
) -> dict[str, Any]:
    """Trains ``config``, saves the best adapter and the run record; returns the record.

    A finished run (its record exists) is never overwritten: rerunning returns the existing record.
    """
    console = console or Console(stderr=True)
    run_dir = config.run_dir()
    if (run_dir / RECORD).is_file():
        record = read_record(run_dir)
        if record.get("status") == "completed":
            console.print(f"{run_dir} is already finished; delete it to train again.")
            return record
    if run_dir.exists() and any(run_dir.iterdir()) and not resume and not (run_dir / "checkpoint").exists():
        raise ConfigError(f"{run_dir} exists and is not a slopeft run; choose another --output.")
    if (run_dir / "checkpoint").exists() and not resume:
        raise ConfigError(
            f"{run_dir} holds an unfinished run. Continue it with --resume, or delete the folder."
        )
    parts = prepare_parts(config, task_options)  # bad task/model/method names fail before any folder exists
    run_dir.mkdir(parents=True, exist_ok=True)
    from transformers import set_seed

    set_seed(config.seed)
    model, context = load_base(parts)
    base_parameters = sum(p.numel() for p in model.parameters())
    head_parameters = sum(
        p.numel()
        for n, p in model.named_parameters()
        if any(n == h or n.startswith(h + ".") for h in context.head_modules)
    )
    model = parts.method.apply(model, context)
    params = count_parameters(model, context.head_modules)
    train = _limit(parts.task.examples("train"), config.training.max_train_examples)
    val = _limit(parts.task.examples("val"), config.training.max_eval_examples)
    console.print(
        f"[bold]{config.method}[/bold] on {config.task} with {config.model}: {params['trainable']:,} "
        f"trainable parameters ({params['trainable_without_head']:,} without the head, "
        f"{params['trainable_without_head'] / max(base_parameters - head_parameters, 1):.4%} of the base)"
    )

    from slopeft.training.trainer import Trainer

    trainer = Trainer(
        model, parts.head, parts.method, parts.task, config.training, run_dir, config.seed, console
    )
    started = time.perf_counter()
    result = trainer.fit(train, val, resume=resume)
    wall = time.perf_counter() - started
    truncated_train = trainer.truncated_train

    # Predict once and score those predictions: the per-example predictions are kept for statistics.
    if trainer.final_predictions is not None:
        val_predictions = trainer.final_predictions
        inference_speed = result.state.history[-1]["eval_examples_per_s"]
    else:
        eval_started = time.perf_counter()
        val_predictions = parts.head.predict(
            trainer.accelerator.unwrap_model(trainer.model), val, batch_size=config.training.eval_batch_size
        )
        inference_speed = len(val) / max(time.perf_counter() - eval_started, 1e-9)
    final_metrics = parts.task.metrics(val_predictions, val)
    truncated_val = parts.head.truncated
    extra_val, extra_predictions = {}, {}
    for val_set in config.extra_val_sets:
        other = get_task(config.task, config.data_dir, config.train_set, val_set, **(task_options or {}))
        examples = _limit(other.examples("val"), config.training.max_eval_examples)
        predictions = parts.head.predict(
            trainer.accelerator.unwrap_model(trainer.model), examples, batch_size=config.training.eval_batch_size
        )
        scores = other.metrics(predictions, examples)
        extra_val[val_set] = {
            "metrics": scores,
            "main": scores[parts.task.spec.main_metric],
            "examples": len(examples),
        }
        extra_predictions[val_set] = predictions
    adapter_dir = run_dir / ADAPTER_DIR
    main_process = trainer.accelerator.is_main_process  # several processes (accelerate launch): one writer
    if main_process:
        _save_adapter(parts, trainer.accelerator.unwrap_model(trainer.model), context, adapter_dir)
        write_json_atomic(run_dir / VAL_PREDICTIONS, {str(k): v for k, v in val_predictions.items()})
        for val_set, predictions in extra_predictions.items():
            write_json_atomic(
                run_dir / extra_val_predictions(val_set), {str(k): v for k, v in predictions.items()}
            )
    trainer.accelerator.wait_for_everyone()

    record = {
        "run_id": run_dir.name,
        "status": "completed",
        "config": config.to_dict(),
        "method_options": parts.method.options_dict(),
        "learning_rate": trainer.learning_rate,
        "versions": library_versions(),
        "git": git_commit(),
        "data": {
            "fingerprint": data_fingerprint(
                parts.task.source_files("train") + parts.task.source_files("val")
            ),
            "train_examples": len(train),
            "val_examples": len(val),
            "truncated_train": truncated_train,
            "truncated_val": truncated_val,
            "notes": parts.task.notes[:20],
        },
        "model": {
            "name": config.model,
            "path": parts.model_path,
            "family": parts.family,
            "architecture": parts.architecture,
            "base_parameters": base_parameters - head_parameters,
            "head_modules": context.head_modules,
        },
        "metrics": {
            "val": final_metrics,
            "main_metric": parts.task.spec.main_metric,
            "main": final_metrics[parts.task.spec.main_metric],
            # How the metrics were computed where a task offers a choice (MT: the NLTK release), and
            # what the leaderboard would refuse in these predictions.
            "scoring": parts.task.scoring(),
            "warnings": parts.task.metric_warnings(),
            "extra_val": extra_val,
            "best_step": result.state.best_step,
            "history": result.state.history,
        },
        "cost": {
            **params,
            "trainable_share": params["trainable_without_head"] / max(base_parameters - head_parameters, 1),
            "adapter_bytes": folder_size(adapter_dir),
            "train_seconds": result.state.train_seconds,
            "wall_seconds": wall,
            "train_examples_per_s": result.state.examples_seen / max(result.state.train_seconds, 1e-9),
            "inference_examples_per_s": inference_speed,
            "peak_rss_mb": result.peak_rss_mb,
            "peak_gpu_mb": result.peak_gpu_mb,
            "steps": result.state.step,
            "stopped_early": result.stopped_early,
            "method": parts.method.cost_report(trainer.accelerator.unwrap_model(trainer.model)),
        },
        "finished_at": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
    }
    if main_process:
        write_json_atomic(run_dir / RECORD, record)
        shutil.rmtree(run_dir / "checkpoint", ignore_errors=True)
    return record


def _save_adapter(parts: RunParts, model: nn.Module, context, adapter_dir: Path) -> None:
    tmp = adapter_dir.with_name(adapter_dir.name + ".tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    parts.method.save(model, tmp)
    meta = {
        "format_version": ADAPTER_FORMAT,
        "method": parts.method.name,
        "method_options": parts.method.options_dict(),
        "task": parts.task.name,
        "labels": [str(label) for label in parts.task.spec.labels or []],
        "base": base_fingerprint(parts),
        "family": parts.family,
        "architecture": parts.architecture,
        "head_modules": context.head_modules,
    }
    (tmp / ADAPTER_META).write_text(json.dumps(meta, indent=2) + "\n")
    if adapter_dir.exists():
        shutil.rmtree(adapter_dir)
    os.replace(tmp, adapter_dir)


def load_run(
    run_dir: Path,
    model_override: str | None = None,
    data_dir: str | None = None,
    task_options: dict | None = None,
) -> tuple[RunParts, nn.Module, dict[str, Any]]:
    """The trained model of a finished run: base model + saved adapter, checked against each other."""
    record = read_record(run_dir)
    raw = dict(record["config"])
    training = update_dataclass(TrainingConfig(), raw.pop("training"), "training")
    config = RunConfig(**{**raw, "training": training})
    if model_override:
        config = dataclasses.replace(config, model=model_override)
    if data_dir:
        config = dataclasses.replace(config, data_dir=data_dir)
    adapter_dir = Path(run_dir) / ADAPTER_DIR
    meta_path = adapter_dir / ADAPTER_META
    if not meta_path.is_file():
        raise ConfigError(f"{adapter_dir} has no {ADAPTER_META}; it was not written by slopeft train.")
    meta = json.loads(meta_path.read_text())
    if meta.get("format_version") != ADAPTER_FORMAT:
        raise ConfigError(
            f"{adapter_dir} uses adapter format {meta.get('format_version')}, this slopeft reads format "
            f"{ADAPTER_FORMAT}. Use the slopeft version that wrote it ({record['versions']['slopeft']})."
        )
    parts = prepare_parts(config, task_options)
    check_fingerprint(meta["base"], parts, adapter_dir)
    base, context = load_base(parts)
    model = parts.method.load(base, adapter_dir, context)
    model.eval()
    return parts, model, record


def predict_split(parts: RunParts, model: nn.Module, split: str, batch_size: int) -> dict[int, Any]:
    return parts.head.predict(model, parts.task.examples(split), batch_size=batch_size)
