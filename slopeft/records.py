"""The run record: one JSON file per finished run with everything needed to trust and compare it.

A run folder (``runs/<...>/``, ``<grid out>/runs/<run_id>/``, or a grid's published
``results/<grid>/<run_id>/``) holds :data:`RECORD` and :data:`VAL_PREDICTIONS`. Training runs
(:mod:`slopeft.training.run`) and baselines (:mod:`slopeft.experiments.worker`) write a
:class:`RunRecord` through :func:`write_record`, atomically; everything that reads one goes through
:meth:`RunRecord.from_dict` (or :func:`read_record`), which validates it and upgrades the shapes
earlier versions wrote. An unknown shape is a :class:`~slopeft.errors.ConfigError`, never a
``KeyError`` later.

Shapes (``format``):

1. slopeft 0.1 before this module: no ``format`` key; a training record has no ``kind`` (its
   ``config`` is a :class:`~slopeft.config.RunConfig`); a baseline record has ``kind: baseline`` and a
   flat ``config`` (``strategy``, ``max_eval_examples`` ...). The first training records have no
   ``cost.method``. Read as they are, with ``kind`` and ``format`` filled in.
2. Format 1 plus ``kind`` on every record and ``format: 2``.
3. The current shape: training records add ``base`` (the base weights' fingerprint and, for a Hub
   model, its revision); read from earlier formats with ``base`` None.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import platform
import subprocess
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import slopeft
from slopeft.errors import ConfigError

RECORD = "record.json"
VAL_PREDICTIONS = "val_predictions.json"  # idx → predicted label on the validation examples scored
FORMAT = 3
"""The layout this version writes; records without a ``format`` key are format 1."""
KINDS = ("train", "baseline")


@dataclass
class RunMetrics:
    """The validation scores of a run.

    Attributes:
        val: every metric of the task on the validation examples scored.
        main_metric: the task's headline metric (model selection, tables).
        main: ``val[main_metric]``.
        extra_val: the scores on more validation sets (``RunConfig.extra_val_sets``): set →
            ``metrics``, ``main`` and ``examples``; None in records written before they existed.
        best_step: training: the optimiser step whose weights were scored best.
        history: training: one entry per evaluation (step, epochs done, metrics, examples/s); records
            before 2 December 2026 give the last evaluation of a run the epoch before (3 epochs: 2).
        scoring: training: how the metrics were computed where the task offers a choice (MT: ``nltk``,
            the NLTK release); None in records written before it existed.
        warnings: training: what the leaderboard would refuse in the scored predictions (MT: lines
            the evaluator's NLTK fails on); None in records written before it existed.
    """

    val: dict[str, float]
    main_metric: str
    main: float
    extra_val: dict[str, dict[str, Any]] | None = None
    best_step: int | None = None
    history: list[dict[str, Any]] | None = None
    scoring: dict[str, str] | None = None
    warnings: list[str] | None = None

    def to_dict(self) -> dict[str, Any]:
        data: dict[str, Any] = {"val": self.val, "main_metric": self.main_metric, "main": self.main}
        if self.scoring is not None or self.warnings is not None:
            data["scoring"] = self.scoring or {}
            data["warnings"] = self.warnings or []
        if self.extra_val is not None:
            data["extra_val"] = self.extra_val
        if self.best_step is not None or self.history is not None:
            data["best_step"] = self.best_step
            data["history"] = self.history
        return data


@dataclass
class RunRecord:
    """One finished run.

    Attributes:
        run_id: the run folder's name (a grid run's id).
        kind: ``train`` or ``baseline``.
        config: the run's configuration as written: ``RunConfig.to_dict()`` for training (see
            :meth:`run_config`), the baseline's settings (task, strategy, seed, train_set and the two
            example limits) for a baseline.
        metrics: the validation scores.
        status: ``completed`` (only finished runs write a record).
        versions: slopeft's and the libraries' versions, and Python's.
        git: ``commit`` and ``dirty`` of the slopeft checkout that ran it (None when installed).
        data: ``fingerprint`` (sha256 of the files read), ``train_examples``, ``val_examples``; training
            adds ``truncated_train``, ``truncated_val``, ``sequence_limit`` (the longest input the model
            allowed, since December 2026) and ``notes`` (data repairs).
        cost: trainable parameters, adapter bytes, seconds, throughput, peak memory; training adds the
            precision it trained in (:attr:`precision`), its CPU ``threads`` (records since December
            2026) and the method's own report under ``method`` (:meth:`method_report`).
        model: training: the base model (name, path, family, architecture, parameters, head modules).
        method_options: training: the method's options in full, defaults included.
        learning_rate: training: the peak learning rate used.
        finished_at: when the record was written.
        base: training: the base model's identity beyond its name: ``revision`` (the Hub commit sha
            of the snapshot loaded, None for a local folder or a pip model) and ``weights`` (the
            fingerprint the adapter also carries); None in records before format 3.
        format: the layout (:data:`FORMAT`).
    """

    run_id: str
    kind: str
    config: dict[str, Any]
    metrics: RunMetrics
    status: str = "completed"
    versions: dict[str, str] = field(default_factory=dict)
    git: dict[str, Any] = field(default_factory=lambda: {"commit": None, "dirty": None})
    data: dict[str, Any] = field(default_factory=dict)
    cost: dict[str, Any] = field(default_factory=dict)
    model: dict[str, Any] | None = None
    method_options: dict[str, Any] | None = None
    learning_rate: float | None = None
    finished_at: str = ""
    base: dict[str, Any] | None = None
    format: int = FORMAT

    # -- what readers ask -----------------------------------------------------------------------
    @property
    def task(self) -> str:
        return self.config["task"]

    @property
    def commit(self) -> str | None:
        return self.git.get("commit")

    @property
    def dirty(self) -> bool | None:
        return self.git.get("dirty")

    @property
    def data_fingerprint(self) -> str | None:
        return self.data.get("fingerprint")

    @property
    def val_examples(self) -> int:
        """How many validation examples were scored."""
        return int(self.data.get("val_examples") or 0)

    @property
    def eval_limit(self) -> int:
        """``max_eval_examples`` of the run (0: the whole validation set was scored)."""
        if self.kind == "baseline":
            return int(self.config.get("max_eval_examples") or 0)
        return int((self.config.get("training") or {}).get("max_eval_examples") or 0)

    @property
    def precision(self) -> str | None:
        """The arithmetic a training run trained in (``fp32``, ``bf16``, ``fp16``); None for a baseline.

        Records before ``cost.precision`` existed trained in the precision their configuration asked
        for when it named one, else in fp32 (``auto`` was fp32 on the CPUs that trained them).
        """
        if self.kind != "train":
            return None
        asked = (self.config.get("training") or {}).get("precision", "auto")
        return self.cost.get("precision") or (asked if asked in ("fp32", "bf16", "fp16") else "fp32")

    @property
    def method_report(self) -> dict[str, Any]:
        """The method's own costs (effective ranks, quantised bytes ...); empty for baselines."""
        return dict(self.cost.get("method") or {})

    def run_config(self):
        """The training run's :class:`~slopeft.config.RunConfig`, validated like a config file."""
        from slopeft.config import run_config_from_dict

        if self.kind != "train":
            raise ConfigError(f"{self.run_id} is a {self.kind} record; only training runs have a RunConfig.")
        return run_config_from_dict(self.config, f"the record of {self.run_id}")

    # -- reading and writing --------------------------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        """The JSON layout of :data:`FORMAT`, in the order a reader expects to find things."""
        data: dict[str, Any] = {
            "run_id": self.run_id,
            "status": self.status,
            "kind": self.kind,
            "format": self.format,
            "config": self.config,
        }
        if self.kind == "train":
            data["method_options"] = self.method_options
            data["learning_rate"] = self.learning_rate
        data.update(versions=self.versions, git=self.git, data=self.data)
        if self.kind == "train":
            data["model"] = self.model
            if self.base is not None:
                data["base"] = self.base
        data.update(metrics=self.metrics.to_dict(), cost=self.cost, finished_at=self.finished_at)
        return data

    @classmethod
    def from_dict(cls, data: Any, where: str = "the run record") -> RunRecord:
        """Validates a record of any known shape and upgrades it to the current one.

        Raises:
            ConfigError: ``data`` is no run record, or one of a shape this version does not know.
        """
        if not isinstance(data, dict):
            raise ConfigError(f"{where} is not a run record: it holds {type(data).__name__}, not a JSON object.")
        fmt = data.get("format", 1)
        if not isinstance(fmt, int) or isinstance(fmt, bool) or not 1 <= fmt <= FORMAT:
            raise ConfigError(
                f"{where} has record format {fmt!r}; this slopeft ({slopeft.__version__}) reads formats 1 to "
                f"{FORMAT}. Read it with the slopeft version that wrote it "
                f"({(data.get('versions') or {}).get('slopeft', 'unknown')}), or upgrade slopeft."
            )
        missing = [key for key in ("run_id", "status", "config", "metrics") if key not in data]
        if missing:
            raise ConfigError(
                f"{where} is not a run record of a known shape: it lacks {', '.join(missing)} (keys found: "
                f"{', '.join(sorted(data)) or 'none'}). Only `slopeft train` and grid runs write records."
            )
        config = data["config"]
        if not isinstance(config, dict):
            raise ConfigError(f"{where}: config is {type(config).__name__}, not a mapping of settings.")
        kind = data.get("kind") or ("baseline" if "strategy" in config else "train")
        if kind not in KINDS:
            raise ConfigError(f"{where}: unknown run kind {kind!r}; known: {', '.join(KINDS)}.")
        metrics = data["metrics"]
        if not isinstance(metrics, dict) or "main_metric" not in metrics or "main" not in metrics:
            raise ConfigError(f"{where}: metrics must hold val, main_metric and main, not {metrics!r:.200}.")
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise ConfigError(
                f"{where} has fields no record format knows ({', '.join(unknown)}): it was not written by "
                "slopeft, or by a newer version; upgrade slopeft."
            )
        return cls(
            run_id=str(data["run_id"]),
            kind=kind,
            config=config,
            metrics=RunMetrics(
                val=dict(metrics.get("val") or {}),
                main_metric=metrics["main_metric"],
                main=metrics["main"],
                extra_val=metrics.get("extra_val"),
                best_step=metrics.get("best_step"),
                history=metrics.get("history"),
                scoring=metrics.get("scoring"),
                warnings=metrics.get("warnings"),
            ),
            status=str(data["status"]),
            versions=dict(data.get("versions") or {}),
            git={"commit": None, "dirty": None, **(data.get("git") or {})},
            data=dict(data.get("data") or {}),
            cost=dict(data.get("cost") or {}),
            model=data.get("model"),
            method_options=data.get("method_options"),
            learning_rate=data.get("learning_rate"),
            finished_at=str(data.get("finished_at") or ""),
            base=data.get("base") if isinstance(data.get("base"), dict) else None,
            format=FORMAT,
        )


