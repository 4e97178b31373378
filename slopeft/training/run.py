"""`slopeft train`: a run from its config to its adapter and record (evaluation/prediction.py loads it back)."""

from __future__ import annotations

import shutil
import time
from pathlib import Path
from typing import Any

from rich.console import Console
from torch import nn

from slopeft.config import RunConfig
from slopeft.errors import ConfigError
from slopeft.records import (
    RECORD,
    RunMetrics,
    RunRecord,
    data_fingerprint,
    git_commit,
    library_versions,
    read_record,
    write_predictions,
    write_record,
)
from slopeft.tasks import get_task
from slopeft.training.adapter import ADAPTER_DIR, save_adapter
from slopeft.training.build import load_base, prepare_parts


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
    """Trains ``config``, saves the best adapter and the run record; returns the record as written
    (:meth:`~slopeft.records.RunRecord.to_dict`).

    A finished run (its record exists) is never overwritten: rerunning returns the existing record.
    """
    console = console or Console(stderr=True)
    run_dir = config.run_dir()
    if (run_dir / RECORD).is_file():
        record = read_record(run_dir)
        if record.status == "completed":
            console.print(f"{run_dir} is already finished; delete it to train again.")
            return record.to_dict()
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
    train = parts.task.first(parts.task.examples("train"), config.training.max_train_examples)
    val = parts.task.first(parts.task.examples("val"), config.training.max_eval_examples)
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
        examples = other.first(other.examples("val"), config.training.max_eval_examples)
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
        save_adapter(parts, trainer.accelerator.unwrap_model(trainer.model), context, adapter_dir)
        write_predictions(run_dir, val_predictions)
        for val_set, predictions in extra_predictions.items():
            write_predictions(run_dir, predictions, val_set)
    trainer.accelerator.wait_for_everyone()

    record = RunRecord(
        run_id=run_dir.name,
        kind="train",
        config=config.to_dict(),
        method_options=parts.method.options_dict(),
        learning_rate=trainer.learning_rate,
        versions=library_versions(),
        git=git_commit(),
        data={
            "fingerprint": data_fingerprint(
                parts.task.source_files("train") + parts.task.source_files("val")
            ),
            "train_examples": len(train),
            "val_examples": len(val),
            "truncated_train": truncated_train,
            "truncated_val": truncated_val,
            "notes": parts.task.notes[:20],
        },
        model={
            "name": config.model,
            "path": parts.model_path,
            "family": parts.family,
            "architecture": parts.architecture,
            "base_parameters": base_parameters - head_parameters,
            "head_modules": context.head_modules,
        },
        metrics=RunMetrics(
            val=final_metrics,
            main_metric=parts.task.spec.main_metric,
            main=final_metrics[parts.task.spec.main_metric],
            extra_val=extra_val,
            best_step=result.state.best_step,
            history=result.state.history,
        ),
        cost={
            **params,
            "trainable_share": params["trainable_without_head"] / max(base_parameters - head_parameters, 1),
            "adapter_bytes": folder_size(adapter_dir),
            "train_seconds": result.state.train_seconds,
            "train_cpu_seconds": result.state.train_cpu_seconds,
            "wall_seconds": wall,
            "train_examples_per_s": result.state.examples_seen / max(result.state.train_seconds, 1e-9),
            "inference_examples_per_s": inference_speed,
            "peak_rss_mb": result.peak_rss_mb,
            "peak_gpu_mb": result.peak_gpu_mb,
            "steps": result.state.step,
            "stopped_early": result.stopped_early,
            "method": parts.method.cost_report(trainer.accelerator.unwrap_model(trainer.model)),
        },
        finished_at=time.strftime("%Y-%m-%dT%H:%M:%S%z"),
    )
    if main_process:
        write_record(run_dir, record)
        shutil.rmtree(run_dir / "checkpoint", ignore_errors=True)
    return record.to_dict()
