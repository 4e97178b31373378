"""Typed configuration: dataclasses are the schema for the CLI, YAML files and ``--set`` overrides.

A run is a :class:`RunConfig` (what to train on what) holding a :class:`TrainingConfig`
(how) and the method's own config dataclass. YAML files and ``--set section.key=value``
overrides are applied to the same dataclasses; an unknown key is an error naming the
known ones, and invalid combinations fail in ``__post_init__`` with a sentence.
"""

from __future__ import annotations

import dataclasses
import difflib
import math
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from slopeft.errors import ConfigError

PRECISIONS = ("auto", "fastest", "fp32", "bf16", "fp16")
"""The values of ``training.precision`` (slopeft/training/precision.py resolves them)."""


@dataclass
class TrainingConfig:
    """How to train. Every field can be set in YAML (``training:``) or with ``--set training.<field>=...``."""

    epochs: float = 3.0
    """Passes over the training set (fractions allowed)."""
    max_steps: int = 0
    """Stop after this many optimiser steps (0: no limit beyond ``epochs``)."""
    batch_size: int = 16
    """Examples per forward pass."""
    grad_accumulation: int = 1
    """Forward passes per optimiser step (effective batch = batch_size × grad_accumulation)."""
    learning_rate: float | None = None
    """Peak learning rate; None takes the method's default (LoRA 5e-4, BitFit 1e-3, full 2e-5 ...)."""
    weight_decay: float = 0.0
    """AdamW weight decay (not applied to biases and LayerNorm weights)."""
    warmup_ratio: float = 0.06
    """Share of optimiser steps spent warming the learning rate up from 0."""
    scheduler: str = "linear"
    """Learning-rate decay after warmup: linear, cosine or constant."""
    max_length: int = 256
    """Longest input in tokens (at most the model's positions); longer inputs are cut on the passage
    side. Virtual tokens a method puts in front (prompt tuning, p-tuning) come out of it, and on a
    causal model so do the tokens a translation generates."""
    eval_batch_size: int = 32
    """Examples per forward pass when predicting."""
    eval_every: int = 0
    """Evaluate every N optimiser steps (0: at the end of every epoch)."""
    patience: int = 0
    """Stop after this many evaluations without improvement (0: never stop early)."""
    class_weights: bool = False
    """Weight the loss by inverse class frequency (for imbalanced tasks such as CB)."""
    group_by_length: bool = True
    """Batch examples of similar length together (less padding, faster); order stays seeded."""
    precision: str = "auto"
    """fp32, bf16, fp16 (mixed precision under autocast; fp16 on a GPU only), auto (bf16 on a GPU
    that supports it, fp32 on every CPU) or fastest (auto, but bf16 on a CPU with native bf16:
    AVX512_BF16 or AMX). See slopeft/training/precision.py."""
    max_train_examples: int = 0
    """Train on the first N training examples only (0: all) — for smoke tests and quick looks."""
    max_eval_examples: int = 0
    """Evaluate on the first N validation examples only (0: all)."""
    max_grad_norm: float = 1.0
    """Gradient clipping norm (0: no clipping)."""
    log_every: int = 10
    """Update the progress display's loss every N optimiser steps."""
    select_best: bool = True
    """Finish with the weights of the best validation evaluation (True) or the final weights (False:
    the validation score then picks nothing, so it stays an unbiased estimate, as the study uses it)."""
    malloc_mmap_threshold_kib: int = 2048
    """On CPU with glibc, allocate blocks of at least this many KiB with their own mmap so that
    batches of varying length do not fragment the heap: lower peak RSS for slightly slower steps
    (1024 saves more memory and costs more speed; 0 keeps glibc's adaptive threshold)."""

    def __post_init__(self) -> None:
        if self.scheduler not in ("linear", "cosine", "constant"):
            raise ConfigError(
                f"training.scheduler must be linear, cosine or constant, not {self.scheduler!r}."
            )
        if self.precision not in PRECISIONS:
            raise ConfigError(
                f"training.precision must be one of {', '.join(PRECISIONS)}, not {self.precision!r}."
            )
        check_range(self, "training", "epochs", low=0)
        check_range(self, "training", "max_steps", low=0)
        check_range(self, "training", "batch_size", low=1)
        check_range(self, "training", "grad_accumulation", low=1)
        if self.learning_rate is not None:
            # 0 is not "the recipe's rate": None is. A zero or negative rate trains nothing or ascends.
            check_range(self, "training", "learning_rate", low=0, low_open=True,
                        hint="leave it unset for the method's recipe rate")
        check_range(self, "training", "weight_decay", low=0)
        check_range(self, "training", "warmup_ratio", low=0, high=1, high_open=True)
        check_range(self, "training", "max_length", low=MIN_MAX_LENGTH,
                    hint="inputs need room for the special tokens and some text")
        check_range(self, "training", "eval_batch_size", low=1)
        check_range(self, "training", "eval_every", low=0)
        check_range(self, "training", "patience", low=0)
        check_range(self, "training", "max_train_examples", low=0, hint="0 takes them all")
        check_range(self, "training", "max_eval_examples", low=0, hint="0 takes them all")
        check_range(self, "training", "max_grad_norm", low=0, hint="0 turns clipping off")
        check_range(self, "training", "log_every", low=1)
        # glibc caps M_MMAP_THRESHOLD at 32 MiB on 64-bit systems and ignores larger values.
        check_range(self, "training", "malloc_mmap_threshold_kib", low=0, high=32 * 1024,
                    hint="0 keeps glibc's adaptive threshold")
        if self.epochs <= 0 and self.max_steps <= 0:
            raise ConfigError("Set training.epochs > 0 or training.max_steps > 0: there is nothing to train.")


