"""The one training loop, used by every method and task.

Built on accelerate (device placement, mixed precision, multi-process sharding) around an
explicit PyTorch loop rather than transformers' Trainer: evaluation here is task prediction
through the head scored by the SloBench metric (not logits-level ``compute_metrics``),
methods hook in after every step, sparse-embedding full fine-tuning needs two optimisers,
and resumable checkpoints must be safetensors + JSON (no pickle) — a short explicit loop
is clearer than overriding half of Trainer.
"""

from __future__ import annotations

import contextlib
import copy
import dataclasses
import hashlib
import math
import random
import signal
import threading
import time
from collections.abc import Callable, Sequence
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
from slopeft.files import WriteError
from slopeft.methods.base import Method, trainable_state
from slopeft.methods.recipes import recipe_for
from slopeft.models.heads import Head
from slopeft.tasks.base import Example, Task
from slopeft.training import checkpoint as ckpt
from slopeft.training.memory import PeakMemory, limit_heap_fragmentation
from slopeft.training.precision import resolve_precision
from slopeft.training.step import TrainStep, build_optimizers, build_schedulers


class TrainingError(SlopeftError):
    """Training cannot go on (non-finite or diverging loss, out of memory, an interrupt, a full disk).

    Attributes:
        resumable: a checkpoint to resume from was kept (an interrupt, a full disk); otherwise the run
            folder holds nothing worth keeping.
        diverged: the loss became non-finite or climbed far above its start. Training is seeded, so the
            same configuration diverges again: a result about that configuration, not an accident of the
            machine (a grid publishes it and does not train it again).
    """

    def __init__(self, message: str, resumable: bool = False, diverged: bool = False) -> None:
        super().__init__(message)
        self.resumable = resumable
        self.diverged = diverged


#: Divergence: the smoothed training loss (an exponential moving average over optimiser steps, this
#: weight on the newest) above DIVERGENCE_FACTOR × the first step's loss, and DIVERGENCE_MARGIN above it.
DIVERGENCE_SMOOTHING = 0.1
DIVERGENCE_FACTOR = 10.0
DIVERGENCE_MARGIN = 1.0


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
    loss_start: float | None = None  # the first optimiser step's training loss (divergence check)
    loss_ema: float | None = None  # the smoothed training loss since


@dataclass
class TrainResult:
    state: TrainerState
    best_metrics: dict[str, float]
    total_steps: int
    stopped_early: bool
    peak_rss_mb: float | None
    peak_gpu_mb: float | None


