"""Putting a run together: task, model source, tokenizer, head, method, and the adapted model."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from torch import nn
from transformers import PreTrainedTokenizerBase

from slopeft.config import RunConfig
from slopeft.errors import ConfigError, SlopeftError
from slopeft.methods import METHODS, Method, MethodContext
from slopeft.models.heads import Head, build_head
from slopeft.tasks import Task, get_task
from slopeft.tasks.formats import TaskFormat


@dataclass
class RunParts:
    task: Task
    head: Head
    method: Method
    model_path: str
    model_name: str
    family: str
    architecture: str
    base_config: dict[str, Any]


def prepare_parts(
    config: RunConfig, task_options: dict | None = None, tokenizer: PreTrainedTokenizerBase | None = None
) -> RunParts:
    """Resolves the task, model, head and method of ``config`` (nothing is loaded yet but the tokenizer).

    A ``tokenizer`` already loaded for the model is used instead of loading it again (a server
    builds the heads of many adapters on one base model).
    """
    from slopeft.models.catalogue import family_of
    from slopeft.models.sources import load_tokenizer, model_path, resolve_model

    task = get_task(config.task, config.data_dir, config.train_set, config.val_set, **(task_options or {}))
    method = METHODS.get(config.method)(config.method_options)
    source = resolve_model(config.model)
    path = model_path(source)
    base_config = json.loads((Path(path) / "config.json").read_text())
    family = source.family or family_of(base_config)
    tokenizer = tokenizer or load_tokenizer(source)
    head = build_head(
        TaskFormat.for_task(task),
        tokenizer,
        family,
        max_length=config.training.max_length,
        input_prefix=source.input_prefix,
    )
    architecture = base_config.get("model_type", "unknown")
    return RunParts(task, head, method, path, config.model, family, architecture, base_config)


def load_base(parts: RunParts) -> tuple[nn.Module, MethodContext]:
    """Loads the base model with the task's head; the context lists the randomly initialised head modules."""
    try:
        model, info = parts.head.load_model(parts.model_path, output_loading_info=True)
    except (OSError, ValueError) as err:
        raise SlopeftError(
            f"Could not load {parts.model_name} from {parts.model_path} for {parts.head.auto_class}: "
            f"{err}".splitlines()[0]
        ) from None
    missing = info.get("missing_keys", []) if isinstance(info, dict) else []
    # Weights the checkpoint lacked are the new task head. Outside the backbone, keep the top
    # module (XLM-R's classifier.dense + classifier.out_proj → classifier); inside it (a pooler
    # a sentence-embedding checkpoint dropped) keep the exact module.
    backbone = getattr(model, "base_model_prefix", "")
    head_modules = sorted(
        {key.rsplit(".", 1)[0] if key.split(".")[0] == backbone else key.split(".")[0] for key in missing}
    )
    context = MethodContext(parts.family, parts.architecture, head_modules, parts.head.peft_task_type)
    parts.method.check(context)
    return model, context


def base_fingerprint(parts: RunParts) -> dict[str, Any]:
    """What identifies the base model an adapter belongs to (compared when loading an adapter)."""
    import hashlib

    keys = (
        "model_type",
        "hidden_size",
        "num_hidden_layers",
        "num_attention_heads",
        "vocab_size",
        "intermediate_size",
        "d_model",
        "num_layers",
    )
    shape = {k: parts.base_config[k] for k in keys if k in parts.base_config}
    digest = hashlib.sha256(json.dumps(shape, sort_keys=True).encode()).hexdigest()[:16]
    return {"model": parts.model_name, "shape": shape, "digest": digest}


def check_fingerprint(saved: dict[str, Any], parts: RunParts, adapter_dir: Path) -> None:
    current = base_fingerprint(parts)
    if saved.get("digest") != current["digest"]:
        raise ConfigError(
            f"The adapter in {adapter_dir} was trained on base model {saved.get('model')!r} ({saved.get('shape')}), "
            f"but {parts.model_name!r} has a different shape ({current['shape']}). Load it with --model "
            f"{saved.get('model')} (or a local copy of that model)."
        )
