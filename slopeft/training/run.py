"""`slopeft train`: a run from its config to its adapter and record (evaluation/prediction.py loads it back)."""

from __future__ import annotations

import contextlib
import shutil
import time
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
from rich.console import Console
from torch import nn

from slopeft.config import RunConfig
from slopeft.errors import ConfigError
from slopeft.files import WriteError, as_os_error, check_output, is_disk_error
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
from slopeft.training import checkpoint as ckpt
from slopeft.training.adapter import ADAPTER_DIR, save_adapter
from slopeft.training.build import RunParts, hub_revision, load_base, prepare_parts
from slopeft.training.precision import resolve_precision
from slopeft.training.trainer import TrainingError


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
    config: RunConfig,
    resume: bool = False,
    console: Console | None = None,
    task_options: dict | None = None,
    require_checkpoint: bool = False,
    on_step: Callable[[int, int], None] | None = None,
) -> dict[str, Any]:
    """Trains ``config``, saves the best adapter and the run record; returns the record as written
    (:meth:`~slopeft.records.RunRecord.to_dict`).

    A finished run (its record exists) is never overwritten: rerunning returns the existing record.
    With ``resume``, a checkpoint in the run folder is continued, and only with the configuration it
    was saved with; ``require_checkpoint`` (``slopeft train --resume``) makes a missing one an error
    instead of a fresh start (the grid resumes whatever it finds). A run that fails leaves no folder
    behind unless it leaves a checkpoint to resume (an interrupt, a full disk). ``on_step`` gets
    (steps done, total steps) after every optimiser step.
    """
    console = console or Console(stderr=True)
    run_dir = config.run_dir()
    check_output(run_dir, "folder", "--output")
    if (run_dir / RECORD).is_file():
        record = read_record(run_dir)
        if record.status == "completed":
            console.print(f"{run_dir} is already finished; delete it to train again.")
            return record.to_dict()
    checkpoint_dir = run_dir / "checkpoint"
    has_checkpoint = ckpt.exists(checkpoint_dir)
    if run_dir.exists() and any(run_dir.iterdir()) and not resume and not has_checkpoint:
        raise ConfigError(f"{run_dir} exists and is not a slopeft run; choose another --output.")
    if has_checkpoint and not resume:
        raise ConfigError(
            f"{run_dir} holds an unfinished run. Continue it with --resume, or delete the folder."
        )
    if resume and require_checkpoint and not has_checkpoint:
        raise ConfigError(
            f"Nothing to resume: {run_dir} holds no checkpoint ({'the folder does not exist' if not run_dir.exists() else 'no checkpoint/ folder'}). "
            "A run saves one at the end of every epoch and when interrupted; run the command without --resume "
            "to start it from step 0."
        )
    if resume and has_checkpoint:
        _check_same_config(ckpt.saved_config(checkpoint_dir), config.to_dict(), checkpoint_dir)
    with warnings.catch_warnings():  # the trainer warns about emulated bf16 itself; here only refusals count
        warnings.simplefilter("ignore")
        resolve_precision(config.training.precision)  # fp16 on a CPU fails before the model loads
    parts = prepare_parts(config, task_options)  # bad task/model/method names fail before any folder exists
    created = not run_dir.exists()
    run_dir.mkdir(parents=True, exist_ok=True)
    try:
        return _train(config, parts, run_dir, resume, console, task_options, on_step)
    except BaseException as err:
        keep = isinstance(err, TrainingError) and err.resumable
        if created and not keep:
            shutil.rmtree(run_dir, ignore_errors=True)  # nothing in it is worth resuming
        else:
            _remove_temporaries(run_dir)
        raise


#: Settings a resumed run may change: where things are, and what only the display or the allocator use.
RESUME_MAY_CHANGE = ("data_dir", "output", "training.log_every", "training.malloc_mmap_threshold_kib")


def _flat_config(config: dict[str, Any]) -> dict[str, Any]:
    flat = {}
    for key, value in config.items():
        if key in ("training", "method_options") and isinstance(value, dict):
            flat.update({f"{key}.{k}": v for k, v in value.items()})
        else:
            flat[key] = value
    return flat


