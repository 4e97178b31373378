"""The optimiser every method starts from: AdamW without weight decay on biases and normalisation weights."""

from __future__ import annotations

from collections.abc import Iterable

import torch
from torch import nn


def adamw(
    named_parameters: Iterable[tuple[str, nn.Parameter]], learning_rate: float, weight_decay: float
) -> torch.optim.AdamW:
    """AdamW with no weight decay on biases and normalisation weights (the BERT recipe)."""
    decay, no_decay = [], []
    for name, parameter in named_parameters:
        if not parameter.requires_grad:
            continue
        (no_decay if name.endswith("bias") or "norm" in name.lower() or parameter.ndim < 2 else decay).append(
            parameter
        )
    groups = [{"params": decay, "weight_decay": weight_decay}, {"params": no_decay, "weight_decay": 0.0}]
    return torch.optim.AdamW([g for g in groups if g["params"]], lr=learning_rate)
