"""What a task is: a typed spec, a loader, metrics and a submission format.

A task turns official files into :class:`Example` rows, scores a mapping of predictions
(example ``idx`` → label in the task's label space) with pure metric functions, and
writes/reads the SloBench submission files. Models never see task files: they see
examples, and heads map their outputs back to labels.
"""

from __future__ import annotations

import abc
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from slopeft.data.locate import DataLocation, locate_dataset
from slopeft.errors import ConfigError, SubmissionError
from slopeft.registry import Registry

Split = Literal["train", "val", "test"]
SPLITS: tuple[Split, ...] = ("train", "val", "test")

# The head family a task needs; models/heads pick an implementation per family.
TaskKind = Literal[
    "pair-classification",  # (text_a, text_b) -> one of `labels`
    "multiple-choice",  # premise + k choices -> index
    "span-classification",  # text with two marked word spans -> bool
    "answer-classification",  # (passage, question, answer) -> 0/1, grouped by question
    "translation",  # source -> target text
]


@dataclass(frozen=True)
class Example:
    """One unit the model predicts.

    Attributes:
        idx: the official ``idx`` (for MultiRC the answer idx, unique across a file; for
            line-based files the 0-based line number), the key of predictions and submissions.
        inputs: the task's text fields (``premise``, ``hypothesis``, ``passage`` ...).
        label: the gold label in the task's label space, ``None`` for unlabelled test inputs.
        origin: which training set the row came from (``human`` or ``machine``).
    """

    idx: int
    inputs: Mapping[str, Any]
    label: Any = None
    origin: str = "human"


@dataclass(frozen=True)
class TaskSpec:
    """Declarative facts about a task.

    Attributes:
        name: registry name, e.g. ``slo-superglue/cb``.
        kind: the head family the task needs.
        labels: the label space in a fixed order (a classifier's class i is ``labels[i]``);
            ``None`` for generation tasks.
        metric_names: the keys its metric function returns.
        main_metric: the validation metric used for model selection and headline tables.
        dataset: which dataset folder it reads (see ``slopeft.data.locate``).
        train_sets: training sets it offers (``human``, ``machine``, ``combined``).
        val_sets: validation sets it offers, the first the default (SuperGLUE: the leaderboard's
            ``human`` val, and the larger ``machine``-translated English dev set).
        text_fields: the input fields, in the order a model should read them.
    """

    name: str
    kind: TaskKind
    labels: tuple[Any, ...] | None
    metric_names: tuple[str, ...]
    main_metric: str
    dataset: str
    train_sets: tuple[str, ...] = ("human",)
    val_sets: tuple[str, ...] = ("human",)
    text_fields: tuple[str, ...] = ()
    description: str = ""
    submission_files: tuple[str, ...] = field(default=())


