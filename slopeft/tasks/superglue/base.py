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
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from slopeft.data.readers import decode_text, parse_jsonl, read_jsonl
from slopeft.errors import DataError, SubmissionError
from slopeft.metrics.classification import accuracy
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
    # MT MultiRC stores idx values as floats (4.0); anything non-integral is corrupt.
    if isinstance(value, bool) or not isinstance(value, int | float) or int(value) != value:
        raise DataError(f"{where}: idx {value!r} is not an integer. Every row needs an integer idx.")
    return int(value)


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
            for line, row in enumerate(rows, start=1):
                where = f"{path}, row {line}"
                for example in self._row_examples(row, where, labelled=split != "test", origin=origin):
                    if example.idx in seen:
                        raise DataError(
                            f"{where}: idx {example.idx} already used by row {seen[example.idx]}. "
                            "Each idx must be unique within a file; restore the official file."
                        )
                    seen[example.idx] = line
                    examples.append(example)
        return examples

    def _row_examples(self, row: dict, where: str, labelled: bool, origin: str) -> list[Example]:
        if "idx" not in row:
            raise DataError(f"{where}: no idx field. Every row needs an integer idx.")
        inputs = {}
        for name in self.spec.text_fields:
            if name not in row:
                raise DataError(
                    f"{where}: missing field {name!r}. {self.folder} rows need "
                    f"{', '.join(self.spec.text_fields)}."
                )
            inputs[name] = row[name]
        return [Example(_idx(row["idx"], where), inputs, self._gold(row, where, labelled), origin)]

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
    if name not in files:
        raise SubmissionError(f"The submission has no {name}. Add it at the top level of the zip.")
    return parse_jsonl(decode_text(files[name], name, SubmissionError), name, SubmissionError)


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


def _items(container: Any) -> list:
    # HT files store lists; MT files store objects keyed "0", "1", ... in position order.
    if isinstance(container, dict):
        return [container[k] for k in sorted(container, key=lambda k: int(k))]
    return list(container)
