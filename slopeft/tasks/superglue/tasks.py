"""The six Slovene SuperGLUE tasks, each with its presentation and leaderboard names, and their group.

Everything a task is lives in its class: its spec (fields, labels, metrics, the text pair an encoder
reads, the prompt and label words a generative model gets), its loader's checks, its metric and its
names on the leaderboard. The group (:data:`SLO_SUPERGLUE`) and the dataset the six read are composed
from the classes at the end.
"""

from __future__ import annotations

import string
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from slopeft.data.catalogue import register_dataset
from slopeft.errors import DataError
from slopeft.metrics.classification import cb_scores, cb_scores_from_confusion, multirc_scores
from slopeft.tasks.base import TASK_GROUPS, TASKS, Example, Split, TaskGroup
from slopeft.tasks.formats import NLI_PROMPT
from slopeft.tasks.labels import BINARY_CODEC, boolean_codec, choice_codec
from slopeft.tasks.superglue.base import (
    SuperGlueTask,
    _describe,
    _idx,
    _items,
    _mt_text,
    _raise_problems,
    _spec,
    _submission_rows,
    _text,
)
from slopeft.tasks.superglue.dataset import superglue_dataset

NLI_PAIR = ("{premise}", "{hypothesis}")
# COPA: the premise joined to a choice by a Slovene connective ("ker" = because, "zato" = so).
COPA_CONNECTIVES = {"cause": "ker", "effect": "zato"}
SPAN_QUESTION = "Ali se »{span2_text}« nanaša na »{span1_text}«?"


@TASKS.register("slo-superglue/boolq")
class BoolQ(SuperGlueTask):
    folder = "BoolQ"
    codec = boolean_codec("true", "false")
    board = {"accuracy": "BoolQ Accuracy"}
    spec = _spec(
        "boolq",
        "pair-classification",
        codec,
        ("question", "passage"),
        description="yes/no question about a Wikipedia passage",
        verbalizer={False: "ne", True: "da"},
        prompt="{passage}\nVprašanje: {question:strip_question_mark}?\nOdgovor (da ali ne):",
        long_field="passage",
    )


@TASKS.register("slo-superglue/cb")
class CommitmentBank(SuperGlueTask):
    folder = "CB"
    codec = choice_codec(("entailment", "contradiction", "neutral"))
    board = {"accuracy": "CB Accuracy", "macro_f1": "CB F1 Score", "average": "CB Average"}
    board_part = "average"
    spec = _spec(
        "cb",
        "pair-classification",
        codec,
        ("premise", "hypothesis"),
        metric_names=("accuracy", "macro_f1", "average"),
        main_metric="average",
        description="three-way entailment of an embedded clause",
        verbalizer={"entailment": "da", "contradiction": "ne", "neutral": "morda"},
        pair=NLI_PAIR,
        prompt=NLI_PROMPT,
    )

    def metrics(self, predictions: Mapping[int, Any], examples: Sequence[Example]) -> dict[str, float]:
        return cb_scores(*self.aligned(predictions, examples))

    def metrics_from_confusion(self, confusion: np.ndarray) -> dict[str, np.ndarray]:
        return cb_scores_from_confusion(confusion)


@TASKS.register("slo-superglue/copa")
class COPA(SuperGlueTask):
    folder = "COPA"
    codec = BINARY_CODEC
    board = {"accuracy": "COPA Accuracy"}
    spec = _spec(
        "copa",
        "multiple-choice",
        codec,
        ("premise", "question", "choice1", "choice2"),
        description="pick the more plausible cause/effect of a premise",
        pair=("{premise:strip_period}, {connective}", "{choice:lower_first}"),
        prompt="{premise:strip_period}, {connective}",
        choices=("choice1", "choice2"),
    )

    def template_fields(self, example: Example) -> dict[str, Any]:
        return {**example.inputs, "connective": COPA_CONNECTIVES[example.inputs["question"]]}

    def _row_examples(self, row: dict, where: str, labelled: bool, origin: str) -> list[Example]:
        examples = super()._row_examples(row, where, labelled, origin)
        if row["question"] not in ("cause", "effect"):
            raise DataError(f"{where}: question is {row['question']!r}; COPA needs 'cause' or 'effect'.")
        return examples


@TASKS.register("slo-superglue/rte")
class RTE(SuperGlueTask):
    folder = "RTE"
    codec = choice_codec(("entailment", "not_entailment"))
    board = {"accuracy": "RTE Accuracy"}
    spec = _spec(
        "rte",
        "pair-classification",
        codec,
        ("premise", "hypothesis"),
        description="does the premise entail the hypothesis",
        verbalizer={"entailment": "da", "not_entailment": "ne"},
        pair=NLI_PAIR,
        prompt=NLI_PROMPT,
    )


