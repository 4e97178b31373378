"""How a task's examples are shown to a model: the per-kind mechanics over the templates each task declares.

Every task declares its presentation in its :class:`~slopeft.tasks.base.TaskSpec`: the text pair an
encoder classifies, the prompt a generative model continues, the Slovene label words (verbalizer) and,
for multiple choice, the fields holding the choices. This module only knows what each *kind* does with
them: encoders classify the (text_a, text_b) pair, or score one pair per choice; generative models
(causal and seq2seq) score one candidate continuation per label word or per choice, and generate a
translation after the prompt.

Templates are ``str.format`` strings over :meth:`~slopeft.tasks.base.Task.template_fields` and
``{label_words}``; a field may go through one filter or several (``{hypothesis:lower_first}``,
``{premise:strip_period|lower_first}``), the ones in :data:`FILTERS`.
"""

from __future__ import annotations

import string
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from slopeft.errors import ConfigError
from slopeft.tasks.base import Example, Task


def lower_first(text: str) -> str:
    return text[:1].lower() + text[1:] if text else text


FILTERS: dict[str, Callable[[str], str]] = {
    "lower_first": lower_first,  # a sentence continued mid-sentence ("..., da ana je doma")
    "strip_period": lambda text: text.rstrip().rstrip("."),  # a sentence about to be continued
    "strip_question_mark": lambda text: text.rstrip("?"),  # a question that gets exactly one "?"
}

# Natural language inference (CB, RTE, SI-NLI): does the premise entail the hypothesis?
NLI_PROMPT = (
    "{premise}\nVprašanje: Ali iz tega sledi, da {hypothesis:lower_first}?\nOdgovor ({label_words}):"
)
# A pair task that declares no prompt: both texts, then the answer cue with the label words.
DEFAULT_PROMPT = "{first}\n{second}\nOdgovor ({{label_words}}):"


class _TemplateFormatter(string.Formatter):
    def format_field(self, value: Any, format_spec: str) -> str:
        text = str(value)
        for name in filter(None, format_spec.split("|")):
            if name not in FILTERS:
                raise ConfigError(f"Unknown template filter {name!r}; known: {', '.join(FILTERS)}.")
            text = FILTERS[name](text)
        return text


_FORMATTER = _TemplateFormatter()


def render(template: str, fields: Mapping[str, Any], task: str = "a task") -> str:
    """``template`` filled from ``fields``; a field the template names but the example lacks is a ConfigError."""
    try:
        return _FORMATTER.vformat(template, (), fields)
    except KeyError as err:
        raise ConfigError(
            f"The template of {task} names the field {err.args[0]!r}, which its examples do not have "
            f"(they have {', '.join(sorted(fields))}). Fix the task's TaskSpec (pair, prompt)."
        ) from None


@dataclass(frozen=True)
class TaskFormat:
    """Presentation of one task's examples.

    Attributes:
        task: the task.
        verbalizer: label → label word for generative models (the task's words, overridable per run).
    """

    task: Task
    verbalizer: Mapping[object, str] = field(default_factory=dict)

    @classmethod
    def for_task(cls, task: Task, verbalizer: Mapping[object, str] | None = None) -> TaskFormat:
        words = dict(task.spec.verbalizer)
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
        return self.task.spec.long_field

    def _fields(self, example: Example, **extra: Any) -> dict[str, Any]:
        return {
            **self.task.template_fields(example),
            "label_words": " ali ".join(dict.fromkeys(self.verbalizer.values())),
            **extra,
        }

    def _render(self, template: str, example: Example, **extra: Any) -> str:
        return render(template, self._fields(example, **extra), self.task.name)

    def _pair_templates(self) -> tuple[str, str]:
        spec = self.task.spec
        if spec.pair is not None:
            return spec.pair
        if len(spec.text_fields) < 2:
            raise ConfigError(f"{spec.name} declares neither a pair template nor two text fields.")
        first, second = spec.text_fields[:2]
        return "{" + first + "}", "{" + second + "}"

    # -- encoders -------------------------------------------------------------------------------
    def text_pair(self, example: Example) -> tuple[str, str]:
        """(text_a, text_b) for a sequence-pair classifier; a long passage is always text_b."""
        if self.kind in ("multiple-choice", "translation"):
            raise ConfigError(f"{self.task.name} ({self.kind}) is not a pair-classification task.")
        first, second = self._pair_templates()
        return self._render(first, example), self._render(second, example)

    def choice_pairs(self, example: Example) -> list[tuple[str, str]]:
        """Multiple choice: one (context, choice) pair per choice."""
        context, choice = self._pair_templates()
        shown = self._render(context, example)
        return [(shown, self._render(choice, example, choice=example.inputs[c])) for c in self.task.spec.choices]

    # -- generative models ----------------------------------------------------------------------
    def prompt(self, example: Example) -> str:
        """The prompt a generative model continues."""
        template = self.task.spec.prompt
        if template is None:
            first, second = self._pair_templates()
            template = DEFAULT_PROMPT.format(first=first, second=second)
        return self._render(template, example)

    def candidates(self, example: Example) -> list[str]:
        """Continuations to score, aligned with :meth:`candidate_labels`."""
        if self.kind == "multiple-choice":
            return [" " + choice for _, choice in self.choice_pairs(example)]
        return [" " + self.verbalizer[label] for label in self.task.spec.labels]

    def candidate_labels(self) -> tuple[object, ...]:
        if self.kind == "multiple-choice":
            return tuple(range(len(self.task.spec.choices)))
        return tuple(self.task.spec.labels)

    def target(self, example: Example) -> str:
        """The gold continuation for training a generative model."""
        if self.kind == "translation":
            return " " + example.label
        return self.candidates(example)[self.candidate_labels().index(example.label)]
