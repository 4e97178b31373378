"""A grid file and its expansion into runs with deterministic ids.

A grid is YAML (``configs/grids/NAME.yaml``)::

    name: smoke                      # default: the file's stem
    out: outputs/grids/smoke         # default: outputs/grids/<name>; `--out` overrides
    models: [tiny:bert, sloberta]    # aliases, Hub ids, folders, or tiny:ARCH (built on the fly)
    tasks: [slo-superglue, si-nli]   # task names or groups
    methods:                         # registered names, "all", or variants
      - lora
      - {label: lora-r16, method: lora, options: {r: 16}, training: {learning_rate: 3e-4}}
      - {method: dora, sweep: {learning_rate: [5e-4, 1e-3], r: [8, 16]}}   # 4 variants, dora-lr0.0005-r8 ...
    seeds: [1, 2, 3]
    train_set: human                 # optional; so are val_set and extra_val_sets
    recipes: true                    # start from each method's recipe (default); false: only what is here
    training: {epochs: 3}            # every run
    method_options: {lora: {r: 8}}   # per registered method
    baselines: [majority]            # model-free rows, one per task (× seed for seeded strategies)
    overrides:                       # in order, for the runs matching every key (fnmatch patterns)
      - match: {model: tiny:gemma, task: "slo-superglue/*"}
        training: {max_length: 64}
        method_options: {lora: {r: 4}}   # per registered method, like the top level
      - match: {task: slo-superglue/rte}   # data settings per task, for runs and baselines
        train_set: machine
        val_set: machine
        extra_val_sets: [human]
    exclude:                         # runs matching every key are dropped
      - {model: sloberta, method: full}
    resources: {num_cpus: 1, num_gpus: 0}   # per run, for the Ray backend

The file is read like a run config (:func:`~slopeft.config.update_dataclass` on :class:`GridFile` and
its entries): every key is a documented field, an unknown one is an error naming the known ones. A
``match:`` or ``exclude:`` key that fits none of the grid's models, tasks, methods, seeds or kinds is
an error too: a misspelt name would otherwise change nothing, found out after the training.

Runs a model family cannot do (an encoder has no head for translation, a method that does not
apply to the family) are skipped with the reason, not failed. Runs this machine cannot train (QLoRA
without bitsandbytes) stay in the grid, listed in :attr:`Expansion.not_here`: their published
records count everywhere, and only a machine that has what they need trains them. A run's id is readable
(``cb-tiny-bert-lora-s1-<hash>``) and ends in a hash of its full configuration (task, model,
method, options, seed, training set and every training setting, defaults included), so the same
configuration always gets the same id and folder, and any change gets a new one
(:mod:`slopeft.experiments.run_ids`).
"""

from __future__ import annotations

import dataclasses
import fnmatch
import json
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from slopeft.errors import ConfigError
from slopeft.experiments.run_ids import TINY_PREFIX, config_hash, make_run_id, run_config_hash

#: Family of each tiny architecture (see :mod:`slopeft.models.tiny`).
TINY_FAMILIES = {
    "bert": "encoder",
    "camembert": "encoder",
    "xlm-roberta": "encoder",
    "gemma": "causal",
    "marian": "seq2seq",
    "t5": "seq2seq",
}
#: Baseline strategies whose predictions do not depend on the seed: one row per task.
SEEDLESS_BASELINES = {"majority", "copy-source", "zero-shot", "few-shot"}
BASELINE_MODEL = "baseline"

# -- the file: what a grid YAML may hold, read through the config loader ------------------------
@dataclass
class ResourcesFile:
    """``resources:``: what each run asks the Ray backend for."""

    num_cpus: float | None = None
    num_gpus: float | None = None
    memory: float | None = None
    """Bytes."""


