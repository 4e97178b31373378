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
from slopeft.methods.base import model_width
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
    #: The loaded base's weight fingerprint (:func:`weights_fingerprint`); set by :func:`load_base`.
    base_weights: dict[str, Any] | None = None


def prepare_parts(
    config: RunConfig, task_options: dict | None = None, tokenizer: PreTrainedTokenizerBase | None = None
) -> RunParts:
    """Resolves the task, model, head and method of ``config`` (nothing is loaded yet but the tokenizer).

    A ``tokenizer`` already loaded for the model is used instead of loading it again (a server
    builds the heads of many adapters on one base model).
    """
    from slopeft.models.catalogue import family_of
    from slopeft.models.positions import position_limits
    from slopeft.models.sources import check_tokenizer, load_tokenizer, model_path, resolve_model

    task = get_task(config.task, config.data_dir, config.train_set, config.val_set, **(task_options or {}))
    method = METHODS.get(config.method)(config.method_options)
    source = resolve_model(config.model)
    path = model_path(source)
    base_config = read_model_config(path)
    family = source.family or family_of(base_config)
    tokenizer = tokenizer or load_tokenizer(source)
    check_tokenizer(tokenizer, base_config, path)
    head = build_head(
        TaskFormat.for_task(task),
        tokenizer,
        family,
        max_length=config.training.max_length,
        input_prefix=source.input_prefix,
        positions=position_limits(base_config, family),
    ).for_method(method)  # text + what the method adds in front must fit the model's positions
    architecture = base_config.get("model_type", "unknown")
    return RunParts(task, head, method, path, config.model, family, architecture, base_config)


def read_model_config(path: str | Path) -> dict[str, Any]:
    """A model folder's ``config.json``; unreadable or not a mapping is a ConfigError."""
    file = Path(path) / "config.json"
    try:
        config = json.loads(file.read_text(encoding="utf-8"))
    except (OSError, ValueError) as err:
        raise ConfigError(f"Cannot read {file} ({err}). Restore the model folder's config.json.") from None
    if not isinstance(config, dict):
        raise ConfigError(f"{file} holds {type(config).__name__}, not a model configuration. Restore it.")
    return config


#: Weight files of pickle formats: loading them can run arbitrary code, so slopeft never does.
PICKLE_WEIGHTS = ("*.bin", "*.pt", "*.pth", "*.ckpt", "*.pkl")


def check_safetensors(path: str | Path, what: str = "model") -> None:
    """Refuses a folder whose weights exist only in a pickle format (``pytorch_model.bin`` ...)."""
    folder = Path(path)
    if not folder.is_dir() or any(folder.glob("*.safetensors")):
        return
    pickles = sorted({p.name for pattern in PICKLE_WEIGHTS for p in folder.glob(pattern)})
    if pickles:
        raise ConfigError(
            f"The {what} in {folder} has its weights only in pickle format ({', '.join(pickles[:4])}); slopeft "
            "loads safetensors only, since unpickling can run arbitrary code. Convert it where you trust the "
            "file: load it with from_pretrained and save_pretrained(folder) (safetensors by default), or use "
            "a copy of the model that ships model.safetensors."
        )


#: Parameters sampled for the fingerprint, and elements read from each (evenly strided).
FINGERPRINT_TENSORS = 3
FINGERPRINT_ELEMENTS = 4096


