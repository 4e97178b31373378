"""The one training loop, used by every method and task.

Built on accelerate (device placement, mixed precision, multi-process sharding) around an
explicit PyTorch loop rather than transformers' Trainer: evaluation here is task prediction
through the head scored by the SloBench metric (not logits-level ``compute_metrics``),
methods hook in after every step, sparse-embedding full fine-tuning needs two optimisers,
and resumable checkpoints must be safetensors + JSON (no pickle) — a short explicit loop
is clearer than overriding half of Trainer.
"""

from __future__ import annotations

import math
import random
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)
from torch import nn

from slopeft.config import TrainingConfig
from slopeft.errors import ConfigError, SlopeftError
from slopeft.methods.base import Method, trainable_state
from slopeft.methods.recipes import recipe_for
from slopeft.models.heads import Head
from slopeft.tasks.base import Example, Task
from slopeft.training import checkpoint as ckpt
from slopeft.training.memory import PeakMemory, limit_heap_fragmentation
from slopeft.training.step import TrainStep, build_optimizers, build_schedulers


class TrainingError(SlopeftError):
    """Training cannot go on (non-finite loss, out of memory)."""


@dataclass
class TrainerState:
    step: int = 0
    epoch: int = 0
    batch_in_epoch: int = 0
    best_metric: float | None = None
    best_step: int = 0
    evals_since_best: int = 0
    examples_seen: int = 0
    train_seconds: float = 0.0
    # CPU time of this process's threads while training: unlike wall time, a busy or paused machine
    # does not inflate it, so it is the cost to compare across runs of a shared machine.
    train_cpu_seconds: float = 0.0
    history: list[dict[str, Any]] = field(default_factory=list)


@dataclass
class TrainResult:
    state: TrainerState
    best_metrics: dict[str, float]
    total_steps: int
    stopped_early: bool
    peak_rss_mb: float | None
    peak_gpu_mb: float | None


def length_grouped_batches(
    lengths: Sequence[int], batch_size: int, seed: int, group: bool
) -> list[list[int]]:
    """Seeded batches of example indices; with ``group``, similar lengths share a batch.

    Like transformers' LengthGroupedSampler: shuffle, cut into mega-batches of 50 batches, sort
    each mega-batch by length, cut into batches, shuffle the batches. Less padding, same randomness.
    """
    rng = random.Random(seed)
    order = list(range(len(lengths)))
    rng.shuffle(order)
    if group:
        mega = batch_size * 50
        order = [
            i
            for start in range(0, len(order), mega)
            for i in sorted(order[start : start + mega], key=lambda i: -lengths[i])
        ]
    batches = [order[i : i + batch_size] for i in range(0, len(order), batch_size)]
    if group:
        rng.shuffle(batches)
    return batches