@dataclass
class MethodEntry:
    """A ``methods:`` entry written as a mapping."""

    method: str = ""
    """A registered method."""
    label: str = ""
    """Its name in run ids, tables and overrides (default: the method's)."""
    options: dict[str, Any] = field(default_factory=dict)
    """The method's options for this entry."""
    training: dict[str, Any] = field(default_factory=dict)
    """Training settings for this entry."""
    sweep: dict[str, Any] = field(default_factory=dict)
    """Setting → list of values: one variant per combination (``lora-lr0.001-r8`` ...)."""


@dataclass
class BaselineEntry:
    """A ``baselines:`` entry written as a mapping: a strategy, and for prompting the model and shots."""

    strategy: str = ""
    model: str | None = None
    shots: int | None = None


@dataclass
class PatternEntry:
    """A ``match:`` or ``exclude:`` mapping: each value a glob, or a list of globs (any of them)."""

    model: str | list[str] | None = None
    task: str | list[str] | None = None
    method: str | list[str] | None = None
    seed: str | list[str] | None = None
    kind: str | list[str] | None = None


@dataclass
class OverrideEntry:
    """An ``overrides:`` entry: settings for the runs (and baselines) matching every key of ``match``."""

    match: PatternEntry = field(default_factory=PatternEntry)
    training: dict[str, Any] = field(default_factory=dict)
    method_options: dict[str, Any] = field(default_factory=dict)
    """Per registered method, like the top level: ``{lora: {r: 4}}``."""
    train_set: str | None = None
    val_set: str | None = None
    extra_val_sets: list[str] | None = None


@dataclass
class GridFile:
    """What a grid file holds; every key is one of these fields."""

    name: str = ""
    """The grid's name (default: the file name)."""
    description: str = ""
    """Free text shown in reports."""
    out: str | None = None
    """Output folder (default outputs/grids/<name>)."""
    results: str | None = None
    """Folder the finished runs' records and validation predictions are published to, for committing
    (e.g. results/<name>); a run published there is done."""
    models: list[str] = field(default_factory=list)
    """Model aliases, Hub ids, folders or tiny:ARCH."""
    tasks: list[str] = field(default_factory=list)
    """Task names or groups."""
    methods: list[Any] = field(default_factory=list)
    """Method names, 'all', or mappings (:class:`MethodEntry`)."""
    seeds: list[Any] = field(default_factory=lambda: [42])
    """The seeds."""
    train_set: str | None = None
    """Training set (human, machine, combined; a folder for MT)."""
    val_set: str | None = None
    """Validation set (SuperGLUE: human, the leaderboard's, or machine)."""
    extra_val_sets: list[str] = field(default_factory=list)
    """More validation sets scored with the final weights."""
    data_dir: str | None = None
    """Data root (else $SLOPEFT_DATA)."""
    training: dict[str, Any] = field(default_factory=dict)
    """Training settings for every run."""
    method_options: dict[str, Any] = field(default_factory=dict)
    """Per registered method: ``{lora: {r: 8}}``."""
    baselines: list[Any] = field(default_factory=list)
    """Strategies: model-free (majority, random, stratified, copy-source), or mappings prompting a
    generative model (:class:`BaselineEntry`: ``{strategy: few-shot, model: M, shots: k}``)."""
    overrides: list[Any] = field(default_factory=list)
    """In order, :class:`OverrideEntry` mappings."""
    exclude: list[Any] = field(default_factory=list)
    """:class:`PatternEntry` mappings: the runs matching every key are dropped."""
    resources: ResourcesFile = field(default_factory=ResourcesFile)
    """Per-run resource request for the Ray backend."""
    order: str = "method-first"
    """method-first (a method's seeds one after another) or seed-first (every method's first seed,
    then every method's second ...), within each model and task."""
    recipes: bool = True
    """Start every run from its method's recipe; false: only the grid's own settings."""
    estimate: str = ""
    """Free-form notes on how long the grid takes (ignored by the runner)."""


#: GridFile fields that hold lists; a single value stands for a list of one.
_LIST_KEYS = ("models", "tasks", "methods", "seeds", "extra_val_sets", "baselines", "overrides", "exclude")


