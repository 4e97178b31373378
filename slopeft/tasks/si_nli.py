"""SI-NLI (CLARIN.SI 11356/1707): Slovene natural language inference.

The official dev split is not distributed with the data we can read, so ``val`` is a fixed,
seeded, label-stratified hold-out of ``train.tsv`` and ``train`` is the rest.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from sklearn.model_selection import train_test_split

from slopeft.data.readers import read_tsv
from slopeft.errors import DataError
from slopeft.evaluation.classification import nli_scores
from slopeft.tasks.base import TASKS, Example, Split, TaskSpec
from slopeft.tasks.line_based import LineSubmissionTask

NLI_LABELS = ("entailment", "neutral", "contradiction")
VAL_FRACTION = 0.1
VAL_SEED = 20240917  # fixed forever: changing it changes every reported SI-NLI val number


@TASKS.register("si-nli")
class SiNli(LineSubmissionTask):
    spec = TaskSpec(
        name="si-nli",
        kind="pair-classification",
        labels=NLI_LABELS,
        metric_names=("accuracy", *(f"{m}({c})" for c in NLI_LABELS for m in ("precision", "recall", "f1"))),
        main_metric="accuracy",
        dataset="si-nli",
        text_fields=("premise", "hypothesis"),
        description="Slovene NLI: entailment / neutral / contradiction",
    )
    drop_blank_lines = True  # the evaluator drops blank lines before counting
    bom_effect = (
        "it keeps the mark in front of the first label, rejects that label (\"Unrecognized predicted "
        "class in row 0\") and fails the submission."
    )
    submission_name_required = True

    def source_files(self, split: Split) -> list[Path]:
        name = "test-unlabelled.tsv" if split == "test" else "train.tsv"
        return [self.location.root / "si-nli" / name]

    def _load(self, split: Split) -> list[Example]:
        (path,) = self.source_files(split)
        labelled = split != "test"
        rows = read_tsv(path, ("premise", "hypothesis", "label") if labelled else ("premise", "hypothesis"))
        examples = []
        for idx, row in enumerate(rows):
            label = None
            if labelled:
                label = row["label"].strip().lower()
                if label not in NLI_LABELS:
                    raise DataError(
                        f"{path}, line {idx + 2}: unknown label {row['label']!r}. "
                        f"Legal labels: {', '.join(NLI_LABELS)}."
                    )
            examples.append(Example(idx, {"premise": row["premise"], "hypothesis": row["hypothesis"]}, label))
        if split == "test":
            return examples
        train, val = train_test_split(
            examples, test_size=VAL_FRACTION, random_state=VAL_SEED, stratify=[e.label for e in examples]
        )
        chosen = train if split == "train" else val
        return sorted(chosen, key=lambda e: e.idx)

    def metrics(self, predictions: Mapping[int, Any], examples: Sequence[Example]) -> dict[str, float]:
        return nli_scores(*self.aligned(predictions, examples), NLI_LABELS)

    def parse_line(self, line: str) -> str:
        label = line.strip().lower()  # the evaluator lower-cases before matching
        if label not in NLI_LABELS:
            raise ValueError(f"{line!r} is not one of {', '.join(NLI_LABELS)}")
        return label