def mark_wsc_spans(example: Example) -> str:
    """The WSC text with span 1 in *asterisks* and span 2 in [brackets].

    Marking the spans in the text (rather than pooling span tokens in a custom head) keeps a
    standard sequence-classification model, so every PEFT method and PEFT's own save/load work
    unchanged, and the same marked text serves encoders, causal and seq2seq models.
    """
    words = example.inputs["text"].split()
    spans = [
        (example.inputs["span1_index"], len(example.inputs["span1_text"].split()), "*", "*"),
        (example.inputs["span2_index"], len(example.inputs["span2_text"].split()), "[", "]"),
    ]
    for start, length, left, right in spans:
        end = start + length - 1
        words[start] = left + words[start]
        words[end] = words[end] + right
    return " ".join(words)


_EDGE_PUNCTUATION = string.punctuation + "«»„“”‘’…–—"


def _span_words(text: str) -> str:
    return " ".join(w.strip(_EDGE_PUNCTUATION).lower() for w in text.split())


@TASKS.register("slo-superglue/wsc")
class WSC(SuperGlueTask):
    """Winograd schemas; span indices count whitespace-separated words of ``text``."""

    folder = "WSC"
    index_fields = ("span1_index", "span2_index")
    codec = boolean_codec("True", "False")
    board = {"accuracy": "WSC Accuracy"}
    spec = _spec(
        "wsc",
        "span-classification",
        codec,
        ("text", "span1_index", "span1_text", "span2_index", "span2_text"),
        train_sets=("human",),
        description="does the pronoun (span 2) refer to the noun phrase (span 1)",
        verbalizer={False: "ne", True: "da"},
        pair=("{marked_text}", SPAN_QUESTION),
        prompt="{marked_text}\nVprašanje: " + SPAN_QUESTION + "\nOdgovor (da ali ne):",
    )

    def template_fields(self, example: Example) -> dict[str, Any]:
        return {**example.inputs, "marked_text": mark_wsc_spans(example)}

    def _row_examples(self, row: dict, where: str, labelled: bool, origin: str) -> list[Example]:
        target = row.get("target")
        if not isinstance(target, dict):
            raise DataError(
                f"{where}: target is {'missing' if 'target' not in row else _describe(target)}; WSC rows need a "
                "target object with span1_index, span1_text, span2_index and span2_text."
            )
        flat = {**row, **target}
        example = super()._row_examples(flat, where, labelled, origin)[0]
        words = flat["text"].split()
        for span in ("span1", "span2"):
            index, text = flat[f"{span}_index"], flat[f"{span}_text"]
            if not 0 <= index < len(words):
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
    board = {"f1a": "MultiRC F1a Score", "em": "MultiRC EM", "average": "MultiRC Average"}
    board_part = "average"
    spec = _spec(
        "multirc",
        "answer-classification",
        codec,
        ("passage", "question", "answer"),
        metric_names=("f1a", "em", "average"),
        main_metric="average",
        description="is this answer option correct for the question about the passage",
        verbalizer={0: "ne", 1: "da"},
        pair=("{question} {answer}", "{passage}"),
        prompt="{passage}\nVprašanje: {question}\nAli je odgovor »{answer}« pravilen?\nOdgovor (da ali ne):",
        long_field="passage",
        unit_fields=("passage_idx", "question_idx"),  # exact match is scored per question
    )

    def _row_examples(self, row: dict, where: str, labelled: bool, origin: str) -> list[Example]:
        needs = (
            "A MultiRC row is {idx, passage: {text, questions: [{idx, question, answers: [{idx, text, label}]}]}}; "
            "restore it from the official file."
        )
        if "idx" not in row:
            raise DataError(f"{where}: no idx field. {needs}")
        passage_idx = self._group_idx("passage", row["idx"], where)
        passage = row.get("passage")
        if not isinstance(passage, dict):
            raise DataError(f"{where}: passage is {'missing' if 'passage' not in row else _describe(passage)}. {needs}")
        unescape = _mt_text if origin == "machine" else str
        text = unescape(_text(passage, "text", f"{where}, passage", needs))
        examples = []
        for q_number, question in enumerate(_items(passage.get("questions"), f"{where}, passage.questions", needs)):
            q_where = f"{where}, question {q_number + 1}"
            if not isinstance(question, dict):
                raise DataError(f"{q_where} is {_describe(question)}, not an object. {needs}")
            if "idx" not in question:
                raise DataError(f"{q_where}: no idx field. {needs}")
            question_idx = self._group_idx("question", question["idx"], q_where)
            question_text = unescape(_text(question, "question", q_where, needs))
            for a_number, answer in enumerate(_items(question.get("answers"), f"{q_where}, answers", needs)):
                answer_where = f"{q_where} (idx {question_idx}), answer {a_number + 1}"
                if not isinstance(answer, dict):
                    raise DataError(f"{answer_where} is {_describe(answer)}, not an object. {needs}")
                if origin == "machine" and not answer.get("text"):
                    # 3 answers of the MT train set have no text: nothing to learn from, so drop them.
                    self.notes.append(f"dropped answer {answer.get('idx')} of {where}: it has no text")
                    continue
                if "idx" not in answer:
                    raise DataError(f"{answer_where}: no idx field. {needs}")
                if origin == "machine" and isinstance(answer["text"], int | float) and not isinstance(
                    answer["text"], bool
                ):
                    answer_text = _mt_text(answer["text"])  # a few MT answers are numbers (1970.0)
                else:
                    answer_text = unescape(_text(answer, "text", answer_where, needs))
                inputs = {
                    "passage": text,
                    "question": question_text,
                    "answer": answer_text,
                    "passage_idx": passage_idx,
                    "question_idx": question_idx,
                }
                examples.append(
                    Example(
                        _idx(answer["idx"], answer_where),
                        inputs,
                        self._gold(answer, answer_where, labelled),
                        origin,
                    )
                )
        if not examples:
            raise DataError(f"{where}: passage {passage_idx} has no answers. {needs}")
        return examples

    def _group_idx(self, kind: str, value: Any, where: str) -> int:
        # Exact match is scored per question idx and submissions nest answers by passage and question
        # idx: a repeated one would merge two questions (or passages) silently.
        idx = _idx(value, where)
        seen = getattr(self, "_seen_groups", {})
        if (kind, idx) in seen:
            raise DataError(
                f"{where}: {kind} idx {idx} already used by row {seen[(kind, idx)]}. Each {kind} idx must be "
                "unique within a file; restore the official file."
            )
        seen[(kind, idx)] = getattr(self, "_row", 0)
        return idx

    def count_rows(self, split: Split) -> str:
        examples = self.examples(split)
        passages = {(e.origin, e.inputs["passage_idx"]) for e in examples}
        return f"{len(passages)} passages ({len(examples)} answers)"

    def metrics(self, predictions: Mapping[int, Any], examples: Sequence[Example]) -> dict[str, float]:
        references, preds = self.aligned(predictions, examples)
        return multirc_scores([e.inputs["question_idx"] for e in examples], references, preds)

    def metrics_from_confusion(self, confusion: np.ndarray) -> None:
        return None  # exact match is per question: it needs more than the pair counts

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