def _read(cls: type, data: Any, label: str, where: str) -> Any:
    """``data`` (a mapping) read into a fresh ``cls`` as config files are: unknown keys and wrong
    types are ConfigErrors, prefixed with the file (``where``)."""
    from slopeft.config import update_dataclass

    if not isinstance(data, dict):
        raise ConfigError(f"{where}: {label} must be a mapping (key: value), not {data!r}.")
    try:
        return update_dataclass(cls(), data, label)
    except ConfigError as err:
        raise ConfigError(str(err) if where == "grid" else f"{where}: {err}") from None


@dataclass(frozen=True)
class MethodVariant:
    """One entry of ``methods:``: a registered method under a label, with its own options/settings."""

    label: str
    method: str
    options: dict[str, Any] = field(default_factory=dict)
    training: dict[str, Any] = field(default_factory=dict)


#: Run settings (RunConfig fields) an override may set besides training and method options.
_DATA_KEYS = ("train_set", "val_set", "extra_val_sets")


@dataclass(frozen=True)
class Baseline:
    """One entry of ``baselines:``: a strategy, and for prompting baselines the model and shots."""

    strategy: str
    model: str | None = None
    shots: int | None = None

    @property
    def label(self) -> str:
        return self.strategy if self.shots is None else f"{self.strategy}-{self.shots}"


PROMPTING_BASELINES = ("zero-shot", "few-shot")


@dataclass(frozen=True)
class Override:
    match: dict[str, str]
    training: dict[str, Any] = field(default_factory=dict)
    method_options: dict[str, Any] = field(default_factory=dict)
    data: dict[str, Any] = field(default_factory=dict)  # train_set, val_set, extra_val_sets


@dataclass
class Grid:
    """A parsed grid file (see the module docstring for the YAML layout)."""

    name: str
    out: Path
    models: list[str]
    tasks: list[str]
    methods: list[MethodVariant]
    seeds: list[int]
    description: str = ""
    train_set: str | None = None
    val_set: str | None = None
    extra_val_sets: list[str] = field(default_factory=list)
    data_dir: str | None = None
    training: dict[str, Any] = field(default_factory=dict)
    method_options: dict[str, dict[str, Any]] = field(default_factory=dict)
    baselines: list[Baseline] = field(default_factory=list)
    overrides: list[Override] = field(default_factory=list)
    exclude: list[dict[str, str]] = field(default_factory=list)
    resources: dict[str, float] = field(default_factory=dict)
    results: Path | None = None
    recipes: bool = True
    order: str = "method-first"
    source: Path | None = None

    @property
    def store_path(self) -> Path:
        return self.out / "results.sqlite"

    @property
    def runs_dir(self) -> Path:
        return self.out / "runs"

    @property
    def models_dir(self) -> Path:
        return self.out / "models"


@dataclass(frozen=True)
class RunSpec:
    """One run of a grid: what the worker executes and what the store keys.

    Attributes:
        run_id: readable prefix + configuration hash; also the run folder's name.
        kind: ``train`` or ``baseline``.
        task: task name.
        model: the model as the grid names it (``tiny:bert``, ``sloberta``); ``baseline`` for baselines.
        method: the method's label in the grid (a variant label or the registered name).
        method_name: the registered method (or the baseline strategy).
        seed: the seed.
        config: the run configuration (``RunConfig.to_dict()`` without output and data folder).
        config_hash: sha256 of the canonical configuration.
        resources: the per-run resource request (Ray backend).
    """

    run_id: str
    kind: str
    task: str
    model: str
    method: str
    method_name: str
    seed: int
    config: dict[str, Any]
    config_hash: str
    resources: dict[str, float] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> RunSpec:
        return cls(**data)


@dataclass
class Expansion:
    runs: list[RunSpec]
    skipped: list[tuple[str, str]]  # (what, why)
    not_here: dict[str, str] = field(default_factory=dict)
    """run id → what this machine lacks to train it (QLoRA without bitsandbytes). Such runs stay in
    the grid: their published records are imported and reported on any machine; only training
    them waits for a machine that has what they need."""


