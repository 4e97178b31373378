"""What the six Slovene SuperGLUE tasks share: one JSON object per row, the three training sets, jsonl submissions.

Training sets: ``human`` (the SloBench leaderboard's human-translated train), ``machine``
(Google-MT of the full English sets, no WSC) or ``combined`` (both, as in the Slovene
SuperGLUE paper). Validation is the leaderboard's human-translated val by default, so every
setting is scored on the same rows; ``val_set="machine"`` scores on the machine-translated
English dev set instead (BoolQ 3,270 rows against HT's 18, RTE 277 against 29: large enough to
separate methods). Test is always the leaderboard's unlabelled test inputs.
"""

from __future__ import annotations

import html
import json
import math
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from slopeft.data.readers import read_jsonl
from slopeft.errors import DataError, SubmissionError
from slopeft.metrics.classification import accuracy, accuracy_from_confusion
from slopeft.tasks.base import Example, Split, Task, TaskSpec, check_complete
from slopeft.tasks.labels import LabelCodec

TRAIN_FOLDERS = {
    "human": ("human-translated",),
    "machine": ("machine-translated",),
    "combined": ("human-translated", "machine-translated"),
}
ORIGIN = {"human-translated": "human", "machine-translated": "machine"}
ALL_TRAIN_SETS = ("human", "machine", "combined")
MAX_LISTED_PROBLEMS = 8


def _idx(value: Any, where: str) -> int:
    # MT MultiRC stores idx values as floats (4.0); anything non-integral (or NaN/inf) is corrupt.
    if (
        isinstance(value, bool)
        or not isinstance(value, int | float)
        or (isinstance(value, float) and not math.isfinite(value))
        or int(value) != value
    ):
        raise DataError(f"{where}: idx {_describe(value)} is not an integer. Every row needs an integer idx.")
    return int(value)


def _describe(value: Any) -> str:
    """A short, readable account of a bad field value for error messages."""
    if value is None:
        return "null"
    if isinstance(value, str):
        return "empty text" if not value.strip() else repr(value[:60])
    if isinstance(value, dict | list):
        return f"a JSON {'object' if isinstance(value, dict) else 'array'}"
    return repr(value)


def _text(container: Mapping, name: str, where: str, needs: str) -> str:
    """The non-empty string field ``name``; missing, null, empty or non-text values are a DataError."""
    if not isinstance(container, Mapping) or name not in container:
        raise DataError(f"{where}: missing field {name!r}. {needs}")
    value = container[name]
    if not isinstance(value, str) or not value.strip():
        raise DataError(f"{where}: field {name!r} is {_describe(value)}, not text. {needs}")
    return value


def _index(container: Mapping, name: str, where: str, needs: str) -> int:
    """The integer field ``name`` (a word index); anything else is a DataError."""
    if name not in container:
        raise DataError(f"{where}: missing field {name!r}. {needs}")
    value = container[name]
    if isinstance(value, bool) or not isinstance(value, int):
        raise DataError(f"{where}: field {name!r} is {_describe(value)}, not an integer. {needs}")
    return value