def load_record(path: Path | str) -> RunRecord:
    """The record in file ``path``, validated and upgraded (:meth:`RunRecord.from_dict`)."""
    path = Path(path)
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as err:
        raise ConfigError(f"Cannot read the run record {path}: {err}.") from None
    return RunRecord.from_dict(data, str(path))


def read_record(run_dir: Path | str) -> RunRecord:
    """The record of the run in ``run_dir``; a folder without one is a ConfigError naming the fix."""
    path = Path(run_dir) / RECORD
    if not path.is_file():
        raise ConfigError(
            f"{run_dir} is not a finished slopeft run (no {RECORD}). Pass the folder `slopeft train` "
            "wrote (runs/...), or train it first."
        )
    return load_record(path)


def completed_record_data(run_dir: Path | str) -> dict[str, Any] | None:
    """The record of ``run_dir`` as written when its status is ``completed``, else None.

    Only the status is looked at: the runner decides with it that a run is done, and copies and
    stores the record as it is (records are renamed into place, so a half-written one cannot exist).
    Whatever reads a record's contents goes through :meth:`RunRecord.from_dict`.
    """
    path = Path(run_dir) / RECORD
    if not path.is_file():
        return None
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except ValueError:
        return None
    return data if isinstance(data, dict) and data.get("status") == "completed" else None