def _as_list(value: Any, key: str, where: str) -> list:
    if value is None:
        return []
    if isinstance(value, str | int):
        return [value]
    if not isinstance(value, list):
        raise ConfigError(f"{where}: {key} must be a list, not {type(value).__name__}.")
    return value


def load_grid(
    path: Path | str, out: Path | str | None = None, results: Path | str | None = None
) -> Grid:
    """Reads and validates a grid file; ``out`` and ``results`` replace the grid's folders."""
    path = Path(path)
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    except (OSError, yaml.YAMLError) as err:
        raise ConfigError(f"Cannot read grid {path}: {err}. Fix the YAML or the path.") from None
    if not isinstance(data, dict):
        raise ConfigError(f"{path} must hold a mapping (models:, tasks:, methods:, seeds: ...).")
    grid = grid_from_dict(data, str(path), default_name=path.stem)
    grid.source = path
    if out is not None:
        grid.out = Path(out)
    if results is not None:
        grid.results = Path(results)
    return grid


def grid_from_dict(data: dict[str, Any], where: str = "grid", default_name: str = "grid") -> Grid:
    """A :class:`Grid` from the mapping a grid file holds (read into :class:`GridFile`, then resolved)."""
    from slopeft.methods import METHODS
    from slopeft.tasks import expand_task_names

    if not isinstance(data, dict):
        raise ConfigError(f"{where} must hold a mapping (models:, tasks:, methods:, seeds: ...).")
    data = {key: _as_list(value, key, where) if key in _LIST_KEYS else value for key, value in data.items()}
    file: GridFile = _read(GridFile, data, "grid", where)
    name = file.name or default_name
    if not re.fullmatch(r"[\w.-]+", name):
        raise ConfigError(f"{where}: name {name!r} may hold only letters, digits, '.', '_' and '-'.")
    tasks: list[str] = []
    for task in file.tasks:
        tasks += [t for t in expand_task_names(str(task)) if t not in tasks]
    methods = _method_variants(file.methods, where, METHODS)
    for seed in file.seeds:
        if isinstance(seed, bool) or not isinstance(seed, int):
            raise ConfigError(f"{where}: seeds must be integers, not {seed!r}.")
    baselines = [_baseline(b, where) for b in file.baselines]
    if not tasks:
        raise ConfigError(f"{where}: list at least one task under tasks:.")
    if (file.models and not methods) or (methods and not file.models):
        raise ConfigError(f"{where}: give both models: and methods: (or neither, for a baselines-only grid).")
    if not methods and not baselines:
        raise ConfigError(f"{where}: nothing to run; list models: and methods:, or baselines:.")
    _per_method(file.method_options, "method_options", where, METHODS)
    overrides = []
    for i, item in enumerate(file.overrides):
        entry: OverrideEntry = _read(OverrideEntry, item, f"overrides[{i}]", where)
        data_settings = {key: getattr(entry, key) for key in _DATA_KEYS if getattr(entry, key) is not None}
        overrides.append(
            Override(
                _patterns(entry.match),
                entry.training,
                _per_method(entry.method_options, f"overrides[{i}].method_options", where, METHODS),
                data_settings,
            )
        )
    exclude = [_patterns(_read(PatternEntry, item, f"exclude[{i}]", where)) for i, item in enumerate(file.exclude)]
    _check_patterns_name_something(overrides, exclude, file.models, tasks, methods, baselines, file.seeds, where)
    return Grid(
        name=name,
        out=Path(file.out or Path("outputs") / "grids" / name),
        models=[str(m) for m in file.models],
        tasks=tasks,
        methods=methods,
        seeds=list(file.seeds),
        description=file.description,
        train_set=file.train_set,
        val_set=file.val_set,
        extra_val_sets=list(file.extra_val_sets),
        data_dir=file.data_dir,
        training=file.training,
        method_options=file.method_options,
        baselines=baselines,
        overrides=overrides,
        exclude=exclude,
        resources={k: v for k, v in dataclasses.asdict(file.resources).items() if v is not None},
        results=Path(file.results) if file.results else None,
        recipes=file.recipes,
        order=_order(file.order, where),
    )


