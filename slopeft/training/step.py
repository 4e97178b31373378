"""One optimiser step, the same for every caller: the trainer, the benchmarks and the method tests.

A step is: forward (the model's own loss, or the caller's), plus the method's ``extra_loss``;
backward; gradient clipping; every optimiser's step; every schedule's step; gradients cleared;
then the method's ``on_step_end`` hook. :class:`TrainStep` holds the pieces so a caller that needs
to come between them (the trainer accumulates gradients over several forward passes and checks the
loss before the backward pass) calls them one by one, in this order, and a caller that does not
calls the step whole.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

import torch
from torch import nn

from slopeft.methods.base import Method


def build_optimizers(
    method: Method, model: nn.Module, learning_rate: float, weight_decay: float
) -> list[torch.optim.Optimizer]:
    """The method's optimiser(s) for ``model`` (AdamW unless the method builds its own), as a list."""
    built = method.build_optimizer(model, learning_rate, weight_decay)
    return list(built) if isinstance(built, list | tuple) else [built]


def build_schedulers(
    optimizers: list[torch.optim.Optimizer], scheduler: str, warmup_steps: int, total_steps: int
) -> list[Any]:
    """One learning-rate schedule per optimiser: warmup, then ``linear``, ``cosine`` or ``constant``."""
    from transformers import get_scheduler

    name = scheduler if scheduler != "constant" else "constant_with_warmup"
    return [
        get_scheduler(name, optimizer=o, num_warmup_steps=warmup_steps, num_training_steps=total_steps)
        for o in optimizers
    ]


def model_loss(model: nn.Module, batch: Mapping[str, torch.Tensor]) -> torch.Tensor:
    """The loss a head's batch makes the model compute (``model(**batch).loss``)."""
    return model(**batch).loss


class TrainStep:
    """Forward, extra losses, backward, clipping, optimisers, schedules and method hooks of one step.

    Args:
        model: the model being trained (as the caller runs it: wrapped by accelerate, or not).
        method: the method, for ``extra_loss`` and ``on_step_end``.
        optimizers: from :func:`build_optimizers` (or prepared by accelerate).
        schedulers: from :func:`build_schedulers`.
        max_grad_norm: clip the dense gradients to this norm (0: no clipping).
        loss: ``loss(model, batch)``, the task loss (default: :func:`model_loss`).
        backward: runs the backward pass of a loss (default ``loss.backward()``; the trainer passes
            accelerate's, which scales mixed-precision losses).
        unwrap: the plain model that ``on_step_end`` gets (the trainer passes accelerate's unwrap).
    """

    def __init__(
        self,
        model: nn.Module,
        method: Method,
        optimizers: list,
        schedulers: list,
        *,
        max_grad_norm: float = 0.0,
        loss: Callable[[nn.Module, Mapping[str, torch.Tensor]], torch.Tensor] = model_loss,
        backward: Callable[[torch.Tensor], None] | None = None,
        unwrap: Callable[[nn.Module], nn.Module] | None = None,
    ) -> None:
        self.model, self.method = model, method
        self.optimizers, self.schedulers = list(optimizers), list(schedulers)
        self.max_grad_norm = max_grad_norm
        self.task_loss = loss
        self._backward = backward or (lambda value: value.backward())
        self._unwrap = unwrap or (lambda model: model)

    def loss(self, batch: Mapping[str, torch.Tensor]) -> torch.Tensor:
        """The forward pass: the task loss of ``batch`` plus the method's extra loss."""
        return self.with_extra_loss(self.task_loss(self.model, batch))

    def with_extra_loss(self, loss: torch.Tensor) -> torch.Tensor:
        """``loss`` plus the method's ``extra_loss`` (MoLA balancing, orthogonality ...), if any."""
        extra = self.method.extra_loss(self.model)
        return loss if extra is None else loss + extra

    def backward(self, loss: torch.Tensor) -> None:
        self._backward(loss)

    def update(self) -> None:
        """Clips the dense gradients, steps every optimiser and schedule, clears the gradients."""
        if self.max_grad_norm:
            dense = [p for p in self.model.parameters() if p.grad is not None and not p.grad.is_sparse]
            if dense:
                torch.nn.utils.clip_grad_norm_(dense, self.max_grad_norm)
        for optimizer in self.optimizers:
            optimizer.step()
        for scheduler in self.schedulers:
            scheduler.step()
        for optimizer in self.optimizers:
            optimizer.zero_grad(set_to_none=True)

    def end(self, step: int, total_steps: int) -> None:
        """The method's hook after optimiser step number ``step`` (1-based) of ``total_steps``."""
        self.method.on_step_end(self._unwrap(self.model), step, total_steps)

    def zero_grad(self) -> None:
        """Drops a partial accumulation (the trainer does at the end of an epoch)."""
        for optimizer in self.optimizers:
            optimizer.zero_grad(set_to_none=True)

    def __call__(self, batch: Mapping[str, torch.Tensor], step: int, total_steps: int) -> torch.Tensor:
        """One whole step on ``batch``; returns its (detached) loss."""
        loss = self.loss(batch)
        self.backward(loss)
        self.update()
        self.end(step, total_steps)
        return loss.detach()