def _check_same_config(saved: dict[str, Any] | None, current: dict[str, Any], checkpoint_dir: Path) -> None:
    """Refuses to resume a checkpoint with settings other than those it was saved with: the record would
    claim the new values for a run trained partly with the old ones."""
    if saved is None:
        return  # checkpoints written before they kept their configuration: nothing to compare
    old, new = _flat_config(saved), _flat_config(current)
    missing = object()
    changed = sorted(
        key
        for key in old.keys() | new.keys()
        if key not in RESUME_MAY_CHANGE and old.get(key, missing) != new.get(key, missing)
    )
    if not changed:
        return
    method = current.get("method", "method")

    def name(key: str) -> str:
        return f"{saved.get('method', method)}.{key.split('.', 1)[1]}" if key.startswith("method_options.") else key

    def show(config: dict[str, Any], key: str) -> str:
        return repr(config[key]) if key in config else "unset"

    listed = "; ".join(f"{name(k)} was {show(old, k)}, now {show(new, k)}" for k in changed[:8])
    raise ConfigError(
        f"Cannot resume {checkpoint_dir.parent} with a changed configuration: {listed}"
        f"{' ...' if len(changed) > 8 else ''}. A resumed run continues with the settings it started with: "
        "run the same command as before with --resume, or train the new settings into another --output."
    )


def _remove_temporaries(run_dir: Path) -> None:
    # What a failed write left: temporary files and folders (a checkpoint's .tmp is removed by its writer).
    for path in Path(run_dir).glob(".*.tmp"):
        if path.is_dir():
            shutil.rmtree(path, ignore_errors=True)
        else:
            path.unlink(missing_ok=True)
    shutil.rmtree(Path(run_dir) / f"{ADAPTER_DIR}.tmp", ignore_errors=True)


def _train(
    config: RunConfig,
    parts: RunParts,
    run_dir: Path,
    resume: bool,
    console: Console,
    task_options: dict | None,
    on_step: Callable[[int, int], None] | None = None,
) -> dict[str, Any]:
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

    capped = parts.head.length_cap_note()
    if capped:
        console.print(f"[yellow]{capped}[/yellow]")

    from slopeft.training.trainer import Trainer

    trainer = Trainer(
        model, parts.head, parts.method, parts.task, config.training, run_dir, config.seed, console,
        run_config=config.to_dict(), on_step=on_step,
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
        with _results_written(run_dir):
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
            "sequence_limit": parts.head.sequence_limit,  # training.max_length as the model allowed it
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
            # How the metrics were computed where a task offers a choice (MT: the NLTK release), and
            # what the leaderboard would refuse in these predictions.
            scoring=parts.task.scoring(),
            warnings=parts.task.metric_warnings(),
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
            "precision": trainer.precision,
            "threads": torch.get_num_threads(),  # CPU-seconds of runs trained on different thread counts differ
            "method": parts.method.cost_report(trainer.accelerator.unwrap_model(trainer.model)),
        },
        finished_at=time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        base={"revision": hub_revision(parts.model_path), "weights": parts.base_weights},
    )
    if main_process:
        with _results_written(run_dir):
            write_record(run_dir, record)
        shutil.rmtree(run_dir / "checkpoint", ignore_errors=True)
    return record.to_dict()


@contextlib.contextmanager
def _results_written(run_dir: Path):
    """Turns a failed write of the results (a full disk) into a resumable TrainingError: training ended
    with a checkpoint of its final state, so nothing trained is lost."""
    try:
        yield
    except Exception as err:
        disk = err if isinstance(err, WriteError) else as_os_error(err)
        if disk is None or not (isinstance(disk, WriteError) or is_disk_error(disk)):
            raise
        reason = str(disk) if isinstance(disk, WriteError) else f"{disk.strerror} ({disk.filename or run_dir})"
        raise TrainingError(
            f"Training finished, but writing its results failed: {reason} The trained state is kept in "
            f"{run_dir / 'checkpoint'}: free some space, then run the same command with --resume; it writes the "
            "results without training again.",
            resumable=True,
        ) from None
