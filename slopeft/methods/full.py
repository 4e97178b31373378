"""Full fine-tuning: the reference every PEFT method is compared with.

Learning rate: BERT's paper fine-tunes at 2e-5 to 5e-5; the recipe (``slopeft/resources/recipes/full.yaml``)
takes the top, 5e-5, the best of the sweep on e5-small-multilingual and 1,600 SI-NLI rows (2e-5 0.459,
5e-5 0.486, 1e-4 collapsed to the majority's 0.330; one seed, 440 validation rows)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from slopeft.errors import ConfigError
from slopeft.methods.base import METHODS, Method, MethodContext, float32_masters
from slopeft.methods.optim import adamw


@dataclass
class FullOptions:
    sparse_embeddings: bool = False
    """Update only the embedding rows a batch uses: a sparse gradient and torch's SparseAdam for the
    word embeddings, AdamW for the rest. Differs from dense AdamW in two ways: rows absent from a
    batch keep their Adam moments unchanged (no decay of the moments, no update) until they appear
    again, and the embedding matrix gets no weight decay at all (SparseAdam has none; this matters
    only with training.weight_decay > 0, default 0). Much faster for 250k-token vocabularies, where
    the dense embedding gradient and its AdamW update dominate a step; the validation accuracy stays
    within noise of dense (benchmarks/train_throughput.py --quality). Encoders only (a tied LM head
    cannot take a sparse gradient)."""


@METHODS.register("full")
class FullFineTuning(Method):
    name = "full"
    config_class = FullOptions

    def apply(self, model: nn.Module, context: MethodContext) -> nn.Module:
        if self.config.sparse_embeddings and context.family != "encoder":
            raise ConfigError(
                "full.sparse_embeddings works on encoders only: a decoder's LM head shares the "
                "embedding matrix and needs a dense gradient."
            )
        model = float32_masters(model)  # a bf16/fp16 checkpoint: AdamW updates float32 masters
        for parameter in model.parameters():
            parameter.requires_grad = True
        if self.config.sparse_embeddings:
            model.get_input_embeddings().sparse = True
        return model

    def build_optimizer(self, model: nn.Module, learning_rate: float, weight_decay: float) -> Any:
        if not self.config.sparse_embeddings:
            return super().build_optimizer(model, learning_rate, weight_decay)
        embedding = model.get_input_embeddings().weight
        rest = [p for p in model.parameters() if p.requires_grad and p is not embedding]
        named_rest = [(n, p) for n, p in model.named_parameters() if p.requires_grad and p is not embedding]
        assert len(named_rest) == len(rest)
        return [
            torch.optim.SparseAdam([embedding], lr=learning_rate),
            adamw(named_rest, learning_rate, weight_decay),
        ]
