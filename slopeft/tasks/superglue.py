"""Slovene SuperGLUE (CLARIN.SI 11356/1380): BoolQ, CB, COPA, MultiRC, RTE, WSC.

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
import string
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from slopeft.data.readers import read_jsonl
from slopeft.errors import DataError, SubmissionError
from slopeft.evaluation.classification import accuracy, cb_scores, multirc_scores
from slopeft.tasks.base import TASK_GROUPS, TASKS, Example, Split, Task, TaskSpec, check_complete
from slopeft.tasks.labels import BINARY_CODEC, LabelCodec, boolean_codec, choice_codec

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


def _spec(
    name: str,
    kind: str,
    codec: LabelCodec,
    fields: tuple[str, ...],
    metrics=("accuracy",),
    main="accuracy",
    train_sets=ALL_TRAIN_SETS,
    description="",
) -> TaskSpec:
    val_sets = ("human", "machine") if "machine" in train_sets else ("human",)
    return TaskSpec(
        name=f"slo-superglue/{name}",
        kind=kind,
        labels=codec.labels,
        metric_names=metrics,
        main_metric=main,
        dataset="slo-superglue",
        train_sets=train_sets,
        val_sets=val_sets,
        text_fields=fields,
        description=description,
    )


@TASKS.register("slo-superglue/boolq")
class BoolQ(SuperGlueTask):
    folder = "BoolQ"
    codec = boolean_codec("true", "false")
    spec = _spec(
        "boolq",
        "pair-classification",
        codec,
        ("question", "passage"),
        description="yes/no question about a Wikipedia passage",
    )


@TASKS.register("slo-superglue/cb")
class CommitmentBank(SuperGlueTask):
    folder = "CB"
    codec = choice_codec(("entailment", "contradiction", "neutral"))
    spec = _spec(
        "cb",
        "pair-classification",
        codec,
        ("premise", "hypothesis"),
        metrics=("accuracy", "macro_f1", "average"),
        main="average",
        description="three-way entailment of an embedded clause",
    )

    def metrics(self, predictions: Mapping[int, Any], examples: Sequence[Example]) -> dict[str, float]:
        return cb_scores(*self.aligned(predictions, examples))


@TASKS.register("slo-superglue/copa")
class COPA(SuperGlueTask):
    folder = "COPA"
    codec = BINARY_CODEC
    spec = _spec(
        "copa",
        "multiple-choice",
        codec,
        ("premise", "question", "choice1", "choice2"),
        description="pick the more plausible cause/effect of a premise",
    )

    def _row_examples(self, row: dict, where: str, labelled: bool, origin: str) -> list[Example]:
        examples = super()._row_examples(row, where, labelled, origin)
        if row["question"] not in ("cause", "effect"):
            raise DataError(f"{where}: question is {row['question']!r}; COPA needs 'cause' or 'effect'.")
        return examples


@TASKS.register("slo-superglue/rte")
class RTE(SuperGlueTask):
    folder = "RTE"
    codec = choice_codec(("entailment", "not_entailment"))
    spec = _spec(
        "rte",
        "pair-classification",
        codec,
        ("premise", "hypothesis"),
        description="does the premise entail the hypothesis",
    )


_EDGE_PUNCTUATION = string.punctuation + "«»„“”‘’…–—"


def _span_words(text: str) -> str:
    return " ".join(w.strip(_EDGE_PUNCTUATION).lower() for w in text.split())


@TASKS.register("slo-superglue/wsc")
class WSC(SuperGlueTask):
    """Winograd schemas; span indices count whitespace-separated words of ``text``."""

    folder = "WSC"
    codec = boolean_codec("True", "False")
    spec = _spec(
        "wsc",
        "span-classification",
        codec,
        ("text", "span1_index", "span1_text", "span2_index", "span2_text"),
        train_sets=("human",),
        description="does the pronoun (span 2) refer to the noun phrase (span 1)",
    )

    def _row_examples(self, row: dict, where: str, labelled: bool, origin: str) -> list[Example]:
        target = row.get("target")
        if not isinstance(target, dict):
            raise DataError(f"{where}: no target object with span1/span2 index and text.")
        flat = {**row, **target}
        example = super()._row_examples(flat, where, labelled, origin)[0]
        words = row["text"].split()
        for span in ("span1", "span2"):
            index, text = flat[f"{span}_index"], flat[f"{span}_text"]
            if not isinstance(index, int) or not 0 <= index < len(words):
                raise DataError(f"{where}: {span}_index {index!r} is outside the text's {len(words)} words.")
            found = " ".join(words[index : index + len(text.split())])
            # Word tokens keep attached punctuation ("vlake," for span "vlake"): compare without it.
            if _span_words(found) != _span_words(text):
                raise DataError(
                    f"{where}: {span}_text {text!r} does not match words {index}.. of the text ({found!r}). "
                    "Span indices count whitespace-separated words; fix the index or the span text."
                )
        return [example]


@TASKS.register("slo-superglue/multirc")
class MultiRC(SuperGlueTask):
    """Multi-sentence reading comprehension, flattened to one example per answer option.

    Examples are keyed by the answer idx (unique across a file); ``inputs`` carry the
    passage and question idx needed to score exact match per question and to write the
    nested submission.
    """

    folder = "MultiRC"
    codec = BINARY_CODEC
    spec = _spec(
        "multirc",
        "answer-classification",
        codec,
        ("passage", "question", "answer"),
        metrics=("f1a", "em", "average"),
        main="average",
        description="is this answer option correct for the question about the passage",
    )

    def _row_examples(self, row: dict, where: str, labelled: bool, origin: str) -> list[Example]:
        passage = row.get("passage")
        if "idx" not in row or not isinstance(passage, dict) or "questions" not in passage:
            raise DataError(f"{where}: a MultiRC row needs idx and passage.text / passage.questions.")
        unescape = _mt_text if origin == "machine" else str
        passage_idx = _idx(row["idx"], where)
        examples = []
        for question in _items(passage["questions"]):
            question_idx = _idx(question.get("idx"), f"{where}, question")
            for answer in _items(question.get("answers", [])):
                if origin == "machine" and not answer.get("text"):
                    # 3 answers of the MT train set have no text: nothing to learn from, so drop them.
                    self.notes.append(f"dropped answer {answer.get('idx')} of {where}: it has no text")
                    continue
                inputs = {
                    "passage": unescape(passage.get("text", "")),
                    "question": unescape(question["question"]),
                    "answer": unescape(answer["text"]),
                    "passage_idx": passage_idx,
                    "question_idx": question_idx,
                }
                answer_where = f"{where}, question {question_idx}, answer {answer.get('idx')}"
                examples.append(
                    Example(
                        _idx(answer.get("idx"), answer_where),
                        inputs,
                        self._gold(answer, answer_where, labelled),
                        origin,
                    )
                )
        if not examples:
            raise DataError(f"{where}: passage {passage_idx} has no answers.")
        return examples

    def count_rows(self, split: Split) -> str:
        examples = self.examples(split)
        passages = {(e.origin, e.inputs["passage_idx"]) for e in examples}
        return f"{len(passages)} passages ({len(examples)} answers)"

    def metrics(self, predictions: Mapping[int, Any], examples: Sequence[Example]) -> dict[str, float]:
        references, preds = self.aligned(predictions, examples)
        return multirc_scores([e.inputs["question_idx"] for e in examples], references, preds)

    def submission_rows(self, predictions: Mapping[int, Any], examples: Sequence[Example]) -> list[dict]:
        passages: dict[int, dict[int, list]] = {}
        for e in examples:
            questions = passages.setdefault(e.inputs["passage_idx"], {})
            questions.setdefault(e.inputs["question_idx"], []).append(
                {"idx": e.idx, "label": int(predictions[e.idx])}
            )
        return [
            {
                "idx": p,
                "passage": {
                    "questions": [{"idx": q, "answers": answers} for q, answers in questions.items()]
                },
            }
            for p, questions in passages.items()
        ]

    def parse_submission(self, files: Mapping[str, bytes], examples: Sequence[Example]) -> dict[int, Any]:
        predictions = super().parse_submission(files, examples)
        # The evaluator scores EM per question idx: an answer filed under the wrong question or
        # passage would silently change EM, so the nesting must match the inputs'.
        where = {e.idx: (e.inputs["passage_idx"], e.inputs["question_idx"]) for e in examples}
        problems = []
        for row in _submission_rows(files, self.submission_name):
            for question in row["passage"]["questions"]:
                for answer in question["answers"]:
                    if where[answer["idx"]] != (row["idx"], question["idx"]):
                        passage, question_idx = where[answer["idx"]]
                        problems.append(
                            f"answer {answer['idx']} is under passage {row['idx']} question "
                            f"{question['idx']}, but belongs to passage {passage} question {question_idx}"
                        )
        _raise_problems(self.submission_name, problems)
        return predictions

    def _parse_rows(self, rows: list[dict], predictions: dict[int, Any], problems: list[str]) -> None:
        for line, row in enumerate(rows, start=1):
            try:
                questions = row["passage"]["questions"]
                if not isinstance(questions, list):
                    raise TypeError
                for question in questions:
                    for answer in question["answers"]:
                        self._add_prediction(
                            answer["idx"],
                            answer["label"],
                            f"line {line}, question {question['idx']}",
                            predictions,
                            problems,
                        )
            except (KeyError, TypeError):
                problems.append(
                    f"line {line}: not nested as "
                    '{"idx": p, "passage": {"questions": [{"idx": q, "answers": '
                    '[{"idx": a, "label": 0}]}]}}'
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


SUPERGLUE_TASKS = tuple(f"slo-superglue/{t}" for t in ("boolq", "cb", "copa", "multirc", "rte", "wsc"))
TASK_GROUPS["slo-superglue"] = SUPERGLUE_TASKS
