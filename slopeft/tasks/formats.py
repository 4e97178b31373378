"""How each task's examples are shown to a model: text pairs for encoders, prompts and
candidate continuations for generative models.

Encoders classify (text_a, text_b) pairs; generative models (causal and seq2seq) score one
candidate continuation per label (Slovene label words, configurable) or per COPA choice, and
generate translations after a prompt. Prompts are Slovene because the tasks are.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

from slopeft.errors import ConfigError
from slopeft.tasks.base import Example, Task

# Slovene label words per label; a causal/seq2seq model predicts the label whose word it finds likeliest.
DEFAULT_VERBALIZERS: dict[str, dict[object, str]] = {
    "slo-superglue/boolq": {False: "ne", True: "da"},
    "slo-superglue/cb": {"entailment": "da", "contradiction": "ne", "neutral": "morda"},
    "slo-superglue/rte": {"entailment": "da", "not_entailment": "ne"},
    "slo-superglue/wsc": {False: "ne", True: "da"},
    "slo-superglue/multirc": {0: "ne", 1: "da"},
    "si-nli": {"entailment": "da", "neutral": "morda", "contradiction": "ne"},
}

# COPA: the premise joined to a choice by a Slovene connective ("ker" = because, "zato" = so).
COPA_CONNECTIVES = {"cause": "ker", "effect": "zato"}

LANGUAGE_NAMES = {"sl": ("slovenščine", "Slovensko"), "en": ("angleščine", "Angleško")}
LANGUAGE_TARGETS = {"sl": "slovenščino", "en": "angleščino"}


def _lower_first(text: str) -> str:
    return text[:1].lower() + text[1:] if text else text


def _copa_premise(example: Example) -> str:
    premise = example.inputs["premise"].rstrip().rstrip(".")
    return f"{premise}, {COPA_CONNECTIVES[example.inputs['question']]}"


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


def _wsc_question(example: Example) -> str:
    return f"Ali se »{example.inputs['span2_text']}« nanaša na »{example.inputs['span1_text']}«?"


@dataclass(frozen=True)
class TaskFormat:
    """Presentation of one task's examples.

    Attributes:
        task: the task.
        verbalizer: label → label word for generative models (Slovene defaults, override per run).
        long_field: the input field truncated first when an input is too long (BoolQ/MultiRC passages).
    """

    task: Task
    verbalizer: Mapping[object, str] = field(default_factory=dict)

    @classmethod
    def for_task(cls, task: Task, verbalizer: Mapping[object, str] | None = None) -> TaskFormat:
        words = dict(DEFAULT_VERBALIZERS.get(task.name, {}))
        if verbalizer:
            unknown = set(verbalizer) - set(task.spec.labels or ())
            if unknown:
                raise ConfigError(
                    f"Verbalizer labels {sorted(map(str, unknown))} are not labels of {task.name} "
                    f"({task.spec.labels})."
                )
            words.update(verbalizer)
        return cls(task, words)

    @property
    def kind(self) -> str:
        return self.task.spec.kind

    @property
    def long_field(self) -> str | None:
        return "passage" if "passage" in self.task.spec.text_fields else None

    # -- encoders -------------------------------------------------------------------------------
    def text_pair(self, example: Example) -> tuple[str, str]:
        """(text_a, text_b) for a sequence-pair classifier; a long passage is always text_b."""
        inputs = example.inputs
        if self.kind == "span-classification":
            return mark_wsc_spans(example), _wsc_question(example)
        if self.kind == "answer-classification":
            return f"{inputs['question']} {inputs['answer']}", inputs["passage"]
        if self.kind == "pair-classification":
            first, second = self.task.spec.text_fields
            return inputs[first], inputs[second]
        raise ConfigError(f"{self.task.name} ({self.kind}) is not a pair-classification task.")

    def choice_pairs(self, example: Example) -> list[tuple[str, str]]:
        """COPA: one (premise + connective, choice) pair per choice."""
        premise = _copa_premise(example)
        return [(premise, _lower_first(example.inputs[c])) for c in ("choice1", "choice2")]

    # -- generative models ----------------------------------------------------------------------
    def prompt(self, example: Example, passage: str | None = None) -> str:
        """The prompt a generative model continues; ``passage`` replaces a (truncated) long field."""
        i = dict(example.inputs)
        if passage is not None:
            i["passage"] = passage
        name = self.task.name
        if self.kind == "translation":
            source, target = self.task.source_language, self.task.target_language
            return (
                f"Prevedi iz {LANGUAGE_NAMES[source][0]} v {LANGUAGE_TARGETS[target]}.\n"
                f"{LANGUAGE_NAMES[source][1]}: {i['source']}\n{LANGUAGE_NAMES[target][1]}:"
            )
        if self.kind == "multiple-choice":
            return _copa_premise(example)
        if name == "slo-superglue/boolq":
            return f"{i['passage']}\nVprašanje: {i['question'].rstrip('?')}?\nOdgovor (da ali ne):"
        if self.kind == "answer-classification":
            return (
                f"{i['passage']}\nVprašanje: {i['question']}\nAli je odgovor »{i['answer']}« pravilen?\n"
                "Odgovor (da ali ne):"
            )
        if self.kind == "span-classification":
            return f"{mark_wsc_spans(example)}\nVprašanje: {_wsc_question(example)}\nOdgovor (da ali ne):"
        options = " ali ".join(dict.fromkeys(self.verbalizer.values()))
        return (
            f"{i['premise']}\nVprašanje: Ali iz tega sledi, da {_lower_first(i['hypothesis'])}?\n"
            f"Odgovor ({options}):"
        )

    def candidates(self, example: Example) -> list[str]:
        """Continuations to score, aligned with :meth:`candidate_labels`."""
        if self.kind == "multiple-choice":
            return [" " + _lower_first(example.inputs[c]) for c in ("choice1", "choice2")]
        return [" " + self.verbalizer[label] for label in self.task.spec.labels]

    def candidate_labels(self) -> tuple[object, ...]:
        if self.kind == "multiple-choice":
            return (0, 1)
        return tuple(self.task.spec.labels)

    def target(self, example: Example) -> str:
        """The gold continuation for training a generative model."""
        if self.kind == "translation":
            return " " + example.label
        return self.candidates(example)[self.candidate_labels().index(example.label)]
