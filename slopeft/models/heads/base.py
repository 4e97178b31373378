"""The head interface and the (task kind, model family) → head table."""

from __future__ import annotations

import abc
from collections.abc import Iterator, Mapping, Sequence
from typing import Any, ClassVar

import torch
from transformers import PreTrainedModel, PreTrainedTokenizerBase

from slopeft.errors import ConfigError
from slopeft.tasks.base import Example
from slopeft.tasks.formats import TaskFormat

Features = dict[str, Any]


class Head(abc.ABC):
    """Encodes a task's examples for one model family and decodes the model's outputs to labels.

    Args:
        task_format: how the task's examples are presented.
        tokenizer: the model's tokenizer.
        max_length: the longest input in tokens; longer inputs are cut on the passage side.
        input_prefix: text some models expect before every input (e5: ``"query: "``).
        family: the model family (``encoder``, ``causal``, ``seq2seq``).
    """

    auto_class: str  # the transformers Auto class that loads a model for this head
    #: PEFT's task type for a model of each family with this head (absent: PEFT has none, e.g. multiple choice).
    peft_task_types: ClassVar[Mapping[str, str]] = {}

    def __init__(
        self,
        task_format: TaskFormat,
        tokenizer: PreTrainedTokenizerBase,
        max_length: int = 256,
        input_prefix: str = "",
        family: str = "encoder",
    ) -> None:
        self.family = family
        self.format = task_format
        self.task = task_format.task
        self.tokenizer = tokenizer
        model_limit = getattr(tokenizer, "model_max_length", None) or max_length
        # Tokenizers without a limit report a huge sentinel (1e30); a real limit caps max_length.
        self.max_length = min(max_length, model_limit) if model_limit < 1_000_000 else max_length
        self.input_prefix = input_prefix
        self.truncated = 0  # examples cut to max_length by the last encode()

    @classmethod
    def peft_task_type_for(cls, family: str) -> str | None:
        """PEFT's task type for this head on a ``family`` model (``SEQ_CLS``, ``CAUSAL_LM`` ...), or None."""
        return cls.peft_task_types.get(family)

    @property
    def peft_task_type(self) -> str | None:
        """PEFT's task type for this head's model, or None where PEFT has none (multiple choice)."""
        return self.peft_task_type_for(self.family)

    def feature_length(self, feature: Features) -> int:
        """The tokens of one encoded training example: what length-grouped batching sorts by."""
        labels = feature.get("labels")
        return len(feature["input_ids"]) + (len(labels) if isinstance(labels, list) else 0)

    def model_kwargs(self) -> dict[str, Any]:
        """Extra ``from_pretrained`` arguments (e.g. the number of labels)."""
        return {}

    def load_model(self, path: str, **kwargs: Any) -> PreTrainedModel:
        import transformers

        # slopeft reports new head modules itself; transformers' load table and bars are noise here.
        transformers.logging.set_verbosity_error()
        transformers.utils.logging.disable_progress_bar()
        auto = getattr(transformers, self.auto_class)
        loaded = auto.from_pretrained(path, **self.model_kwargs(), **kwargs)
        self.after_load(loaded[0] if isinstance(loaded, tuple) else loaded, path)
        return loaded

    def after_load(self, model: PreTrainedModel, path: str) -> None:
        """Adjusts a model just built for ``path`` (by :meth:`load_model`, or by a server that builds
        the same model around shared weights); nothing by default."""

    def input_tokens(self, example: Example) -> int:
        """Tokens of ``example``'s input before any cut to ``max_length`` (the longest, for several choices)."""
        raise NotImplementedError(f"{type(self).__name__} does not count input tokens")

    @abc.abstractmethod
    def encode(self, examples: Sequence[Example], with_labels: bool = True) -> list[Features]:
        """Token features per example; with labels, ``model(**collate(f)).loss`` is the training loss."""

    @abc.abstractmethod
    def collate(self, features: Sequence[Features]) -> dict[str, torch.Tensor]:
        """Pads a list of features to one batch (dynamic padding: to the longest in the batch)."""

    @abc.abstractmethod
    def predict(
        self, model: PreTrainedModel, examples: Sequence[Example], batch_size: int = 16
    ) -> dict[int, Any]:
        """Predicted task labels (idx → label) for ``examples``."""

    def batches(self, items: Sequence[Any], batch_size: int) -> Iterator[Sequence[Any]]:
        for start in range(0, len(items), batch_size):
            yield items[start : start + batch_size]


PAD_MULTIPLE = 8


def pad(rows: Sequence[Sequence[int]], value: int, left: bool = False) -> torch.Tensor:
    """Pads integer rows to the longest, rounded up to a multiple of 8; ``left`` pads in front.

    Rounding keeps the number of distinct batch shapes small: CPU kernels (oneDNN) and the
    allocator cache per shape, and dozens of one-off shapes cost time and resident memory.
    """
    width = -(-max(len(r) for r in rows) // PAD_MULTIPLE) * PAD_MULTIPLE
    padded = [
        ([value] * (width - len(r)) + list(r)) if left else (list(r) + [value] * (width - len(r)))
        for r in rows
    ]
    return torch.tensor(padded, dtype=torch.long)


HEADS: dict[tuple[str, str], type[Head]] = {}
"""(task kind, model family) → head class; filled by the head modules."""


def build_head(
    task_format: TaskFormat,
    tokenizer: PreTrainedTokenizerBase,
    family: str,
    max_length: int = 256,
    input_prefix: str = "",
) -> Head:
    """The head for ``task_format``'s task on a ``family`` model, ready to encode and predict."""
    return select_head(task_format, family)(
        task_format, tokenizer, max_length=max_length, input_prefix=input_prefix, family=family
    )


def select_head(task_format: TaskFormat, family: str) -> type[Head]:
    """The head for this task on this model family, or a ConfigError naming what would work."""
    key = (task_format.kind, family)
    if key not in HEADS:
        families = sorted(f for k, f in HEADS if k == task_format.kind)
        raise ConfigError(
            f"{task_format.task.name} ({task_format.kind}) cannot run on {'an' if family[0] in 'aeiou' else 'a'} {family} model; "
            f"use a {' or '.join(families)} model."
        )
    return HEADS[key]