def weights_fingerprint(model: nn.Module, head_modules: list[str]) -> dict[str, Any]:
    """A cheap fingerprint of the base weights: a hash of a strided sample of the first, middle and
    last backbone parameters (the randomly initialised head is left out), rounded to bfloat16 so the
    same checkpoint loaded in another dtype gives the same hash."""
    import hashlib

    import torch

    names = [
        n for n, _ in model.named_parameters()
        if not any(n == h or n.startswith(h + ".") for h in head_modules)
    ]
    if not names:
        return {"tensors": [], "sha256": ""}
    picks = sorted({names[0], names[len(names) // 2], names[-1]}, key=names.index)[:FINGERPRINT_TENSORS]
    parameters = dict(model.named_parameters())
    digest = hashlib.sha256()
    for name in picks:
        flat = parameters[name].detach().reshape(-1)
        sample = flat[:: max(1, flat.numel() // FINGERPRINT_ELEMENTS)][:FINGERPRINT_ELEMENTS]
        digest.update(name.encode())
        digest.update(sample.to("cpu", torch.bfloat16).view(torch.int16).numpy().tobytes())
    return {"tensors": picks, "sha256": digest.hexdigest()[:32]}


def load_base(parts: RunParts) -> tuple[nn.Module, MethodContext]:
    """Loads the base model with the task's head; the context lists the randomly initialised head modules.

    Only safetensors weights are read (a pickle-only folder is refused); ``parts.base_weights`` gets
    the loaded weights' fingerprint."""
    check_safetensors(parts.model_path)
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
    context = MethodContext(parts.family, parts.architecture, head_modules, parts.head.peft_task_type, model_width(model))
    parts.method.check_runnable(context)
    parts.base_weights = weights_fingerprint(model, head_modules)
    return model, context


def shape_digest(base_config: dict[str, Any]) -> tuple[dict[str, Any], str]:
    """The architecture fields of a model's ``config.json`` that an adapter's shapes depend on, and
    their digest (equal digests: an adapter's tensors fit)."""
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
    shape = {k: base_config[k] for k in keys if k in base_config}
    return shape, hashlib.sha256(json.dumps(shape, sort_keys=True).encode()).hexdigest()[:16]


def base_fingerprint(parts: RunParts) -> dict[str, Any]:
    """What identifies the base model an adapter belongs to (compared when loading an adapter): its
    shape digest, a fingerprint of its weights, and its Hub revision when it came from the Hub."""
    shape, digest = shape_digest(parts.base_config)
    fingerprint = {"model": parts.model_name, "shape": shape, "digest": digest}
    if parts.base_weights is not None:
        fingerprint["weights"] = parts.base_weights
    revision = hub_revision(parts.model_path)
    if revision:
        fingerprint["revision"] = revision
    return fingerprint


def hub_revision(path: str | Path) -> str | None:
    """The commit sha of a Hub snapshot folder (``.../models--org--name/snapshots/<sha>``); None for
    a model that did not come from the Hub cache."""
    folder = Path(path)
    if folder.parent.name == "snapshots" and folder.parent.parent.name.startswith("models--"):
        return folder.name
    return None


def check_fingerprint(saved: dict[str, Any], parts: RunParts, adapter_dir: Path) -> None:
    current = base_fingerprint(parts)
    if saved.get("digest") != current["digest"]:
        raise ConfigError(
            f"The adapter in {adapter_dir} was trained on base model {saved.get('model')!r} ({saved.get('shape')}), "
            f"but {parts.model_name!r} has a different shape ({current['shape']}). Load it with --model "
            f"{saved.get('model')} (or a local copy of that model)."
        )


def check_weights(saved: dict[str, Any], parts: RunParts, adapter_dir: Path, allow_other_base: bool = False) -> None:
    """Refuses an adapter on a base whose weights differ from those it was trained on (same shape,
    other weights: another checkpoint or a fine-tuned copy), unless ``allow_other_base``. Adapters
    written before the fingerprint existed carry none and are not checked."""
    trained = saved.get("weights")
    current = parts.base_weights
    if not trained or current is None or trained.get("sha256") == current.get("sha256") or allow_other_base:
        return
    raise ConfigError(
        f"The adapter in {adapter_dir} was trained on other base weights than those of {parts.model_name!r} "
        f"({parts.model_path}): the fingerprint of {', '.join(trained.get('tensors') or [])} differs "
        f"({str(trained.get('sha256'))[:12]} trained, {str(current.get('sha256'))[:12]} now){_revision(saved)}. "
        "The same shape with other weights gives other scores. Load the base it was trained on, or pass "
        "--allow-other-base to use this one anyway."
    )


def _revision(saved: dict[str, Any]) -> str:
    revision = saved.get("revision")
    return f"; it was trained on {saved.get('model')} at Hub revision {revision}" if revision else ""