@dataclass
class RunConfig:
    """One training run: a task, a model, a method and how to train."""

    task: str = "slo-superglue/cb"
    """Task name (``slopeft data list`` shows them)."""
    model: str = "e5-small-multilingual"
    """Model alias, Hub id or local folder (``slopeft models list``)."""
    method: str = "lora"
    """PEFT method (``slopeft methods`` lists them)."""
    train_set: str | None = None
    """Training set: human, machine or combined for SuperGLUE; a folder for MT."""
    val_set: str | None = None
    """Validation set (SuperGLUE: human, the leaderboard's val, by default; or machine, the larger
    machine-translated English dev set)."""
    extra_val_sets: list[str] = field(default_factory=list)
    """More validation sets scored with the final weights (e.g. [human] after training on machine)."""
    seed: int = 42
    """Seed for initialisation, data order and dropout: the same seed gives the same numbers."""
    data_dir: str | None = None
    """Data root (else $SLOPEFT_DATA, the cache or a download)."""
    output: str | None = None
    """Run folder (default runs/<task>-<model>-<method>-s<seed>)."""
    training: TrainingConfig = field(default_factory=TrainingConfig)
    method_options: dict[str, Any] = field(default_factory=dict)
    """The method's own settings (``--set lora.r=16`` → ``{"r": 16}``), validated by the method."""

    def __post_init__(self) -> None:
        # numpy (seeded by transformers' set_seed) takes seeds in [0, 2**32); torch would take more.
        check_range(self, "run", "seed", low=0, high=2**32 - 1)
        for name in ("task", "model", "method"):
            if not isinstance(getattr(self, name), str) or not getattr(self, name).strip():
                raise ConfigError(f"run.{name} is empty; name a {name} (see `slopeft --help`).")
        if not all(isinstance(v, str) and v for v in self.extra_val_sets):
            raise ConfigError(f"run.extra_val_sets must be a list of validation set names, not {self.extra_val_sets!r}.")

    def run_dir(self) -> Path:
        if self.output:
            return Path(self.output)
        model = Path(self.model).name if "/" in self.model or Path(self.model).exists() else self.model
        return Path("runs") / f"{self.task.replace('/', '-')}-{model}-{self.method}-s{self.seed}"

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


MIN_MAX_LENGTH = 8
"""The shortest ``training.max_length``: a pair input needs 3-4 special tokens and a word of each text."""