def _check_patterns_name_something(overrides, exclude, models, tasks, methods, baselines, seeds, where) -> None:
    """A match: or exclude: key that none of the grid's values fit is an error, not a no-op.

    A misspelt name (``task: rte`` for ``slo-superglue/rte``, ``method: lora*`` in a grid of ``dora``)
    would otherwise leave every run as it was, found out hours of training later.
    """
    values = {
        "model": [str(m) for m in models] + [b.model or BASELINE_MODEL for b in baselines],
        "task": list(tasks),
        "method": [variant.label for variant in methods] + [b.label for b in baselines],
        "seed": [str(s) for s in seeds] + (["0"] if any(b.strategy in SEEDLESS_BASELINES for b in baselines) else []),
        "kind": (["train"] if methods else []) + (["baseline"] if baselines else []),
    }
    entries = [(f"overrides[{i}].match", o.match) for i, o in enumerate(overrides)]
    entries += [(f"exclude[{i}]", pattern) for i, pattern in enumerate(exclude)]
    for name, pattern in entries:
        for key, globs in pattern.items():
            # A list is alternatives (a shared exclude list may name tasks another grid has): it is
            # a mistake only when none of them fits.
            globs = globs if isinstance(globs, tuple) else (globs,)
            if not any(fnmatch.fnmatchcase(value, glob) for glob in globs for value in values[key]):
                known = ", ".join(dict.fromkeys(values[key])) or "none"
                shown = repr(globs[0]) if len(globs) == 1 else f"[{', '.join(map(repr, globs))}]"
                raise ConfigError(
                    f"{where}: {name}.{key} {shown} matches none of the grid's {key}s ({known}), so "
                    f"the entry would change nothing. Fix the name (globs like 'slo-superglue/*' "
                    f"work) or remove the entry."
                )


def _per_method(value: dict[str, Any], key: str, where: str, methods) -> dict[str, dict[str, Any]]:
    """A mapping of registered method → its options (checked when the runs are built)."""
    for method, options in value.items():
        if method not in methods:
            raise ConfigError(
                f"{where}: {key} is keyed by method, like the top level ({{lora: {{r: 8}}}}), but "
                f"{methods.unknown_message(method)}"
            )
        if not isinstance(options, dict):
            raise ConfigError(
                f"{where}: {key} is keyed by method ({{lora: {{r: 8}}}}); {method}: must be a mapping, "
                f"not {options!r}."
            )
    return value


def _baseline(item: Any, where: str) -> Baseline:
    from slopeft.evaluation.baselines import BASELINES

    if isinstance(item, str):
        entry = Baseline(item)
    else:
        read: BaselineEntry = _read(BaselineEntry, item, "baselines entry", where)
        if read.shots is not None and read.shots < 1:
            raise ConfigError(f"{where}: baselines shots must be a whole number of at least 1, not {read.shots!r}.")
        entry = Baseline(read.strategy, read.model or None, read.shots)
    BASELINES.get(entry.strategy)
    if (entry.strategy in PROMPTING_BASELINES) != (entry.model is not None):
        raise ConfigError(
            f"{where}: baseline {entry.strategy!r}: prompting baselines need a model, a generative one "
            "({strategy: few-shot, model: gemma-3-270m, shots: 3}); the other strategies take no model."
        )
    if entry.shots is not None and entry.strategy != "few-shot":
        raise ConfigError(f"{where}: shots applies to the few-shot baseline only.")
    return entry


