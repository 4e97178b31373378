"""Helpers for the IncreLoRA / QA-LoRA / QLoRA / MoLA tests: tiny models with a head, token batches,
a training loop of the trainer's own steps (:class:`~slopeft.training.step.TrainStep`), and a two-step trainer run."""

from __future__ import annotations

import io
import math
from pathlib import Path

import torch
from rich.console import Console
from torch import nn

from slopeft.config import TrainingConfig
from slopeft.methods import Method, MethodContext

TRAIN_ROWS = 4


def classifier(tiny_models, arch: str = "bert") -> tuple[nn.Module, MethodContext]:
    """A tiny encoder with a fresh 2-way classification head, and the context the trainer would build."""
    import transformers

    transformers.logging.set_verbosity_error()
    model = transformers.AutoModelForSequenceClassification.from_pretrained(
        str(tiny_models(arch)), num_labels=2
    )
    return model, MethodContext("encoder", model.config.model_type, ["classifier"], "SEQ_CLS")


def causal_lm(tiny_models) -> tuple[nn.Module, MethodContext]:
    """The tiny Gemma 3 causal LM (no new head) and its context."""
    import transformers

    transformers.logging.set_verbosity_error()
    model = transformers.AutoModelForCausalLM.from_pretrained(str(tiny_models("gemma")))
    return model, MethodContext("causal", model.config.model_type, [], "CAUSAL_LM")


def token_batch(model: nn.Module, rows: int = 4, length: int = 12, seed: int = 0) -> dict[str, torch.Tensor]:
    """Random token ids (past the special tokens) with labels fitting the model's head."""
    generator = torch.Generator().manual_seed(seed)
    ids = torch.randint(5, model.config.vocab_size, (rows, length), generator=generator)
    batch = {"input_ids": ids, "attention_mask": torch.ones_like(ids)}
    if model.config.model_type.startswith("gemma"):
        batch["labels"] = ids.clone()
    else:
        batch["labels"] = torch.randint(0, 2, (rows,), generator=generator)
    return batch


def train_loop(
    method: Method,
    model: nn.Module,
    steps: int,
    total_steps: int | None = None,
    lr: float = 1e-3,
    loss_fn=None,
    seed: int = 0,
    on_step=None,
) -> list[float]:
    """The trainer's steps without the trainer: the method's optimiser(s), a linear schedule with 10%
    warmup, no clipping, then ``on_step(step)`` after each step. The loss is ``loss_fn(model, step)``
    (plus the method's extra loss), by default the model's own loss on a random token batch. Returns the losses."""
    from slopeft.training.step import TrainStep, build_optimizers, build_schedulers

    total_steps = total_steps or steps
    optimizers = build_optimizers(method, model, lr, 0.0)
    schedulers = build_schedulers(optimizers, "linear", max(1, total_steps // 10), total_steps)
    train = TrainStep(model, method, optimizers, schedulers)
    model.train()
    losses = []
    for step in range(1, steps + 1):
        if loss_fn:
            loss = train.with_extra_loss(loss_fn(model, step))
        else:
            loss = train.loss(token_batch(model, seed=seed + step))
        train.backward(loss)
        losses.append(loss.item())
        train.update()
        train.end(step, total_steps)
        if on_step:
            on_step(step)
    return losses


def trainer_two_steps(run_parts, arch: str, method: str, tmp: Path, **options) -> tuple[int, float]:
    """Two optimiser steps through the real Trainer on RTE rows; returns (steps, loss after training)."""
    from slopeft.training.build import load_base
    from slopeft.training.trainer import Trainer

    torch.manual_seed(0)
    parts = run_parts(arch, "slo-superglue/rte", method, **options)
    base, context = load_base(parts)
    model = parts.method.apply(base, context)
    examples = parts.task.examples("train")[:TRAIN_ROWS]
    config = TrainingConfig(max_steps=2, epochs=1, batch_size=2, max_length=32, eval_batch_size=4)
    trainer = Trainer(
        model, parts.head, parts.method, parts.task, config, tmp, seed=0, console=Console(file=io.StringIO())
    )
    result = trainer.fit(examples, examples[:2])
    model = trainer.accelerator.unwrap_model(trainer.model)
    model.eval()
    batch = parts.head.collate(parts.head.encode(examples, with_labels=True))
    with torch.no_grad():
        loss = model(**batch).loss.item()
    assert math.isfinite(loss)
    return result.state.step, loss


def logits(model: nn.Module, batch: dict[str, torch.Tensor]) -> torch.Tensor:
    model.eval()
    with torch.no_grad():
        return model(**{k: v for k, v in batch.items() if k != "labels"}).logits