class Task(abc.ABC):
    """A SloBench task: loader + metrics + submission format around a :class:`TaskSpec`."""

    spec: TaskSpec

    def __init__(
        self, data_dir: Path | str | None = None, train_set: str = "human", val_set: str | None = None
    ) -> None:
        if train_set not in self.spec.train_sets:
            raise ConfigError(
                f"Task {self.spec.name} has no training set {train_set!r}; choose one of "
                f"{', '.join(self.spec.train_sets)}."
            )
        val_set = val_set or self.spec.val_sets[0]
        if val_set not in self.spec.val_sets:
            raise ConfigError(
                f"Task {self.spec.name} has no validation set {val_set!r}; choose one of "
                f"{', '.join(self.spec.val_sets)}."
            )
        self.data_dir = data_dir
        self.train_set = train_set
        self.val_set = val_set
        self._location: DataLocation | None = None
        self._cache: dict[str, list[Example]] = {}
        self.notes: list[str] = []  # data repairs made while loading (rows dropped and why)

    @property
    def name(self) -> str:
        return self.spec.name

    @property
    def location(self) -> DataLocation:
        if self._location is None:
            self._location = locate_dataset(self.spec.dataset, self.data_dir)
        return self._location

    def examples(self, split: Split) -> list[Example]:
        """The examples of ``split`` (cached per task instance)."""
        if split not in SPLITS:
            raise ConfigError(f"Unknown split {split!r}; choose train, val or test.")
        if split not in self._cache:
            self._cache[split] = self._load(split)
        return self._cache[split]

    @abc.abstractmethod
    def _load(self, split: Split) -> list[Example]:
        """Reads ``split`` from the official files."""

    def source_files(self, split: Split) -> list[Path]:
        """The files ``split`` is read from (for data fingerprints and listings)."""
        return []

    @abc.abstractmethod
    def metrics(self, predictions: Mapping[int, Any], examples: Sequence[Example]) -> dict[str, float]:
        """Scores ``predictions`` (idx → label) against labelled ``examples``."""

    @abc.abstractmethod
    def submission_contents(
        self, predictions: Mapping[int, Any], examples: Sequence[Example]
    ) -> dict[str, str]:
        """The submission file(s) for ``predictions``: file name → UTF-8 text."""

    @abc.abstractmethod
    def parse_submission(self, files: Mapping[str, bytes], examples: Sequence[Example]) -> dict[int, Any]:
        """Reads and validates submission file(s) against ``examples``; returns idx → label.

        Raises:
            SubmissionError: naming every problem found (missing/extra files, duplicate or
                missing idx, illegal labels, wrong line count).
        """

    def aligned(self, predictions: Mapping[int, Any], examples: Sequence[Example]) -> tuple[list, list]:
        """(references, predictions) in example order, after checking coverage and label legality."""
        check_complete(self.name, predictions, examples, "the predictions")
        if self.spec.labels is not None:
            illegal = [
                (e.idx, predictions[e.idx]) for e in examples if predictions[e.idx] not in self.spec.labels
            ]
            if illegal:
                raise SubmissionError(
                    f"{self.name}: {len(illegal)} prediction(s) outside the label space {self.spec.labels} "
                    f"(first: {illegal[:3]}). Map model outputs to the task's labels before scoring."
                )
        return [e.label for e in examples], [predictions[e.idx] for e in examples]

    def metric_notes(self) -> dict[str, str]:
        """Metrics this task cannot compute here, each with the reason (empty when all are available)."""
        return {}

    def metric_warnings(self) -> list[str]:
        """What the last scoring found that the leaderboard would refuse (empty when nothing)."""
        return []

    def scoring(self) -> dict[str, str]:
        """The scoring choices the metrics were computed with, where the task offers one (for records)."""
        return {}

    def count_rows(self, split: Split) -> str:
        """A human-readable row count for ``slopeft data list``."""
        return str(len(self.examples(split)))


TASKS: Registry[type[Task]] = Registry("task")
"""Registered task classes by name (``slo-superglue/cb``, ``si-nli``, ``mt/sl-en`` ...)."""

TASK_GROUPS: dict[str, tuple[str, ...]] = {}
"""Named groups of tasks scored and submitted together (``slo-superglue``)."""


def check_complete(
    task: str, predictions: Mapping[int, Any], examples: Sequence[Example], where: str
) -> None:
    """Raises SubmissionError unless ``predictions`` has exactly the idx values of ``examples``."""
    expected = {e.idx for e in examples}
    missing = sorted(expected - predictions.keys())
    extra = sorted(predictions.keys() - expected)
    if missing or extra:
        parts = []
        if missing:
            parts.append(f"{len(missing)} idx value(s) missing (first: {missing[:5]})")
        if extra:
            parts.append(f"{len(extra)} idx value(s) not in the inputs (first: {extra[:5]})")
        raise SubmissionError(
            f"{task}: {where} does not cover the inputs: {'; '.join(parts)}. Predict every input exactly "
            "once, using the idx values of the split you are scoring (val or test)."
        )