def _data_for(grid: Grid, values: dict[str, Any]) -> dict[str, Any]:
    """train_set, val_set and extra_val_sets of one run: the grid's, then matching overrides', checked
    against what the task offers (so a typo fails at expansion, not hours into the grid)."""
    from slopeft.tasks import TASKS

    data = {"train_set": grid.train_set, "val_set": grid.val_set, "extra_val_sets": list(grid.extra_val_sets)}
    for override in grid.overrides:
        if _matches(override.match, values):
            data.update(override.data)
    spec = TASKS.get(values["task"]).spec
    for val_set in [data["val_set"], *data["extra_val_sets"]]:
        if val_set is not None and val_set not in spec.val_sets:
            raise ConfigError(
                f"{values['task']} has no validation set {val_set!r} (it has {', '.join(spec.val_sets)}); "
                "fix val_set / extra_val_sets in the grid or its overrides."
            )
    return data


def _order(value: Any, where: str) -> str:
    if value not in ("method-first", "seed-first"):
        raise ConfigError(f"{where}: order must be method-first or seed-first, not {value!r}.")
    return value


def _method_variants(value: Any, where: str, methods) -> list[MethodVariant]:
    variants: list[MethodVariant] = []
    for item in _as_list(value, "methods", where):
        if item == "all":
            variants += [MethodVariant(name, name) for name in methods.names()]
            continue
        if isinstance(item, str):
            methods.get(item)
            variants.append(MethodVariant(item, item))
            continue
        entry: MethodEntry = _read(MethodEntry, item, "methods entry", where)
        if not entry.method:
            raise ConfigError(f"{where}: a methods entry as a mapping needs method: (and usually label:).")
        method = entry.method
        methods.get(method)
        label, options, training, sweep = entry.label or method, entry.options, entry.training, entry.sweep
        if not sweep:
            variants.append(MethodVariant(label, method, options, training))
            continue
        variants += _swept_variants(label, method, options, training, sweep, where)
    labels = [v.label for v in variants]
    duplicates = sorted({label for label in labels if labels.count(label) > 1})
    if duplicates:
        raise ConfigError(
            f"{where}: method label(s) {', '.join(duplicates)} appear twice; give variants a label:."
        )
    return variants


#: Short names of swept training settings in variant labels (``lora-lr0.002-ep3``).
_SWEEP_ABBREVIATIONS = {"learning_rate": "lr", "epochs": "ep", "batch_size": "bs", "warmup_ratio": "wu"}


def _swept_variants(
    label: str, method: str, options: dict, training: dict, sweep: dict, where: str
) -> list[MethodVariant]:
    """One variant per combination of the ``sweep:`` values (training settings or method options)."""
    import itertools

    from slopeft.config import TrainingConfig

    training_fields = {f.name for f in dataclasses.fields(TrainingConfig)}
    keys = list(sweep)
    for key in keys:
        if not isinstance(sweep[key], list) or not sweep[key]:
            raise ConfigError(f"{where}: sweep.{key} must be a non-empty list of values.")
    variants = []
    for values in itertools.product(*(sweep[k] for k in keys)):
        swept_training, swept_options, parts = dict(training), dict(options), [label]
        for key, value in zip(keys, values, strict=True):
            (swept_training if key in training_fields else swept_options)[key] = value
            shown = f"{value:g}" if isinstance(value, float) else str(value)
            parts.append(f"{_SWEEP_ABBREVIATIONS.get(key, key)}{shown}")
        variants.append(MethodVariant("-".join(parts), method, swept_options, swept_training))
    return variants


def _matches(pattern: dict[str, Any], values: dict[str, Any]) -> bool:
    """Every key's glob (or any glob of a list) matches the run's value."""
    return all(
        any(fnmatch.fnmatchcase(str(values.get(key, "")), glob) for glob in (globs if isinstance(globs, tuple) else (globs,)))
        for key, globs in pattern.items()
    )


def _patterns(entry: PatternEntry) -> dict[str, Any]:
    """The keys a match/exclude entry sets: each a glob, or a tuple of globs (any of them)."""
    return {
        key: tuple(str(v) for v in value) if isinstance(value, list) else str(value)
        for key, value in dataclasses.asdict(entry).items()
        if value is not None
    }