def write_record(run_dir: Path | str, record: RunRecord) -> dict[str, Any]:
    """Writes ``record`` into ``run_dir`` atomically; returns what was written."""
    data = record.to_dict()
    write_json_atomic(Path(run_dir) / RECORD, data)
    return data


def predictions_file(val_set: str | None = None) -> str:
    """The file of a run's validation predictions: :data:`VAL_PREDICTIONS`, or
    ``val_predictions.<set>.json`` for an extra validation set (``RunConfig.extra_val_sets``)."""
    return VAL_PREDICTIONS if val_set is None else f"val_predictions.{val_set}.json"


def write_predictions(run_dir: Path | str, predictions: dict[int, Any], val_set: str | None = None) -> None:
    """Writes the validation predictions (idx → label) a run was scored on next to its record."""
    write_json_atomic(Path(run_dir) / predictions_file(val_set), {str(k): v for k, v in predictions.items()})


def load_predictions(run_dir: Path | str, val_set: str | None = None) -> dict[int, Any] | None:
    """A run's validation predictions (idx → label), or None when the run did not save them."""
    path = Path(run_dir) / predictions_file(val_set)
    if not path.is_file():
        return None
    return {int(k): v for k, v in json.loads(path.read_text(encoding="utf-8")).items()}


def write_json_atomic(path: Path, data: dict[str, Any]) -> None:
    """Writes JSON through a temporary file and a rename: a reader never sees half a file, and a failed
    write (a full disk) leaves no temporary file behind (:func:`slopeft.files.write_json_atomic`)."""
    from slopeft.files import write_json_atomic as write

    write(path, data)


