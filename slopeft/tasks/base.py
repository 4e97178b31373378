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
from typing import TYPE_CHECKING, Any, Literal

import numpy as np

from slopeft.data.locate import DataLocation, locate_dataset
from slopeft.errors import ConfigError, SubmissionError
from slopeft.metrics.classification import leaderboard
from slopeft.registry import Registry

if TYPE_CHECKING:
    from slopeft.metrics.statistics import MetricStatistics

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
    """Declarative facts about a task: what it is, how it is scored, and how a model is shown it.

    Attributes:
        name: registry name, e.g. ``si-nli``.
        kind: the head family the task needs.
        labels: the label space in a fixed order (a classifier's class i is ``labels[i]``);
            ``None`` for generation tasks.
        metric_names: the keys its metric function returns.
        main_metric: the validation metric used for model selection and headline tables.
        dataset: which dataset it reads (a name registered in :mod:`slopeft.data.catalogue`).
        train_sets: training sets it offers (``human``, ``machine``, ``combined``).
        val_sets: validation sets it offers, the first the default (SuperGLUE: the leaderboard's
            ``human`` val, and the larger ``machine``-translated English dev set).
        text_fields: the input fields, in the order a model should read them.
        description: one line for listings.
        short_name: the name in run ids and plot titles (default: ``name``).
        verbalizer: label → the Slovene word a generative model scores for it (a run can override it).
        pair: the two texts an encoder classifies, as templates (default: the first two text
            fields); for multiple choice, the context and one choice (``{choice}``).
        prompt: the template a generative model continues (default: the pair, then the answer cue).
        choices: multiple choice: the input fields holding the options, in label order.
        long_field: the input field cut first when an input is too long (a passage); the pair
            template puts it second.
        unit_fields: the inputs naming what the metric scores as a whole (MultiRC: a question,
            by passage and question idx); the bootstrap resamples whole units.
        options: keyword options the task takes besides the data folder and training set
            (translation: ``train_files``, ``test_source``).
        validation: what the validation split is where it is not the leaderboard's (for reports).

    Templates are ``str.format`` strings over the example's inputs plus what the task adds
    (:meth:`Task.template_fields`) and ``{label_words}`` (the verbalizer's words joined by
    " ali "); a filter may follow a colon: ``{hypothesis:lower_first}`` (:mod:`slopeft.tasks.formats`).
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
    short_name: str = ""
    verbalizer: Mapping[Any, str] = field(default_factory=dict)
    pair: tuple[str, str] | None = None
    prompt: str | None = None
    choices: tuple[str, ...] = ()
    long_field: str | None = None
    unit_fields: tuple[str, ...] = ()
    options: tuple[str, ...] = ()
    validation: str = ""

    def __post_init__(self) -> None:
        if not self.short_name:
            object.__setattr__(self, "short_name", self.name)


@dataclass(frozen=True)
class TaskGroup:
    """Tasks one leaderboard scores and takes together: one name for them all, one board, one zip.

    The group is the submission unit: its members' files go into one zip, and a submission for it
    needs every member. A task in no group is a unit of its own.

    Attributes:
        name: the group's name (``slo-superglue``), usable wherever a task name is.
        members: the task names, in the board's order.
        title: how reports and messages call it (``SloBench SuperGLUE``).
        board_names: (member, metric) → the name the leaderboard gives that number.
        average_parts: member → the metric of it that enters the board's ``Average``.
        average_description: that average in words, for reports.
    """

    name: str
    members: tuple[str, ...]
    title: str
    board_names: Mapping[tuple[str, str], str] = field(default_factory=dict)
    average_parts: Mapping[str, str] = field(default_factory=dict)
    average_description: str = ""

    def board(self, per_task: Mapping[str, Mapping[str, float]]) -> dict[str, float]:
        """The leaderboard's metric dictionary from the scores of (some of) the members, by task name;
        ``Average`` only when every member is scored."""
        return leaderboard(per_task, self.board_names, self.average_parts)


class Task(abc.ABC):
    """A SloBench task: loader + metrics + submission format around a :class:`TaskSpec`."""

    spec: TaskSpec
    submission_name_required = False  # whether the leaderboard looks this task's file up by name

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

    def first(self, examples: Sequence[Example], n: int) -> list[Example]:
        """The first ``n`` examples (all when ``n`` is 0) — the slice ``max_train_examples`` and
        ``max_eval_examples`` take. A task whose metric scores units of examples (``unit_fields``) ends
        it on a unit boundary (MultiRC: whole questions): a unit cut in two would be scored on part of it."""
        if not n or n >= len(examples):
            return list(examples)
        end = n
        if self.spec.unit_fields:
            key = self.spec.unit_fields[-1]

            def inside(i: int) -> bool:  # examples[i] continues the unit of examples[i - 1]
                return examples[i].inputs[key] == examples[i - 1].inputs[key]

            while 0 < end < len(examples) and inside(end):
                end -= 1
            if end == 0:  # n is shorter than the first unit: keep that whole unit rather than nothing
                end = n
                while end < len(examples) and inside(end):
                    end += 1
        return list(examples[:end])

    def examples_from_input(self, row: Mapping[str, Any], position: int) -> list[Example]:
        """The unlabelled examples of one input posted as a data row (a server's request): by default
        one example of the spec's ``text_fields``; a task whose rows hold several examples (MultiRC's
        passages) or need its own checks overrides this with its row parser.

        Raises:
            DataError: a field missing (``missing field 'x'``) or of the wrong type (``field 'x' ...``).
        """
        from slopeft.errors import DataError

        missing = [f for f in self.spec.text_fields if f not in row]
        if missing:
            raise DataError(
                f"input {position}: missing field {missing[0]!r}. {self.name} inputs need "
                f"{', '.join(self.spec.text_fields)}."
            )
        return [Example(position, {f: row[f] for f in self.spec.text_fields})]

    @abc.abstractmethod
    def metrics(self, predictions: Mapping[int, Any], examples: Sequence[Example]) -> dict[str, float]:
        """Scores ``predictions`` (idx → label) against labelled ``examples``."""

    def metric_statistics(
        self, predictions: Mapping[int, Any], examples: Sequence[Example]
    ) -> MetricStatistics | None:
        """Per-example sufficient statistics of :meth:`metrics` (:mod:`slopeft.metrics.statistics`), or
        None where the metrics are not sums over examples (MultiRC's exact match is per question).

        A bootstrap then scores its thousand resampled sets in one matrix product instead of a
        thousand metric calls. The default serves tasks with a label space whose metrics come from
        the confusion matrix (:meth:`metrics_from_confusion`); translation gives its own. It must
        agree with :meth:`metrics`: tests check every registered task draw by draw, and the bootstrap
        compares the two on the full set before it uses them.
        """
        from slopeft.metrics.classification import confusion_cells
        from slopeft.metrics.statistics import confusion_statistics

        labels = self.spec.labels
        if labels is None or self.spec.unit_fields:
            return None
        cells = confusion_cells(*self.aligned(predictions, examples), labels)
        k = len(labels)
        if self.metrics_from_confusion(np.bincount(cells, minlength=k * k).reshape(k, k)) is None:
            return None
        return confusion_statistics(cells, k, self.metrics_from_confusion)

    def metrics_from_confusion(self, confusion: np.ndarray) -> dict[str, np.ndarray] | None:
        """:meth:`metrics` from confusion counts, or None where the metrics need more than them.

        ``confusion`` is (..., K, K) over ``spec.labels`` (rows references, columns predictions);
        used by the default :meth:`metric_statistics`.
        """
        return None

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

    def template_fields(self, example: Example) -> dict[str, Any]:
        """What the spec's templates may name: the example's inputs, plus what a task derives from them."""
        return dict(example.inputs)

    def local_test_note(self) -> str | None:
        """What a check against the local test split cannot show, where it is not the leaderboard's own."""
        return None

    def count_rows(self, split: Split) -> str:
        """A human-readable row count for ``slopeft data list``."""
        return str(len(self.examples(split)))


TASKS: Registry[type[Task]] = Registry("task")
"""Registered task classes by name (``slo-superglue/cb``, ``si-nli``, ``mt/sl-en`` ...)."""

TASK_GROUPS: Registry[TaskGroup] = Registry("task group")
"""Registered task groups by name (``slo-superglue``): scored, averaged and submitted together."""


def group_of(task: str) -> TaskGroup | None:
    """The registered group ``task`` belongs to, or None."""
    return next((group for _, group in TASK_GROUPS.items() if task in group.members), None)


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
