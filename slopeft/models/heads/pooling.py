"""Mean pooling for encoder classifiers whose checkpoint was trained to be mean-pooled.

transformers' sequence and multiple-choice classifiers read the first token (``[CLS]``/``<s>``).
A sentence-embedding model such as multilingual-e5 was trained with mean pooling, so its first
token carries almost nothing about the input (measured: a LoRA classifier on it predicted one
SI-NLI class after 150 steps). Hooks make the first position hold the attention-masked mean of
all token states, so the unchanged head (pooler + classifier) reads the representation the model
was trained to produce. Hooks add no parameters: save/load and every PEFT method are unaffected.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import torch
from torch import nn

MODEL_METADATA = "slopeft_model.json"  # written by `slopeft models prepare`


def pooling_of(model_dir: str | Path) -> str:
    """``mean`` when the prepared model's metadata says it is mean-pooled, else ``first``."""
    path = Path(model_dir) / MODEL_METADATA
    if path.is_file():
        return json.loads(path.read_text()).get("pooling", "first")
    return "first"


def use_mean_pooling(model: nn.Module) -> None:
    """Makes ``model``'s backbone output hold the masked token mean at position 0."""
    backbone = getattr(model, model.base_model_prefix)
    masks: dict[str, Any] = {}

    def remember_mask(module: nn.Module, args: tuple, kwargs: dict) -> None:
        mask = kwargs.get("attention_mask")
        if mask is None and len(args) > 1:
            mask = args[1]
        masks["mask"] = mask

    def mean_into_first(module: nn.Module, args: tuple, output: Any) -> Any:
        hidden = output[0]
        mask = masks.get("mask")
        if mask is None or mask.shape[-1] != hidden.shape[1]:
            weights = torch.ones(hidden.shape[:2], device=hidden.device, dtype=hidden.dtype)
        else:
            weights = mask.reshape(hidden.shape[:2]).to(hidden.dtype)
        mean = (hidden * weights.unsqueeze(-1)).sum(1) / weights.sum(1, keepdim=True).clamp(min=1)
        pooled = torch.cat([mean.unsqueeze(1), hidden[:, 1:]], dim=1)
        output.last_hidden_state = pooled
        return output

    backbone.register_forward_pre_hook(remember_mask, with_kwargs=True)
    backbone.encoder.register_forward_hook(mean_into_first)
