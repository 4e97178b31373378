"""SI-NLI (CLARIN.SI 11356/1707): Slovene natural language inference.

The official dev split is not distributed with the data we can read, so ``val`` is a fixed,
seeded, label-stratified hold-out of ``train.tsv`` and ``train`` is the rest.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
from sklearn.model_selection import train_test_split

from slopeft.data.catalogue import Dataset, Source, register_dataset
from slopeft.data.convert import convert_si_nli
from slopeft.data.readers import read_tsv
from slopeft.errors import DataError
from slopeft.metrics.classification import nli_scores, nli_scores_from_confusion
from slopeft.tasks.base import TASKS, Example, Split, TaskSpec
from slopeft.tasks.formats import NLI_PROMPT
from slopeft.tasks.line_based import LineSubmissionTask

NLI_LABELS = ("entailment", "neutral", "contradiction")
VAL_FRACTION = 0.1
VAL_SEED = 20240917  # fixed forever: changing it changes every reported SI-NLI val number
_ONCE = ("Each pair must appear once (a repeat could land in both the training and the validation rows); remove "
         "the repeat or restore the official file.")

_SI_NLI = "https://huggingface.co/datasets/cjvt/si_nli/resolve/refs%2Fconvert%2Fparquet/public/"
_SI_NLI_EVIDENCE = (
    "huggingface.co/datasets/cjvt/si_nli tree refs/convert/parquet (commit 6f28095 moved "
    "public/si_nli-<split>.parquet to public/<split>/0000.parquet); dataset card cites "
    "http://hdl.handle.net/11356/1707. The CLARIN.SI bitstream's file name could not be verified."
)
DATASET = register_dataset(
    Dataset(
        name="si-nli",
        probe="si-nli/train.tsv",
        layout="  <root>/si-nli/train.tsv\n  <root>/si-nli/test-unlabelled.tsv",
        sources=(
            Source(
                "train",
                _SI_NLI + "train/0000.parquet",
                None,
                "CC BY-NC-SA 4.0 (dataset card; the CLARIN.SI record 11356/1707 is the original)",
                "SI-NLI training split, Hugging Face's Parquet conversion of cjvt/si_nli -> si-nli/train.tsv",
                _SI_NLI_EVIDENCE,
            ),
            Source(
                "test",
                _SI_NLI + "test/0000.parquet",
                None,
                "CC BY-NC-SA 4.0 (dataset card; the CLARIN.SI record 11356/1707 is the original)",
                "SI-NLI test pairs without labels (the SloBench test inputs) -> si-nli/test-unlabelled.tsv",
                _SI_NLI_EVIDENCE,
            ),
        ),
        convert=convert_si_nli,
    )
)


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
        verbalizer={"entailment": "da", "neutral": "morda", "contradiction": "ne"},
        pair=("{premise}", "{hypothesis}"),
        prompt=NLI_PROMPT,
        validation="slopeft's fixed 10% hold-out of train.tsv",
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
        seen_ids: dict[str, int] = {}
        seen_pairs: dict[tuple[str, str], int] = {}
        for idx, row in enumerate(rows):
            label = None
            if labelled:
                # A row twice would be split into both training and validation: a score on seen pairs.
                line = idx + 2
                pair_id, pair = (row.get("pair_id") or "").strip(), (row["premise"].strip(), row["hypothesis"].strip())
                if pair_id and pair_id in seen_ids:
                    raise DataError(f"{path}, line {line}: pair_id {pair_id} already used on line {seen_ids[pair_id]}. "
                                    + _ONCE)
                if pair in seen_pairs:
                    raise DataError(f"{path}, line {line}: the same premise and hypothesis as line {seen_pairs[pair]}. "
                                    + _ONCE)
                seen_ids[pair_id], seen_pairs[pair] = line, line
                label = row["label"].strip().lower()
                if label not in NLI_LABELS:
                    raise DataError(
                        f"{path}, line {idx + 2}: unknown label {row['label']!r}. "
                        f"Legal labels: {', '.join(NLI_LABELS)}."
                    )
            examples.append(Example(idx, {"premise": row["premise"], "hypothesis": row["hypothesis"]}, label))
        if split == "test":
            return examples
        try:
            train, val = train_test_split(
                examples, test_size=VAL_FRACTION, random_state=VAL_SEED, stratify=[e.label for e in examples]
            )
        except ValueError as err:  # too few rows of a label for a stratified 10% hold-out
            counts = ", ".join(f"{label} {sum(e.label == label for e in examples)}" for label in NLI_LABELS)
            raise DataError(
                f"{path} cannot be split into training and validation rows ({err}). The validation split is a "
                f"stratified {VAL_FRACTION:.0%} of the file, so every label needs at least 2 rows and the 10% at "
                f"least one row per label (found {len(examples)} rows: {counts}). Use the official train.tsv."
            ) from None
        chosen = train if split == "train" else val
        return sorted(chosen, key=lambda e: e.idx)

    def metrics(self, predictions: Mapping[int, Any], examples: Sequence[Example]) -> dict[str, float]:
        return nli_scores(*self.aligned(predictions, examples), NLI_LABELS)

    def metrics_from_confusion(self, confusion: np.ndarray) -> dict[str, np.ndarray]:
        return nli_scores_from_confusion(confusion, NLI_LABELS)

    def parse_line(self, line: str) -> str:
        label = line.strip().lower()  # the evaluator lower-cases before matching
        if label not in NLI_LABELS:
            raise ValueError(f"{line!r} is not one of {', '.join(NLI_LABELS)}")
        return label