def check_range(
    obj: Any,
    section: str,
    name: str,
    low: float | None = None,
    high: float | None = None,
    low_open: bool = False,
    high_open: bool = False,
    hint: str = "",
) -> None:
    """Raises ConfigError unless field ``name`` of ``obj`` is a finite number in the given range; the
    message names the setting (``section.name``), the value and the allowed range."""
    value = getattr(obj, name)

    def num(x: float) -> str:
        return str(x) if isinstance(x, int) else f"{x:g}"

    if low is not None and high is not None:
        allowed = f"{num(low)} {'<' if low_open else '≤'} {name} {'<' if high_open else '≤'} {num(high)}"
    elif low is not None:
        allowed = f"{name} {'>' if low_open else '≥'} {num(low)}"
    elif high is not None:
        allowed = f"{name} {'<' if high_open else '≤'} {num(high)}"
    else:
        allowed = f"{name} finite"
    ok = isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)
    if ok and low is not None:
        ok = value > low if low_open else value >= low
    if ok and high is not None:
        ok = value < high if high_open else value <= high
    if not ok:
        # run fields and command options have their own flags; the rest is set with --set section.key=...
        flag = section in ("run", "quickstart")
        how = f"--{name.replace('_', '-')}" if flag else f"--set {section}.{name}=VALUE"
        raise ConfigError(
            f"{section}.{name} must be a finite number with {allowed}, not {value!r}"
            f"{f' ({hint})' if hint else ''}. Set it with {how} or in the config file."
        )


def check_choice(obj: Any, section: str, name: str, choices: tuple[str, ...]) -> None:
    """Raises ConfigError unless field ``name`` of ``obj`` is one of ``choices``."""
    value = getattr(obj, name)
    if value not in choices:
        raise ConfigError(
            f"{section}.{name} must be {', '.join(choices[:-1])} or {choices[-1]}, not {value!r}. "
            f"Set it with --set {section}.{name}=VALUE or in the config file."
        )


def check_modules(obj: Any, section: str, name: str) -> None:
    """Raises ConfigError unless field ``name`` is None or a non-empty list of non-empty module-name suffixes."""
    value = getattr(obj, name)
    if value is None:
        return
    if not value or not all(isinstance(v, str) and v.strip() for v in value):
        raise ConfigError(
            f"{section}.{name} must be a non-empty list of module-name suffixes (e.g. [query, value]), not "
            f"{value!r}; leave it unset for the architecture's default. Set it with --set {section}.{name}=[...]."
        )


def field_docs(cls: type) -> dict[str, str]:
    """The docstring written under each field of a config dataclass (by reading its source: Python
    keeps no attribute docstrings at run time), whitespace collapsed, for ``slopeft methods``."""
    import ast
    import inspect
    import textwrap

    tree = ast.parse(textwrap.dedent(inspect.getsource(cls)))
    body = tree.body[0].body  # type: ignore[attr-defined]
    docs = {}
    for statement, following in zip(body, body[1:], strict=False):
        if (
            isinstance(statement, ast.AnnAssign)
            and isinstance(statement.target, ast.Name)
            and isinstance(following, ast.Expr)
            and isinstance(following.value, ast.Constant)
            and isinstance(following.value.value, str)
        ):
            docs[statement.target.id] = " ".join(following.value.value.split())
    return docs


def parse_value(text: str) -> Any:
    """A ``--set`` value as YAML would read it (numbers, booleans, lists, null), else the string."""
    try:
        value = yaml.safe_load(text)
    except yaml.YAMLError:
        return text
    if isinstance(value, str):
        try:  # YAML 1.1 reads "1e-3" as a string; users mean a number
            return float(value)
        except ValueError:
            return value
    return value


def _coerce(cls: type, name: str, value: Any) -> Any:
    """Checks/converts ``value`` for field ``name`` of dataclass ``cls`` (int → float, str → Path...)."""
    hints = typing.get_type_hints(cls)
    expected = hints[name]
    options = typing.get_args(expected) if isinstance(expected, types.UnionType) else (expected,)
    if value is None and type(None) in options:
        return None
    for option in options:
        if option is float and isinstance(value, int | float) and not isinstance(value, bool):
            return float(value)
        if option is int and isinstance(value, int) and not isinstance(value, bool):
            return value
        if option is bool and isinstance(value, bool):
            return value
        if option is str and isinstance(value, str | int | float) and not isinstance(value, bool):
            return str(value)
        if typing.get_origin(option) in (list, tuple) and isinstance(value, list | tuple):
            return typing.get_origin(option)(value)
        if typing.get_origin(option) is dict and isinstance(value, dict):
            return value
    wanted = " or ".join(_TYPE_WORDS.get(typing.get_origin(o) or o, getattr(o, "__name__", str(o))) for o in options)
    raise ConfigError(f"{cls.__name__}.{name} must be {wanted}, not {value!r}.")


#: How messages name the types a setting takes (YAML's words, not Python's).
_TYPE_WORDS = {
    bool: "true or false",
    int: "an integer",
    float: "a number",
    str: "text",
    list: "a list",
    tuple: "a list",
    dict: "a mapping",
    type(None): "null",
}