def model_family(model: str) -> str | None:
    """The family of a grid's model entry without loading it (None when it cannot be told offline)."""
    from slopeft.models.sources import resolve_model

    if model.startswith(TINY_PREFIX):
        arch = model[len(TINY_PREFIX) :]
        if arch not in TINY_FAMILIES:
            raise ConfigError(
                f"Unknown tiny architecture {arch!r} in {model!r}; use one of {', '.join(TINY_FAMILIES)}."
            )
        return TINY_FAMILIES[arch]
    return resolve_model(model).family


def _incompatible(
    task: str, model: str, family: str | None, method: str, options: dict[str, Any]
) -> str | None:
    """Why ``method`` cannot run ``task`` on ``model`` (the method's own check, made before any run), or None."""
    from slopeft.methods import METHODS, MethodContext
    from slopeft.models.heads import HEADS
    from slopeft.tasks import TASKS

    if family is None:
        return None
    kind = TASKS.get(task).spec.kind
    if (kind, family) not in HEADS:
        return f"{kind} has no head for {family} models"
    head = HEADS[(kind, family)]
    # The context load_base builds, minus the head modules (known only once the model is loaded).
    context = MethodContext(family, _architecture(model) or "unknown", [], head.peft_task_type_for(family))
    try:
        METHODS.get(method)(options).check(context)
    except ConfigError as err:
        return str(err)
    return None


def _architecture(model: str) -> str | None:
    from slopeft.models.sources import resolve_model

    if model.startswith(TINY_PREFIX):
        return {"gemma": "gemma3_text"}.get(model[len(TINY_PREFIX) :], model[len(TINY_PREFIX) :])
    return resolve_model(model).architecture