def epoch_order_seed(seed: int, epoch: int) -> int:
    """The seed of the batch order of epoch ``epoch`` (0-based) of a run seeded ``seed``: a different
    one for every (seed, epoch) pair, so two seeds of a run never see the same order.

    Until 3 December 2026 every run used ``seed + epoch``, which gave seed 2's first epoch the order
    of seed 1's second (and seed 3's the order of seed 1's third): seeds shared data orders, and
    intervals over them came out narrower than they are. Seed 1 keeps ``1 + epoch``, the orders its
    published runs (the recipe sweep, the study's first seed, the quickstart) were trained with; every
    other seed draws its orders from a hash of (seed, epoch), far from those small numbers.
    """
    if seed == 1:
        return 1 + epoch
    digest = hashlib.sha256(f"slopeft batch order {seed} {epoch}".encode()).digest()
    return 2**32 + int.from_bytes(digest[:8], "big")


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
        run_config: the run's configuration (``RunConfig.to_dict()``), kept in checkpoints.
        on_step: called with (optimiser steps done, total steps) after every step: progress for a
            caller that shows it elsewhere (the quickstart's side-by-side runs).
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
        run_config: dict[str, Any] | None = None,
        on_step: Callable[[int, int], None] | None = None,
    ) -> None:
        from accelerate import Accelerator
        from accelerate.state import AcceleratorState

        self.config, self.head, self.method, self.task = config, head, method, task
        self.run_dir, self.seed = Path(run_dir), seed
        #: The run's configuration, saved with each checkpoint so that a resume can refuse another one.
        self.run_config = run_config
        self._updating = False  # inside an optimiser update (a KeyboardInterrupt there saves nothing new)
        self._saved_at: tuple[int, int] | None = None  # (step, evaluations) of the last checkpoint saved
        self.console = console or Console(stderr=True)
        self.on_step = on_step
        self._batches_per_epoch = 1  # fit() sets it from the training set
        #: The arithmetic this run trains in (fp32, bf16 or fp16), ``config.precision`` resolved here.
        self.precision = resolve_precision(config.precision)
        mixed_precision = "no" if self.precision == "fp32" else self.precision
        try:
            self.accelerator = Accelerator(mixed_precision=mixed_precision, gradient_accumulation_steps=1)
        except ValueError as err:
            if "already been initialized" not in str(err):
                raise
            # accelerate keeps one precision per process (a singleton) and refuses another; a grid worker,
            # a sequential quickstart or the tests train runs of several precisions one after the other in
            # one process. Only the accelerator's part is reset: the process group of a distributed run stays.
            AcceleratorState._reset_state()
            self.accelerator = Accelerator(mixed_precision=mixed_precision, gradient_accumulation_steps=1)
        self.model = model
        # `is None`, not `or`: an explicit rate is used as given (TrainingConfig refuses 0 and below).
        self.learning_rate = (
            recipe_for(method.name).learning_rate if config.learning_rate is None else config.learning_rate
        )
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
        """Trains and returns with the selected weights loaded.

        A checkpoint is saved at the end of every epoch and when training ends (before the caller
        writes anything), always as of a batch boundary: the counters, weights, optimiser and schedule
        states and every RNG state as they were right after an optimiser step, so a resumed run is
        bit-identical to an uninterrupted one. An interrupt (SIGINT, or SIGTERM, which behaves the same
        here) saves the last boundary; one arriving during an optimiser update waits until it is done.
        """
        from torch.utils.data import DataLoader

        config = self.config
        torch.manual_seed(self.seed)
        random.seed(self.seed)
        self.class_weights = self._class_weights(train)
        features = self.head.encode(train, with_labels=True)
        self.truncated_train = self.head.truncated
        lengths = [self.head.feature_length(f) for f in features]
        batches_per_epoch = math.ceil(len(features) / config.batch_size)
        self._batches_per_epoch = batches_per_epoch
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
        #: RNG states to put back at the resumed batch boundary (the loader's first batch, see below).
        self._pending_rng: dict[str, Any] | None = None
        pending_eval = False
        if resume and (saved := ckpt.load_checkpoint(checkpoint_dir)) is not None:
            state, best_weights, self._pending_rng, pending_eval = self._restore(saved, optimizers, schedulers)
            self._saved_at = (state.step, len(state.history))
            self.console.print(f"Resuming from step {state.step} (epoch {state.epoch + 1}).")
        self._boundary = _Boundary(copy.deepcopy(state), best_weights, self._pending_rng or rng_state(), pending_eval)

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
        interrupts = _Interrupts()
        try:
            with progress, memory, interrupts:
                bar = progress.add_task(
                    f"{self.method.name} · {self.task.name}",
                    total=total_steps,
                    completed=state.step,
                    loss="-",
                    speed="-",
                )
                if pending_eval:  # interrupted during an evaluation: do it before the next batch
                    best_weights, stopped_early = self._evaluate_and_keep(val, state, best_weights)
                    self._snapshot(state, best_weights)
                running, running_n = 0.0, 0
                step_loss, step_batches = 0.0, 0
                while state.step < total_steps and state.epoch < epochs and not stopped_early:
                    order = length_grouped_batches(
                        lengths, config.batch_size, epoch_order_seed(self.seed, state.epoch), config.group_by_length
                    )
                    if self._pending_rng is not None and not state.batch_in_epoch:
                        self._put_back_rng()  # before the loader draws its seed, as the first run did
                    loader = DataLoader(features, batch_sampler=order, collate_fn=self.head.collate)
                    loader = self.accelerator.prepare(loader)
                    if state.batch_in_epoch:
                        loader = self.accelerator.skip_first_batches(loader, state.batch_in_epoch)
                    tick, cpu_tick = time.perf_counter(), time.process_time()
                    for batch in loader:
                        if self._pending_rng is not None:
                            # A resumed epoch's loader draws its seed again when it yields its first batch;
                            # the RNG then goes back to where it stood at the boundary.
                            self._put_back_rng()
                        loss = self._loss(dict(batch)) / config.grad_accumulation
                        if not torch.isfinite(loss):
                            raise TrainingError(
                                f"The loss became {loss.item()} at step {state.step + 1} (epoch {state.epoch + 1}). "
                                f"Likely causes: a learning rate too high for {self.method.name} "
                                f"({self.learning_rate:g}; try a tenth), fp16 overflow (use bf16 or fp32), or "
                                "corrupt inputs. Lower --set training.learning_rate=... and rerun.",
                                diverged=True,
                            )
                        self.train_step.backward(loss)
                        state.batch_in_epoch += 1
                        state.examples_seen += len(batch["input_ids"])
                        running += loss.item() * config.grad_accumulation
                        running_n += 1
                        step_loss += loss.item() * config.grad_accumulation
                        step_batches += 1
                        if state.batch_in_epoch % config.grad_accumulation:
                            continue
                        due = bool(config.eval_every) and (state.step + 1) % config.eval_every == 0
                        with interrupts.deferred():  # an update and its boundary are never cut in half
                            self._updating = True
                            self._optimizer_step(optimizers, schedulers)
                            state.step += 1
                            self.train_step.end(state.step, total_steps)
                            self._updating = False
                            elapsed = time.perf_counter() - tick
                            state.train_seconds += elapsed
                            state.train_cpu_seconds += time.process_time() - cpu_tick
                            self._check_divergence(state, step_loss / step_batches)
                            step_loss, step_batches = 0.0, 0
                            self._snapshot(state, best_weights, pending_eval=due)
                        tick, cpu_tick = time.perf_counter(), time.process_time()
                        speed = config.batch_size * config.grad_accumulation / max(elapsed, 1e-9)
                        if state.step % config.log_every == 0 or state.step == total_steps:
                            progress.update(bar, loss=f"{running / running_n:.4f}", speed=f"{speed:.1f}")
                            running, running_n = 0.0, 0
                        progress.update(bar, completed=state.step)
                        if self.on_step is not None:
                            self.on_step(state.step, total_steps)
                        if due:
                            best_weights, stopped_early = self._evaluate_and_keep(val, state, best_weights)
                            self._snapshot(state, best_weights)
                            tick, cpu_tick = time.perf_counter(), time.process_time()  # evaluation is not training
                        if state.step >= total_steps or stopped_early:
                            break
                    else:
                        if self._pending_rng is not None:  # every batch of the resumed epoch was done already
                            self._put_back_rng()
                        state.epoch += 1
                        state.batch_in_epoch = 0
                        step_loss, step_batches = 0.0, 0  # a partial accumulation does not leak into the next epoch
                        self.train_step.zero_grad()
                        if not config.eval_every:
                            best_weights, stopped_early = self._evaluate_and_keep(val, state, best_weights)
                        self._snapshot(state, best_weights)
                        self._save_checkpoint(checkpoint_dir, optimizers, schedulers)
                        continue
                    break
                if not state.history or state.history[-1]["step"] != state.step:
                    best_weights, _ = self._evaluate_and_keep(val, state, best_weights)
                    self._snapshot(state, best_weights)
                # The caller writes the adapter and the record next; should that fail (a full disk),
                # --resume finds the finished state here instead of training again.
                if self._saved_at != (state.step, len(state.history)):
                    self._save_checkpoint(checkpoint_dir, optimizers, schedulers)
        except KeyboardInterrupt:
            try:
                self._stop_interrupted(checkpoint_dir, optimizers, schedulers, state)
            finally:
                interrupts.release()  # signals after the first were ignored until the checkpoint was written
        except WriteError as err:
            where = f"the checkpoint of step {self._saved_at[0]}" if self._saved_at else "no checkpoint"
            raise TrainingError(
                f"{err} Training stopped at step {state.step}; {where} is kept in {checkpoint_dir}: with space "
                "freed, run the same command with --resume to continue from it.",
                resumable=self._saved_at is not None,
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

    def _check_divergence(self, state: TrainerState, loss: float) -> None:
        """Stops a run whose (smoothed) training loss climbed far above where it started: NaN is caught
        per batch, but a learning rate far too high often gives finite, huge losses instead."""
        if state.loss_start is None or state.loss_ema is None:
            state.loss_start = state.loss_ema = loss
            return
        state.loss_ema = (1 - DIVERGENCE_SMOOTHING) * state.loss_ema + DIVERGENCE_SMOOTHING * loss
        start, now = state.loss_start, state.loss_ema
        if now > DIVERGENCE_FACTOR * start and now > start + DIVERGENCE_MARGIN:
            raise TrainingError(
                f"Training diverged: the training loss rose from {start:.4g} (step 1) to {now:.4g} (smoothed, step "
                f"{state.step}), more than {DIVERGENCE_FACTOR:g}× where it started. Likely causes: a learning rate "
                f"too high for {self.method.name} ({self.learning_rate:g}; try a tenth or less), or no warmup. Lower "
                "--set training.learning_rate=... and train again.",
                diverged=True,
            )

    def _snapshot(self, state: TrainerState, best_weights: dict | None, pending_eval: bool = False) -> None:
        """Remembers a batch boundary: what a checkpoint saves if training stops before the next one.
        The weights, optimiser and method states are read when saving: nothing changes them between
        two boundaries but an update, during which interrupts wait."""
        rng = self._pending_rng or rng_state()  # a resumed run's RNG goes back in only at its first batch
        self._boundary = _Boundary(copy.deepcopy(state), best_weights, rng, pending_eval)

    def _put_back_rng(self) -> None:
        assert self._pending_rng is not None
        set_rng_state(self._pending_rng)
        self._pending_rng = None

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
        # Epochs done, counting a partial one: the last evaluation of 3 epochs says 3 (it comes before
        # the epoch counter moves on), a stop after 1.5 epochs 1.5.
        done = state.epoch + state.batch_in_epoch / max(self._batches_per_epoch, 1)
        state.history.append(
            {"step": state.step, "epoch": round(done, 4), "metrics": metrics, "eval_examples_per_s": speed}
        )
        self.console.print(f"step {state.step}: {self.task.spec.main_metric} = {value:.4f}")
        for warning in self.task.metric_warnings():
            self.console.print(f"[yellow]step {state.step}, warning:[/yellow] {warning}", highlight=False)
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

    def _save_checkpoint(self, directory: Path, optimizers: list, schedulers: list) -> None:
        """Saves the last batch boundary (:meth:`_snapshot`) with the current weights and optimiser states."""
        if not self.accelerator.is_main_process:
            return
        boundary = self._boundary
        ckpt.save_checkpoint(
            directory,
            {
                "trainer": dataclasses.asdict(boundary.state),
                "weights": trainable_state(self.accelerator.unwrap_model(self.model)),
                "best_weights": boundary.best_weights or {},
                "optimizers": [o.state_dict() for o in optimizers],
                "schedulers": [s.state_dict() for s in schedulers],
                "method": self.method.state_dict(),
                "rng": boundary.rng,
                "torch_rng": boundary.rng["torch"],  # what checkpoints before "rng" held
                "pending_eval": boundary.pending_eval,
                "config": self.run_config,
            },
        )
        self._saved_at = (boundary.state.step, len(boundary.state.history))

    def _stop_interrupted(self, checkpoint_dir: Path, optimizers: list, schedulers: list, state: TrainerState) -> None:
        """Raises the TrainingError of an interrupt, after saving the last batch boundary where there is one."""
        if self._updating:
            # Raised inside an optimiser update (not by a signal, which waits for the update): the
            # weights are half-updated, so the last saved checkpoint stays the one to resume from.
            where = f"the checkpoint of step {self._saved_at[0]}" if self._saved_at else "no checkpoint"
            raise TrainingError(
                f"Interrupted during the optimiser update of step {state.step + 1}; {where} is kept in "
                f"{checkpoint_dir}. Run the same command with --resume to continue"
                f"{'' if self._saved_at else ' (it starts again from step 0)'}.",
                resumable=self._saved_at is not None,
            ) from None
        self._save_checkpoint(checkpoint_dir, optimizers, schedulers)
        raise TrainingError(
            f"Interrupted at step {self._boundary.state.step}; a checkpoint was saved in {checkpoint_dir}. "
            "Run the same command with --resume to continue.",
            resumable=True,
        ) from None

    def _restore(
        self, saved: dict, optimizers: list, schedulers: list
    ) -> tuple[TrainerState, dict | None, dict[str, Any], bool]:
        where = self.run_dir / "checkpoint"
        try:
            self._load_weights(saved["weights"])
            for optimizer, state in zip(optimizers, saved["optimizers"], strict=True):
                optimizer.load_state_dict(state)
            for scheduler, state in zip(schedulers, saved["schedulers"], strict=True):
                scheduler.load_state_dict(state)
            self.method.load_state_dict(saved.get("method") or {})
            known = {f.name for f in dataclasses.fields(TrainerState)}
            state = TrainerState(**{k: v for k, v in saved["trainer"].items() if k in known})
        except (KeyError, ValueError, TypeError, RuntimeError) as err:
            raise ConfigError(
                f"The checkpoint in {where} does not fit this run ({type(err).__name__}: "
                f"{str(err).splitlines()[0][:200]}): it was saved for another model or method. Delete {where} "
                "to train the run again from step 0 (without --resume)."
            ) from None
        rng = saved.get("rng") or {"torch": saved["torch_rng"]}
        return state, saved["best_weights"] or None, rng, bool(saved.get("pending_eval"))


@dataclass
class _Boundary:
    """The trainer's state right after an optimiser step (or at the start of an epoch)."""

    state: TrainerState
    best_weights: dict[str, torch.Tensor] | None
    rng: dict[str, Any]
    pending_eval: bool = False


def rng_state() -> dict[str, Any]:
    """Every RNG state the loop draws from: torch (dropout, initialisation of new components), CUDA,
    Python's ``random`` and numpy's global generator."""
    import numpy as np

    _, keys, position, has_gauss, gauss = np.random.get_state()
    python = random.getstate()
    state: dict[str, Any] = {
        "torch": torch.get_rng_state(),
        "python": [python[0], list(python[1]), python[2]],
        "numpy": [torch.from_numpy(keys.astype(np.int64)), int(position), int(has_gauss), float(gauss)],
    }
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict[str, Any]) -> None:
    """Puts back what :func:`rng_state` returned (checkpoints before it saved only the torch state)."""
    import numpy as np

    torch.set_rng_state(state["torch"])
    if "python" in state:
        version, internal, gauss = state["python"]
        random.setstate((version, tuple(internal), gauss))
    if "numpy" in state:
        keys, position, has_gauss, gauss = state["numpy"]
        np.random.set_state(("MT19937", keys.numpy().astype(np.uint32), position, has_gauss, gauss))
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