class SuperGlueTask(Task):
    """One Slovene SuperGLUE task stored as one JSON object per row."""

    folder: str  # the task's folder and submission file stem: BoolQ, CB, ...
    codec: LabelCodec
    board: Mapping[str, str]  # metric → the leaderboard's name for it ("CB F1 Score")
    board_part = "accuracy"  # the metric that enters the leaderboard's average
    submission_name_required = True  # the leaderboard looks the file up by name

    # -- loading ---------------------------------------------------------------------------
    def source_files(self, split: Split) -> list[Path]:
        base = self.location.root / "slo-superglue"
        if split == "test":
            return [base / "test-unlabelled" / f"{self.folder}.jsonl"]
        if split == "val":
            return [base / TRAIN_FOLDERS[self.val_set][0] / self.folder / "val.jsonl"]
        return [base / folder / self.folder / "train.jsonl" for folder in TRAIN_FOLDERS[self.train_set]]

    def _load(self, split: Split) -> list[Example]:
        examples: list[Example] = []
        for path in self.source_files(split):
            origin = ORIGIN.get(path.parent.parent.name, "human")
            rows = read_jsonl(path)
            seen: dict[int, int] = {}
            self._seen_groups: dict[tuple[str, int], int] = {}  # MultiRC passage/question idx → row
            for line, row in enumerate(rows, start=1):
                where = f"{path}, row {line}"
                self._row = line
                for example in self._row_examples(row, where, labelled=split != "test", origin=origin):
                    if example.idx in seen:
                        raise DataError(
                            f"{where}: idx {example.idx} already used by row {seen[example.idx]}. "
                            "Each idx must be unique within a file; restore the official file."
                        )
                    seen[example.idx] = line
                    examples.append(example)
        return examples

    #: Fields holding integers (word indices) rather than text.
    index_fields: tuple[str, ...] = ()

    def _needs(self) -> str:
        fields = ", ".join(
            f"{name} ({'an integer' if name in self.index_fields else 'non-empty text'})"
            for name in self.spec.text_fields
        )
        return f"{self.folder} rows need idx, {fields}; restore the row from the official file."

    def examples_from_input(self, row: Mapping[str, Any], position: int) -> list[Example]:
        # A posted SloBench JSONL line, read by the same row parser as the data files (unlabelled: a
        # posted label is ignored); a row without idx gets its position.
        row = dict(row) if "idx" in row else {"idx": position, **row}
        return self._row_examples(row, f"input {position}", labelled=False, origin="human")

    def _row_examples(self, row: dict, where: str, labelled: bool, origin: str) -> list[Example]:
        if "idx" not in row:
            raise DataError(f"{where}: no idx field. Every row needs an integer idx.")
        idx = _idx(row["idx"], where)
        inputs: dict[str, Any] = {}
        for name in self.spec.text_fields:
            check = _index if name in self.index_fields else _text
            inputs[name] = check(row, name, where, self._needs())
        return [Example(idx, inputs, self._gold(row, where, labelled), origin)]

    def _gold(self, row: Mapping, where: str, labelled: bool) -> Any:
        if not labelled:
            return None
        if "label" not in row or row["label"] is None:
            raise DataError(
                f"{where}: the label is missing. Training and validation rows need a label "
                f"({self.codec.legal})."
            )
        try:
            return self.codec.parse_gold(row["label"])
        except ValueError as err:
            raise DataError(f"{where}: unknown label ({err}). Legal labels: {self.codec.legal}.") from None

    # -- scoring ---------------------------------------------------------------------------
    def metrics(self, predictions: Mapping[int, Any], examples: Sequence[Example]) -> dict[str, float]:
        references, preds = self.aligned(predictions, examples)
        return {"accuracy": accuracy(references, preds)}

    def metrics_from_confusion(self, confusion: np.ndarray) -> dict[str, np.ndarray]:
        return {"accuracy": accuracy_from_confusion(confusion)}

    # -- submissions -----------------------------------------------------------------------
    @property
    def submission_name(self) -> str:
        return f"{self.folder}.jsonl"

    def submission_rows(self, predictions: Mapping[int, Any], examples: Sequence[Example]) -> list[dict]:
        return [{"idx": e.idx, "label": self.codec.write(predictions[e.idx])} for e in examples]

    def submission_contents(
        self, predictions: Mapping[int, Any], examples: Sequence[Example]
    ) -> dict[str, str]:
        check_complete(self.name, predictions, examples, "the predictions")
        rows = self.submission_rows(predictions, examples)
        return {self.submission_name: "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows)}

    def parse_submission(self, files: Mapping[str, bytes], examples: Sequence[Example]) -> dict[int, Any]:
        rows = _submission_rows(files, self.submission_name)
        problems: list[str] = []
        predictions: dict[int, Any] = {}
        self._parse_rows(rows, predictions, problems)
        _raise_problems(self.submission_name, problems)
        check_complete(self.name, predictions, examples, self.submission_name)
        return predictions

    def _parse_rows(self, rows: list[dict], predictions: dict[int, Any], problems: list[str]) -> None:
        for line, row in enumerate(rows, start=1):
            if "idx" not in row or "label" not in row:
                problems.append(f"line {line}: needs both idx and label")
                continue
            self._add_prediction(row["idx"], row["label"], f"line {line}", predictions, problems)

    def _add_prediction(
        self, idx: Any, label: Any, where: str, predictions: dict, problems: list[str]
    ) -> None:
        if isinstance(idx, bool) or not isinstance(idx, int):
            problems.append(f"{where}: idx {idx!r} is not an integer")
            return
        if idx in predictions:
            problems.append(f"{where}: idx {idx} appears more than once")
            return
        try:
            predictions[idx] = self.codec.parse_submitted(label)
        except ValueError as err:
            problems.append(f"{where}: illegal label ({err}; legal: {self.codec.legal})")


def _submission_rows(files: Mapping[str, bytes], name: str) -> list[dict]:
    from slopeft.tasks.reading import decode_submission, parse_submitted_jsonl

    if name not in files:
        raise SubmissionError(f"The submission has no {name}. Add it at the top level of the zip.")
    bom_effect = (
        "pandas.read_json then fails on the whole file (\"Expected object or value\") and the "
        "leaderboard rejects the submission."
    )
    return parse_submitted_jsonl(decode_submission(files[name], name, bom_effect), name)


def _raise_problems(name: str, problems: list[str]) -> None:
    if problems:
        shown = "; ".join(problems[:MAX_LISTED_PROBLEMS])
        more = (
            f" (and {len(problems) - MAX_LISTED_PROBLEMS} more)"
            if len(problems) > MAX_LISTED_PROBLEMS
            else ""
        )
        raise SubmissionError(
            f"{name} has {len(problems)} problem(s): {shown}{more}. Fix the file and re-check."
        )


def _spec(name: str, kind: str, codec: LabelCodec, fields: tuple[str, ...], **facts: Any) -> TaskSpec:
    """The spec of SuperGLUE task ``name``: the shared facts, then the task's own (``facts``)."""
    train_sets = facts.pop("train_sets", ALL_TRAIN_SETS)
    return TaskSpec(
        name=f"slo-superglue/{name}",
        kind=kind,
        labels=codec.labels,
        metric_names=facts.pop("metric_names", ("accuracy",)),
        main_metric=facts.pop("main_metric", "accuracy"),
        dataset="slo-superglue",
        train_sets=train_sets,
        val_sets=("human", "machine") if "machine" in train_sets else ("human",),
        text_fields=fields,
        short_name=name,
        **facts,
    )


def _mt_text(value: Any) -> str:
    # The MT MultiRC carries HTML entities (&quot;) and a few answers stored as numbers (1970.0).
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    return html.unescape(str(value))


def _items(container: Any, where: str, needs: str) -> list:
    # HT files store lists; MT files store objects keyed "0", "1", ... in position order.
    if isinstance(container, dict):
        if not all(isinstance(k, str) and k.isdigit() for k in container):
            raise DataError(f"{where}: an object keyed by position must use keys \"0\", \"1\", ...; found "
                            f"{', '.join(repr(k) for k in list(container)[:3])}. {needs}")
        items = [container[k] for k in sorted(container, key=int)]
    elif isinstance(container, list):
        items = list(container)
    else:
        raise DataError(f"{where} is {'missing' if container is None else _describe(container)}, not a list. {needs}")
    if not items:
        raise DataError(f"{where} is empty. {needs}")
    return items