# -- provenance: what a writer puts into a record ------------------------------------------------
def library_versions() -> dict[str, str]:
    import accelerate
    import peft
    import torch
    import transformers

    return {
        "slopeft": slopeft.__version__,
        "torch": torch.__version__,
        "transformers": transformers.__version__,
        "peft": peft.__version__,
        "accelerate": accelerate.__version__,
        "python": platform.python_version(),
    }


def git_commit() -> dict[str, Any]:
    """The commit of the slopeft checkout running this (None when installed from a wheel), and whether it is dirty."""
    root = Path(slopeft.__file__).resolve().parent.parent
    try:
        commit = subprocess.run(
            ["git", "-C", str(root), "rev-parse", "HEAD"],
            capture_output=True,
            text=True,
            timeout=5,
            check=True,
        ).stdout.strip()
        dirty = bool(
            subprocess.run(
                ["git", "-C", str(root), "status", "--porcelain", "--untracked-files=no"],
                capture_output=True,
                text=True,
                timeout=5,
            ).stdout.strip()
        )
        return {"commit": commit, "dirty": dirty}
    except (OSError, subprocess.SubprocessError):
        return {"commit": None, "dirty": None}


def data_fingerprint(files: list[Path]) -> str:
    """sha256 over the bytes of the files a run read (train and validation)."""
    digest = hashlib.sha256()
    for path in sorted(set(files)):
        digest.update(path.name.encode())
        digest.update(Path(path).read_bytes())
    return digest.hexdigest()