class _Interrupts:
    """SIGINT and SIGTERM during training: a KeyboardInterrupt (so a checkpoint is saved), except during
    an optimiser update, where the signal waits until the update and its boundary are done.

    The handler that was installed before keeps its say: the grid worker's SIGTERM handler (it marks
    the run interrupted) and Python's SIGINT handler are called as they were; a SIGTERM with no
    handler of its own (a standalone ``slopeft train``) becomes a KeyboardInterrupt, like Ctrl-C.
    Only the main thread can own signal handlers; elsewhere nothing changes.

    From the first interrupt on, further SIGINTs and SIGTERMs are ignored until :meth:`release`,
    which the trainer calls once the interrupt's checkpoint is written: the run is already stopping as
    asked, and a second signal would cut the checkpoint short. A process group's SIGTERM (``kill --
    -PGID``, a service manager stopping the grid) reaches a grid worker twice, directly and from its
    runner, and the worker's own handler exits at once on a second one.
    """

    SIGNALS = (signal.SIGINT, signal.SIGTERM)

    def __init__(self) -> None:
        self._previous: dict[int, Any] = {}
        self._deferring = False
        self._pending: list[tuple[int, Any]] = []
        self._holding = False

    def __enter__(self) -> _Interrupts:
        if threading.current_thread() is threading.main_thread():
            for sig in self.SIGNALS:
                self._previous[sig] = signal.signal(sig, self._handle)
        return self

    def __exit__(self, *exc: object) -> None:
        if not self._holding:  # an interrupt keeps the signals ignored until release()
            self.release()

    def release(self) -> None:
        """The handlers as they were before training (after an interrupt: once its checkpoint is saved)."""
        for sig, previous in self._previous.items():
            signal.signal(sig, previous)
        self._previous.clear()
        self._holding = False

    def _handle(self, signum: int, frame: Any) -> None:
        if self._deferring:
            self._pending.append((signum, frame))
            return
        previous = self._previous.get(signum)
        if previous is signal.SIG_IGN:  # ignored before training (SIGINT of a background job): ignored here
            return
        self._holding = True
        for sig in self._previous:
            signal.signal(sig, signal.SIG_IGN)
        if callable(previous):
            previous(signum, frame)  # Python's SIGINT handler and the worker's raise KeyboardInterrupt
        raise KeyboardInterrupt

    @contextlib.contextmanager
    def deferred(self):
        self._deferring = True
        try:
            yield
        finally:
            self._deferring = False
        if self._pending:
            signum, frame = self._pending.pop(0)
            self._pending.clear()
            self._handle(signum, frame)