#: The six, in the leaderboard's order (the order its average sums them in).
SUPERGLUE_TASKS: tuple[type[SuperGlueTask], ...] = (BoolQ, CommitmentBank, COPA, MultiRC, RTE, WSC)
#: The task folders (and submission file stems) of the distribution; the Google-MT part lacks WSC.
FOLDERS = tuple(task.folder for task in SUPERGLUE_TASKS)
MACHINE_FOLDERS = tuple(task.folder for task in SUPERGLUE_TASKS if "machine" in task.spec.train_sets)

SLO_SUPERGLUE = TaskGroup(
    name="slo-superglue",
    members=tuple(task.spec.name for task in SUPERGLUE_TASKS),
    title="SloBench SuperGLUE",
    board_names={(task.spec.name, metric): name for task in SUPERGLUE_TASKS for metric, name in task.board.items()},
    average_parts={task.spec.name: task.board_part for task in SUPERGLUE_TASKS},
    average_description="mean of BoolQ, CB average, COPA, MultiRC average, RTE and WSC",
)
TASK_GROUPS.add(SLO_SUPERGLUE.name, SLO_SUPERGLUE)
register_dataset(superglue_dataset(FOLDERS, MACHINE_FOLDERS))


def superglue_leaderboard(per_task: dict[str, dict[str, float]]) -> dict[str, float]:
    """The leaderboard's metric dictionary from per-task scores keyed by folder (BoolQ, CB, ...), as the
    evaluator keys them. ``Average`` is present only when all six tasks are scored, as on the leaderboard."""
    by_folder = {task.folder: task.spec.name for task in SUPERGLUE_TASKS}
    return SLO_SUPERGLUE.board({by_folder[folder]: scores for folder, scores in per_task.items()})
