"""Encoder heads (BERT, CamemBERT/SloBERTa, XLM-R, DeBERTa): pair classification and multiple choice."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
from transformers import PreTrainedModel

from slopeft.errors import ConfigError
from slopeft.models.heads.base import HEADS, Features, Head, pad
from slopeft.models.heads.pooling import pooling_of, use_mean_pooling
from slopeft.tasks.base import Example


def _input_length(feature: Features) -> int:
    if "choices" in feature:
        return max(len(choice["input_ids"]) for choice in feature["choices"])
    return len(feature["input_ids"])


class _EncoderHead(Head):
    def check_budget(self) -> None:
        specials = self.tokenizer.num_special_tokens_to_add(pair=True)
        if self.text_budget <= specials:  # a pair's [CLS]/[SEP] tokens alone would fill it
            raise ConfigError(
                self._budget_message("the input's text", self.text_budget - specials, ("special tokens", specials))
            )

    def after_load(self, model: PreTrainedModel, path: str) -> None:
        if pooling_of(path) == "mean":
            use_mean_pooling(model)

    def _pair_length(self, text_a: str, text_b: str) -> int:
        return len(self.tokenizer(self.input_prefix + text_a, text_b, truncation=False)["input_ids"])

    def label_of(self, index: int) -> Any:
        """The task label of the classifier's output ``index``."""
        raise NotImplementedError

    @torch.no_grad()
    def predict(
        self, model: PreTrainedModel, examples: Sequence[Example], batch_size: int = 16
    ) -> dict[int, Any]:
        model.eval()
        features = self.encode(examples, with_labels=False)
        # Longest first, so each batch pads to inputs of about its own length (SI-NLI: half the
        # tokens of input order); predictions are keyed by idx, so the order is not observable.
        order = sorted(range(len(features)), key=lambda i: -_input_length(features[i]))
        predictions: dict[int, Any] = {}
        for chunk in self.batches(order, batch_size):
            batch = {k: v.to(model.device) for k, v in self.collate([features[i] for i in chunk]).items()}
            for i, index in zip(chunk, model(**batch).logits.argmax(-1).tolist(), strict=True):
                predictions[examples[i].idx] = self.label_of(index)
        return {example.idx: predictions[example.idx] for example in examples}

    def _encode_pair(self, text_a: str, text_b: str) -> tuple[dict[str, list[int]], bool]:
        # A long passage is always text_b, so "only_second" cuts the passage and keeps the
        # question/answer whole; other pairs are cut from the longer side.
        strategy = "only_second" if self.format.long_field else "longest_first"
        text_a = self.input_prefix + text_a
        budget = self.text_budget  # what the method adds in front is already taken off
        full = self.tokenizer(text_a, text_b, truncation=False)
        was_cut = len(full["input_ids"]) > budget
        if not was_cut:
            return dict(full), False
        try:
            cut = self.tokenizer(text_a, text_b, truncation=strategy, max_length=budget)
        except Exception:  # text_a alone longer than the budget: only_second cannot fit it
            cut = self.tokenizer(text_a, text_b, truncation="longest_first", max_length=budget)
        return dict(cut), True

    def _pad_features(self, features: Sequence[dict[str, list[int]]]) -> dict[str, torch.Tensor]:
        limit = self.text_budget
        batch = {
            "input_ids": pad([f["input_ids"] for f in features], self.tokenizer.pad_token_id, limit=limit),
            "attention_mask": pad([f["attention_mask"] for f in features], 0, limit=limit),
        }
        if "token_type_ids" in features[0]:
            batch["token_type_ids"] = pad([f["token_type_ids"] for f in features], 0, limit=limit)
        return batch


class EncoderPairHead(_EncoderHead):
    """Sequence-pair classification (BoolQ, CB, RTE, SI-NLI, MultiRC answers, WSC with marked spans)."""

    auto_class = "AutoModelForSequenceClassification"
    peft_task_types = {"encoder": "SEQ_CLS"}
    supports_class_weights = True

    def model_kwargs(self) -> dict[str, Any]:
        labels = [str(label) for label in self.task.spec.labels]
        return {
            "num_labels": len(labels),
            "id2label": dict(enumerate(labels)),
            "label2id": {label: i for i, label in enumerate(labels)},
        }

    def encode(self, examples: Sequence[Example], with_labels: bool = True) -> list[Features]:
        features, self.truncated = [], 0
        labels = list(self.task.spec.labels)
        for example in examples:
            encoded, was_cut = self._encode_pair(*self.format.text_pair(example))
            self.truncated += was_cut
            if with_labels:
                encoded["labels"] = labels.index(example.label)
            features.append(encoded)
        return features

    def collate(self, features: Sequence[Features]) -> dict[str, torch.Tensor]:
        batch = self._pad_features(features)
        if "labels" in features[0]:
            batch["labels"] = torch.tensor([f["labels"] for f in features], dtype=torch.long)
        return batch

    def label_of(self, index: int) -> Any:
        return self.task.spec.labels[index]

    def input_tokens(self, example: Example) -> int:
        return self._pair_length(*self.format.text_pair(example))


class EncoderChoiceHead(_EncoderHead):
    """Multiple choice (COPA): one score per (premise + connective, choice) pair."""

    auto_class = "AutoModelForMultipleChoice"  # PEFT has no task type for multiple choice

    def feature_length(self, feature: Features) -> int:
        return sum(len(choice["input_ids"]) for choice in feature["choices"])

    def encode(self, examples: Sequence[Example], with_labels: bool = True) -> list[Features]:
        features, self.truncated = [], 0
        for example in examples:
            choices = []
            for pair in self.format.choice_pairs(example):
                encoded, was_cut = self._encode_pair(*pair)
                self.truncated += was_cut
                choices.append(encoded)
            feature: Features = {"choices": choices}
            if with_labels:
                feature["labels"] = int(example.label)
            features.append(feature)
        return features

    def collate(self, features: Sequence[Features]) -> dict[str, torch.Tensor]:
        flat = [choice for f in features for choice in f["choices"]]
        n_choices = len(features[0]["choices"])
        batch = {k: v.view(len(features), n_choices, -1) for k, v in self._pad_features(flat).items()}
        if "labels" in features[0]:
            batch["labels"] = torch.tensor([f["labels"] for f in features], dtype=torch.long)
        return batch

    def label_of(self, index: int) -> Any:
        return index  # COPA's label is the index of the chosen alternative

    def input_tokens(self, example: Example) -> int:
        return max(self._pair_length(*pair) for pair in self.format.choice_pairs(example))


for _kind in ("pair-classification", "span-classification", "answer-classification"):
    HEADS[(_kind, "encoder")] = EncoderPairHead
HEADS[("multiple-choice", "encoder")] = EncoderChoiceHead