class Trainer:
    """Trains ``model`` (already adapted by ``method``) on a task through its ``head``.

    Args:
        model: the adapted model.
        head: the task head (encoding, batching, prediction).
        method: the method (hooks, extra loss, optimiser, saving).
        task: the task (metrics).
        config: training settings.
        run_dir: where checkpoints and the best adapter go.
        seed: the run's seed.
        console: where progress is shown.
    """

    def __init__(
        self,
        model: nn.Module,
        head: Head,
        method: Method,
        task: Task,
        config: TrainingConfig,
        run_dir: Path,
        seed: int,
        console: Console | None = None,
    ) -> None:
        from accelerate import Accelerator

        self.config, self.head, self.method, self.task = config, head, method, task
        self.run_dir, self.seed = Path(run_dir), seed
        self.console = console or Console(stderr=True)
        precision = config.precision
        if precision == "auto":
            precision = "bf16" if torch.cuda.is_available() and torch.cuda.is_bf16_supported() else "fp32"
        if precision != "fp32" and not torch.cuda.is_available():
            raise ConfigError(f"training.precision={precision} needs a GPU; on a CPU use fp32 (or auto).")
        self.accelerator = Accelerator(
            mixed_precision="no" if precision == "fp32" else precision, gradient_accumulation_steps=1
        )
        self.model = model
        self.learning_rate = config.learning_rate or recipe_for(method.name).learning_rate
        self.class_weights: torch.Tensor | None = None
        #: The optimiser step (forward, extra loss, backward, clip, optimisers, schedules, hooks); fit()
        #: gives it the prepared model, optimisers and schedules.
        self.train_step = self._train_step(model, [], [])
        #: Validation predictions of the weights fit() returns, when its last evaluation saw exactly them.
        self.final_predictions: dict[int, Any] | None = None

    # -- set-up ---------------------------------------------------------------------------------
    def _class_weights(self, train: Sequence[Example]) -> torch.Tensor | None:
        if not self.config.class_weights:
            return None
        if not getattr(self.head, "supports_class_weights", False):
            raise ConfigError(
                f"training.class_weights applies to classifier heads on encoders; {self.task.name} "
                f"with a {self.head.family} model trains a {type(self.head).__name__}."
            )
        labels = list(self.task.spec.labels)
        counts = torch.tensor([sum(e.label == label for e in train) for label in labels], dtype=torch.float)
        # Inverse frequency, normalised so a balanced set gets weight 1 everywhere.
        return counts.sum() / (len(labels) * counts.clamp(min=1))

    def _train_step(self, model: nn.Module, optimizers: list, schedulers: list) -> TrainStep:
        return TrainStep(
            model,
            self.method,
            optimizers,
            schedulers,
            max_grad_norm=self.config.max_grad_norm,
            loss=self._task_loss,
            backward=self.accelerator.backward,
            unwrap=self.accelerator.unwrap_model,
        )

    def _task_loss(self, model: nn.Module, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        if self.class_weights is None:
            return model(**batch).loss
        labels = batch.pop("labels")
        logits = model(**batch).logits
        return nn.functional.cross_entropy(logits.float(), labels, weight=self.class_weights.to(logits.device))

    def _loss(self, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        """The train step's forward pass: the task loss (class-weighted if asked) plus the method's extra loss."""
        return self.train_step.loss(batch)

    # -- evaluation -----------------------------------------------------------------------------
    def evaluate(self, examples: Sequence[Example]) -> tuple[dict[str, float], float]:
        """Task metrics of the current model on ``examples`` and the examples/s of prediction."""
        metrics, speed, _ = self._predict_and_score(examples)
        return metrics, speed

    def _predict_and_score(self, examples: Sequence[Example]) -> tuple[dict[str, float], float, dict]:
        start = time.perf_counter()
        model = self.accelerator.unwrap_model(self.model)
        predictions = self.head.predict(model, examples, batch_size=self.config.eval_batch_size)
        seconds = time.perf_counter() - start
        model.train()
        return self.task.metrics(predictions, examples), len(examples) / max(seconds, 1e-9), predictions

    # -- the loop -------------------------------------------------------------------------------
    def fit(self, train: Sequence[Example], val: Sequence[Example], resume: bool = False) -> TrainResult:
        from torch.utils.data import DataLoader

        config = self.config
        torch.manual_seed(self.seed)
        random.seed(self.seed)
        self.class_weights = self._class_weights(train)
        features = self.head.encode(train, with_labels=True)
        self.truncated_train = self.head.truncated
        lengths = [self.head.feature_length(f) for f in features]
        batches_per_epoch = math.ceil(len(features) / config.batch_size)
        steps_per_epoch = max(1, batches_per_epoch // config.grad_accumulation)
        total_steps = config.max_steps or math.ceil(config.epochs * steps_per_epoch)
        if config.max_steps and config.epochs:
            total_steps = (
                min(config.max_steps, math.ceil(config.epochs * steps_per_epoch)) or config.max_steps
            )
        epochs = math.ceil(total_steps / steps_per_epoch)

        optimizers = build_optimizers(self.method, self.model, self.learning_rate, config.weight_decay)
        schedulers = build_schedulers(
            optimizers, config.scheduler, int(config.warmup_ratio * total_steps), total_steps
        )
        self.model, *optimizers = self.accelerator.prepare(self.model, *optimizers)
        self.train_step = self._train_step(self.model, optimizers, schedulers)
        state = TrainerState()
        best_weights: dict[str, torch.Tensor] | None = None
        checkpoint_dir = self.run_dir / "checkpoint"
        if resume and (saved := ckpt.load_checkpoint(checkpoint_dir)) is not None:
            state, best_weights = self._restore(saved, optimizers, schedulers)
            self.console.print(f"Resuming from step {state.step} (epoch {state.epoch + 1}).")

        if self.accelerator.device.type == "cpu":  # activations live in host memory only on CPU
            limit_heap_fragmentation(config.malloc_mmap_threshold_kib)
        memory = PeakMemory()
        stopped_early = False
        self.model.train()
        progress = Progress(
            TextColumn("[bold]{task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            TextColumn("loss {task.fields[loss]}"),
            TextColumn("{task.fields[speed]} ex/s"),
            TimeElapsedColumn(),
            TextColumn("ETA"),
            TimeRemainingColumn(),
            console=self.console,
            disable=not self.accelerator.is_main_process,
        )
        try:
            with progress, memory:
                bar = progress.add_task(
                    f"{self.method.name} · {self.task.name}",
                    total=total_steps,
                    completed=state.step,
                    loss="-",
                    speed="-",
                )
                running, running_n = 0.0, 0
                while state.step < total_steps and state.epoch < epochs and not stopped_early:
                    order = length_grouped_batches(
                        lengths, config.batch_size, self.seed + state.epoch, config.group_by_length
                    )
                    loader = DataLoader(features, batch_sampler=order, collate_fn=self.head.collate)
                    loader = self.accelerator.prepare(loader)
                    if state.batch_in_epoch:
                        loader = self.accelerator.skip_first_batches(loader, state.batch_in_epoch)
                    tick, cpu_tick = time.perf_counter(), time.process_time()
                    for batch in loader:
                        loss = self._loss(dict(batch)) / config.grad_accumulation
                        if not torch.isfinite(loss):
                            raise TrainingError(
                                f"The loss became {loss.item()} at step {state.step + 1} (epoch {state.epoch + 1}). "
                                f"Likely causes: a learning rate too high for {self.method.name} "
                                f"({self.learning_rate:g}; try a tenth), fp16 overflow (use bf16 or fp32), or "
                                "corrupt inputs. Lower --set training.learning_rate=... and rerun."
                            )
                        self.train_step.backward(loss)
                        state.batch_in_epoch += 1
                        state.examples_seen += len(batch["input_ids"])
                        running += loss.item() * config.grad_accumulation
                        running_n += 1
                        if state.batch_in_epoch % config.grad_accumulation:
                            continue
                        self._optimizer_step(optimizers, schedulers)
                        state.step += 1
                        self.train_step.end(state.step, total_steps)
                        elapsed = time.perf_counter() - tick
                        state.train_seconds += elapsed
                        state.train_cpu_seconds += time.process_time() - cpu_tick
                        tick, cpu_tick = time.perf_counter(), time.process_time()
                        speed = config.batch_size * config.grad_accumulation / max(elapsed, 1e-9)
                        if state.step % config.log_every == 0 or state.step == total_steps:
                            progress.update(bar, loss=f"{running / running_n:.4f}", speed=f"{speed:.1f}")
                            running, running_n = 0.0, 0
                        progress.update(bar, completed=state.step)
                        if config.eval_every and state.step % config.eval_every == 0:
                            best_weights, stopped_early = self._evaluate_and_keep(val, state, best_weights)
                            tick, cpu_tick = time.perf_counter(), time.process_time()  # evaluation is not training
                        if state.step >= total_steps or stopped_early:
                            break
                    else:
                        state.epoch += 1
                        state.batch_in_epoch = 0
                        self.train_step.zero_grad()  # a partial accumulation does not leak into the next epoch
                        if not config.eval_every:
                            best_weights, stopped_early = self._evaluate_and_keep(val, state, best_weights)
                        self._save_checkpoint(checkpoint_dir, state, optimizers, schedulers, best_weights)
                        continue
                    break
                if not state.history or state.history[-1]["step"] != state.step:
                    best_weights, _ = self._evaluate_and_keep(val, state, best_weights)
        except KeyboardInterrupt:
            self._save_checkpoint(checkpoint_dir, state, optimizers, schedulers, best_weights)
            raise TrainingError(
                f"Interrupted at step {state.step}; a checkpoint was saved in {checkpoint_dir}. "
                "Run the same command with --resume to continue."
            ) from None
        except torch.OutOfMemoryError:
            raise TrainingError(
                f"Out of memory at step {state.step + 1} with batch size {config.batch_size}. Halve it and keep the "
                "effective batch with --set training.batch_size=N --set training.grad_accumulation=M, or lower "
                "training.max_length."
            ) from None
        if config.select_best and best_weights is not None:
            self._load_weights(best_weights)
        final_is_best = state.best_step == state.step
        if config.select_best and not final_is_best:
            # Methods that grow parameters after the best step (IncreLoRA) do not return to exactly
            # the evaluated state, so the caller predicts afresh.
            self.final_predictions = None
        best = next((h["metrics"] for h in state.history if h["step"] == state.best_step), {})
        return TrainResult(state, best, total_steps, stopped_early, memory.peak_rss_mb, memory.peak_gpu_mb)

    def _optimizer_step(self, optimizers: list, schedulers: list) -> None:
        """The train step's update (clip, the optimisers and schedules, which are ``optimizers`` and
        ``schedulers``); one method, so a test can stand in for it."""
        self.train_step.update()

    def _evaluate_and_keep(
        self, val: Sequence[Example], state: TrainerState, best_weights: dict[str, torch.Tensor] | None
    ) -> tuple[dict | None, bool]:
        metrics, speed, predictions = self._predict_and_score(val)
        # The predictions of the state training ends in, reused for the record (no second pass).
        self.final_predictions = predictions
        value = metrics[self.task.spec.main_metric]
        state.history.append(
            {"step": state.step, "epoch": state.epoch, "metrics": metrics, "eval_examples_per_s": speed}
        )
        self.console.print(f"step {state.step}: {self.task.spec.main_metric} = {value:.4f}")
        if state.best_metric is None or value > state.best_metric:
            state.best_metric, state.best_step, state.evals_since_best = value, state.step, 0
            best_weights = trainable_state(self.accelerator.unwrap_model(self.model))
        else:
            state.evals_since_best += 1
        stop = bool(self.config.patience) and state.evals_since_best >= self.config.patience
        if stop:
            self.console.print(f"Early stop: no improvement in {self.config.patience} evaluations.")
        return best_weights, stop

    def _load_weights(self, weights: dict[str, torch.Tensor]) -> None:
        parameters = dict(self.accelerator.unwrap_model(self.model).named_parameters())
        with torch.no_grad():
            for name, tensor in weights.items():
                parameters[name].copy_(tensor.to(parameters[name].device, parameters[name].dtype))

    def _save_checkpoint(
        self,
        directory: Path,
        state: TrainerState,
        optimizers: list,
        schedulers: list,
        best_weights: dict | None,
    ) -> None:
        if not self.accelerator.is_main_process:
            return
        ckpt.save_checkpoint(
            directory,
            {
                "trainer": state.__dict__,
                "weights": trainable_state(self.accelerator.unwrap_model(self.model)),
                "best_weights": best_weights or {},
                "optimizers": [o.state_dict() for o in optimizers],
                "schedulers": [s.state_dict() for s in schedulers],
                "method": self.method.state_dict(),
                "torch_rng": torch.get_rng_state(),
            },
        )

    def _restore(self, saved: dict, optimizers: list, schedulers: list) -> tuple[TrainerState, dict | None]:
        self._load_weights(saved["weights"])
        for optimizer, state in zip(optimizers, saved["optimizers"], strict=True):
            optimizer.load_state_dict(state)
        for scheduler, state in zip(schedulers, saved["schedulers"], strict=True):
            scheduler.load_state_dict(state)
        self.method.load_state_dict(saved.get("method") or {})
        torch.set_rng_state(saved["torch_rng"])
        return TrainerState(**saved["trainer"]), saved["best_weights"] or None