def expand(grid: Grid) -> Expansion:
    """Every run of ``grid`` (baselines first), validated; incompatible combinations are skipped with a reason."""
    from slopeft.config import RunConfig, TrainingConfig, update_dataclass
    from slopeft.methods import METHODS
    from slopeft.methods.recipes import recipe_defaults
    from slopeft.tasks import TASKS

    runs: list[RunSpec] = []
    skipped: list[tuple[str, str]] = []
    not_here: dict[str, str] = {}
    environment: dict[str, str | None] = {}  # method options → what this machine lacks for them
    for baseline in grid.baselines:
        strategy = baseline.strategy
        for task in grid.tasks:
            kind = TASKS.get(task).spec.kind
            if baseline.model is None and (kind == "translation") != (strategy == "copy-source"):
                continue  # label baselines for classification, copy-source for translation: by design
            for seed in [0] if strategy in SEEDLESS_BASELINES else grid.seeds:
                model = baseline.model or BASELINE_MODEL
                values = {
                    "model": model,
                    "task": task,
                    "method": baseline.label,
                    "seed": seed,
                    "kind": "baseline",
                }
                if any(_matches(pattern, values) for pattern in grid.exclude):
                    continue
                training = _training_for(grid, values, {})
                training = dataclasses.asdict(update_dataclass(TrainingConfig(), training, "training"))
                data = _data_for(grid, values)
                config = {
                    "kind": "baseline",
                    "task": task,
                    "strategy": strategy,
                    "seed": seed,
                    "train_set": data["train_set"],
                    # only these two limits change a baseline's numbers
                    "max_train_examples": training["max_train_examples"],
                    "max_eval_examples": training["max_eval_examples"],
                }
                # Present only when set, so the ids of baselines from before these settings stay valid.
                config.update({k: data[k] for k in ("val_set", "extra_val_sets") if data[k]})
                if baseline.model is not None:  # prompting: the model and how it is prompted
                    config.update(
                        model=baseline.model,
                        shots=baseline.shots if strategy == "few-shot" else 0,
                        max_length=training["max_length"],
                        batch_size=training["eval_batch_size"],
                    )
                    if config["shots"] == 0 and strategy == "few-shot":
                        config["shots"] = 3
                digest = config_hash(config)
                runs.append(
                    RunSpec(
                        make_run_id(task, model, baseline.label, seed, digest),
                        "baseline",
                        task,
                        model,
                        baseline.label,
                        strategy,
                        seed,
                        config,
                        digest,
                        {"num_cpus": 1.0},
                    )
                )
    families = {model: model_family(model) for model in grid.models}
    for model in grid.models:
        for task in grid.tasks:
            for variant in grid.methods:
                checked: dict[str, str | None] = {}
                for seed in grid.seeds:
                    values = {
                        "model": model,
                        "task": task,
                        "method": variant.label,
                        "seed": seed,
                        "kind": "train",
                    }
                    if any(_matches(pattern, values) for pattern in grid.exclude):
                        continue
                    recipe_training, recipe_options = (
                        recipe_defaults(variant.method) if grid.recipes else ({}, {})
                    )
                    options = {
                        **recipe_options,
                        **grid.method_options.get(variant.method, {}),
                        **variant.options,
                    }
                    for override in grid.overrides:
                        if _matches(override.match, values):
                            options.update(override.method_options.get(variant.method, {}))
                    method = METHODS.get(variant.method)(options)  # validates the options now, not mid-grid
                    key = json.dumps(options, sort_keys=True, default=str)
                    if (variant.method, key) not in environment:
                        environment[variant.method, key] = method.environment_problem()
                    if key not in checked:
                        checked[key] = _incompatible(task, model, families[model], variant.method, options)
                        if checked[key]:
                            skipped.append((f"{variant.label} on {task} with {model}", checked[key]))
                    if checked[key]:
                        continue
                    training = update_dataclass(
                        TrainingConfig(),
                        {**recipe_training, **_training_for(grid, values, variant.training)},
                        "training",
                    )
                    run_config = RunConfig(
                        task=task,
                        model=model,
                        method=variant.method,
                        **_data_for(grid, values),
                        seed=seed,
                        training=training,
                        method_options=options,
                    ).to_dict()
                    for machine_specific in ("output", "data_dir"):
                        run_config.pop(machine_specific)
                    digest = run_config_hash(run_config)
                    run_id = make_run_id(task, model, variant.label, seed, digest)
                    if problem := environment[variant.method, key]:
                        not_here[run_id] = problem
                    runs.append(
                        RunSpec(
                            run_id,
                            "train",
                            task,
                            model,
                            variant.label,
                            variant.method,
                            seed,
                            run_config,
                            digest,
                            dict(grid.resources),
                        )
                    )
    seen: dict[str, RunSpec] = {}
    for run in runs:
        if run.config_hash in seen:
            raise ConfigError(
                f"Two entries of the grid give the same run ({run.run_id}): {seen[run.config_hash].method} and "
                f"{run.method} have identical settings. Remove one or change its options."
            )
        seen[run.config_hash] = run
    if grid.order == "seed-first":
        # Stable: baselines first, then per model and task every method's first seed, then the
        # second ... so a grid stopped early has every method at some seeds, not some at all.
        # The (model, task) pairs follow the grid's tasks, then its models within a task (a model
        # that runs only a later task waits for that task, not for every task of the models before
        # it). The baselines keep their place, first: a prompting baseline names a model too.
        task_place = {task: i for i, task in reversed(list(enumerate(grid.tasks)))}
        model_place = {model: i for i, model in reversed(list(enumerate(grid.models)))}

        def place(run: RunSpec) -> tuple[int, int, int, int]:
            if run.kind == "baseline":
                return (0, 0, 0, run.seed)
            return (1, task_place[run.task], model_place[run.model], run.seed)

        runs.sort(key=place)
    return Expansion(runs, skipped, not_here)


def _training_for(grid: Grid, values: dict[str, Any], variant_training: dict[str, Any]) -> dict[str, Any]:
    training = {**grid.training, **variant_training}
    for override in grid.overrides:
        if _matches(override.match, values):
            training.update(override.training)
    return training