def update_dataclass(obj: Any, values: dict[str, Any], where: str) -> Any:
    """A copy of dataclass ``obj`` with ``values`` applied; unknown keys are errors naming the known ones."""
    known = {f.name: f for f in dataclasses.fields(obj)}
    changes = {}
    for key, value in values.items():
        if key not in known:
            close = difflib.get_close_matches(key, list(known), n=2)
            hint = f" Did you mean {' or '.join(close)}?" if close else ""
            raise ConfigError(f"Unknown setting {where}.{key}.{hint} Known: {', '.join(sorted(known))}.")
        current = getattr(obj, key)
        if dataclasses.is_dataclass(current) and isinstance(value, dict):
            changes[key] = update_dataclass(current, value, f"{where}.{key}")
        else:
            changes[key] = _coerce(type(obj), key, value)
    return dataclasses.replace(obj, **changes)


def run_config_from_dict(data: dict[str, Any], where: str = "run") -> RunConfig:
    """A :class:`RunConfig` from :meth:`RunConfig.to_dict`'s layout (a run record's or a grid job's
    ``config``), checked like a config file: unknown settings and invalid values are errors."""
    if not isinstance(data, dict):
        raise ConfigError(f"{where}: a run configuration is a mapping of settings, not {data!r:.80}.")
    return update_dataclass(RunConfig(), data, where)


def load_run_config(
    path: Path | None = None,
    overrides: list[str] | None = None,
    method_defaults: typing.Callable[[str], tuple[dict[str, Any], dict[str, Any]]] | None = None,
    **flags: Any,
) -> RunConfig:
    """Builds a RunConfig from the method's defaults, a YAML file, then CLI flags (non-None), then
    ``--set`` overrides, each overriding the one before.

    YAML layout: top-level RunConfig fields, a ``training:`` mapping, and a mapping named after
    the method (``lora: {r: 16}``) for its options.

    Args:
        method_defaults: method name → (training settings, method options) to start from (the
            method's recipe, :func:`slopeft.methods.recipes.recipe_defaults`); None starts from
            the dataclass defaults.
    """
    config = _build_run_config(RunConfig(), path, overrides, flags)
    if method_defaults is None:
        return config
    training, options = method_defaults(config.method)
    start = RunConfig(
        method=config.method,
        training=update_dataclass(TrainingConfig(), training, f"the {config.method} recipe: training"),
        method_options=dict(options),
    )
    return _build_run_config(start, path, overrides, flags)


def _build_run_config(
    config: RunConfig, path: Path | None, overrides: list[str] | None, flags: dict[str, Any]
) -> RunConfig:
    if path is not None:
        try:
            data = yaml.safe_load(Path(path).read_text(encoding="utf-8")) or {}
        except (OSError, yaml.YAMLError) as err:
            raise ConfigError(f"Cannot read config {path}: {err}. Fix the YAML or the path.") from None
        if not isinstance(data, dict):
            raise ConfigError(f"{path} must hold a mapping of settings (task:, model:, training: ...).")
        config = _apply_mapping(config, data, str(path))
    config = update_dataclass(config, {k: v for k, v in flags.items() if v is not None}, "run")
    for item in overrides or []:
        key, sep, raw = item.partition("=")
        if not sep or not key:
            raise ConfigError(
                f"--set takes section.key=value (e.g. lora.r=16 or training.epochs=5), not {item!r}."
            )
        section, _, name = key.partition(".")
        config = _apply_mapping(
            config, {section: {name: parse_value(raw)}} if name else {section: parse_value(raw)}, "--set"
        )
    return config


def _apply_mapping(config: RunConfig, data: dict[str, Any], where: str) -> RunConfig:
    run_fields = {f.name for f in dataclasses.fields(RunConfig)} - {"method_options"}
    method = data.get("method", config.method)
    plain = {k: v for k, v in data.items() if k in run_fields}
    config = update_dataclass(config, plain, "run")
    for key, value in data.items():
        if key in run_fields:
            continue
        if key in (method, "method_options") and isinstance(value, dict):
            config = dataclasses.replace(config, method_options={**config.method_options, **value})
        else:
            raise ConfigError(
                f"{where}: unknown section {key!r}. Use run fields "
                f"({', '.join(sorted(run_fields))}), 'training', or the method's name ({method!r})."
            )
    return config
