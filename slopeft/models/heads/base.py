"""The head interface and the (task kind, model family) → head table."""

from __future__ import annotations

import abc
import copy
from collections.abc import Iterator, Mapping, Sequence
from typing import Any, ClassVar

import torch
from transformers import PreTrainedModel, PreTrainedTokenizerBase

from slopeft.errors import ConfigError
from slopeft.methods.base import AddedPositions, Method
from slopeft.models.positions import PositionLimits
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
        positions: the model's position limits (:func:`slopeft.models.positions.position_limits`);
            None: only ``max_length`` and the tokenizer's limit bound the input.

    The text of an input gets :attr:`text_budget` tokens: ``min(max_length, the tokenizer's limit,
    the model's positions)`` less the positions the method adds in front of it. A head built by
    :func:`build_head` assumes a method that adds nothing; :meth:`for_method` gives the head for a
    method (``Method.added_positions``), so that head and method agree on that number.
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
        positions: PositionLimits | None = None,
    ) -> None:
        self.family = family
        self.format = task_format
        self.task = task_format.task
        self.tokenizer = tokenizer
        self.requested_max_length = max_length
        self.positions = positions or PositionLimits()
        model_limit = getattr(tokenizer, "model_max_length", None) or max_length
        # Tokenizers without a limit report a huge sentinel (1e30); a real limit caps max_length.
        self.tokenizer_limit = model_limit if model_limit < 1_000_000 else None
        self.added = AddedPositions()
        self.added_by = ""  # the method that adds them (for messages)
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

    # -- the budget ----------------------------------------------------------------------------
    @property
    def sequence_limit(self) -> int:
        """The longest sequence the model is given: ``min(max_length, tokenizer limit, model positions)``."""
        limits = [self.requested_max_length, self.tokenizer_limit, self.positions.input]
        return min(limit for limit in limits if limit is not None)

    @property
    def length_cap(self) -> str | None:
        """Why inputs are cut below the requested ``max_length`` (e.g. "the model's 512 positions"), or
        None when the requested length holds. A user asking for 1,024 tokens of a 512-position model
        is told so rather than finding out from the scores."""
        if self.sequence_limit >= self.requested_max_length:
            return None
        if self.positions.input is not None and self.positions.input == self.sequence_limit:
            return f"the model's {self.positions.input} positions"
        return f"the tokenizer's limit of {self.tokenizer_limit} tokens"

    def length_cap_note(self, option: str = "training.max_length") -> str | None:
        """One line saying that ``option`` was lowered to what the model takes, or None."""
        cap = self.length_cap
        if cap is None:
            return None
        return (
            f"{option} {self.requested_max_length} is more than this model takes: inputs are cut at "
            f"{self.sequence_limit} tokens ({cap})."
        )

    @property
    def text_budget(self) -> int:
        """Tokens for an input's text: :attr:`sequence_limit` less the positions the method adds."""
        budget = self.sequence_limit - self.added.input
        if budget <= 0:
            raise ConfigError(self._budget_message("the input's text", budget))
        return budget

    @property
    def max_length(self) -> int:
        """The longest text of an input in tokens (:attr:`text_budget`)."""
        return self.text_budget

    def for_method(self, method: Method) -> Head:
        """This head for a model adapted by ``method``: its text leaves room for what the method adds.

        Raises:
            ConfigError: the method leaves no room for text (or for what the head generates).
        """
        head = copy.copy(self)
        head.added = method.added_positions(self.family)
        head.added_by = method.name
        head.check_budget()
        return head

    def check_budget(self) -> None:
        """Raises ConfigError when some sequence this head encodes or generates has no room left."""
        _ = self.text_budget

    def _budget_message(self, what: str, budget: int, reserved: tuple[str, int] | None = None) -> str:
        """Why ``what`` gets ``budget`` ≤ 0 tokens, with every number that went into it, and the fix."""
        limits = [f"training.max_length {self.requested_max_length}"]
        if self.tokenizer_limit is not None:
            limits.append(f"the tokenizer's {self.tokenizer_limit}")
        if self.positions.input is not None:
            limits.append(f"the model's {self.positions.input} positions")
        terms = f"min({', '.join(limits)}) = {self.sequence_limit}"
        if self.added.input:
            terms += f" − {self.added.input} positions {self.added_by} adds in front"
        if reserved:
            terms += f" − {reserved[1]} {reserved[0]}"
        lower = f"lower {self.added_by}'s {self.added.option}" if self.added.input and self.added.option else ""
        model_limits = [limit for limit in (self.tokenizer_limit, self.positions.input) if limit is not None]
        if self.sequence_limit == self.requested_max_length and self.sequence_limit not in model_limits:
            allows = f" (the model allows {min(model_limits)})" if model_limits else ""
            fix = f"To fit, raise training.max_length{allows}" + (f" or {lower}." if lower else ".")
        else:
            fix = "The model allows no more" + (f"; to fit, {lower}." if lower else ".")
        return (
            f"{self.task.name} on this {self.family} model leaves no room for {what}: {terms} "
            f"= {budget} tokens. {fix}"
        )

    def model_kwargs(self) -> dict[str, Any]:
        """Extra ``from_pretrained`` arguments (e.g. the number of labels)."""
        return {}

    def load_model(self, path: str, **kwargs: Any) -> PreTrainedModel:
        import transformers

        # slopeft reports new head modules itself; transformers' load table and bars are noise here.
        transformers.logging.set_verbosity_error()
        transformers.utils.logging.disable_progress_bar()
        auto = getattr(transformers, self.auto_class)
        kwargs.setdefault("use_safetensors", True)  # never unpickle weights (a pickle-only folder fails)
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


def pad(
    rows: Sequence[Sequence[int]], value: int, left: bool = False, limit: int | None = None
) -> torch.Tensor:
    """Pads integer rows to the longest, rounded up to a multiple of 8 but not past ``limit``;
    ``left`` pads in front.

    Rounding keeps the number of distinct batch shapes small: CPU kernels (oneDNN) and the
    allocator cache per shape, and dozens of one-off shapes cost time and resident memory.
    ``limit`` is the head's budget: padding positions are positions too (a model numbers them,
    and inputs_embeds-based prompts count them), so rounding must not push a full-length row
    past the position table.
    """
    longest = max(len(r) for r in rows)
    width = -(-longest // PAD_MULTIPLE) * PAD_MULTIPLE
    if limit is not None:
        width = max(longest, min(width, limit))
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
    positions: PositionLimits | None = None,
) -> Head:
    """The head for ``task_format``'s task on a ``family`` model, ready to encode and predict
    (for a method that adds nothing to the sequence; see :meth:`Head.for_method`)."""
    return select_head(task_format, family)(
        task_format,
        tokenizer,
        max_length=max_length,
        input_prefix=input_prefix,
        family=family,
        positions=positions,
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
