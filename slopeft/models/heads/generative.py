"""Generative heads (causal LMs such as Gemma/GaMS/OPT/Llama, and seq2seq models such as
Marian/T5/mT5/NLLB): candidate scoring for classification and generation for translation."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import torch
from transformers import PreTrainedModel

from slopeft.errors import ConfigError
from slopeft.models.heads.base import HEADS, Features, Head, pad
from slopeft.tasks.base import Example

IGNORE = -100  # label value the loss skips (prompt tokens, padding)


class _GenerativeHead(Head):
    context: Callable[[Example], str] | None = None  # few-shot demonstrations placed before the prompt
    peft_task_types = {"causal": "CAUSAL_LM", "seq2seq": "SEQ_2_SEQ_LM"}

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.auto_class = "AutoModelForCausalLM" if self.family == "causal" else "AutoModelForSeq2SeqLM"

    @property
    def pad_id(self) -> int:
        pad_id = self.tokenizer.pad_token_id
        return self.tokenizer.eos_token_id if pad_id is None else pad_id

    def _text_ids(self, text: str) -> list[int]:
        return self.tokenizer(text, add_special_tokens=False)["input_ids"]

    def _prompt_text(self, example: Example) -> str:
        return self.input_prefix + (self.context(example) if self.context else "") + self._body(example)

    def _body(self, example: Example) -> str:
        return self.format.prompt(example)

    @property
    def decoder_budget(self) -> int | None:
        """Tokens a seq2seq decoder sequence may hold (labels, generated tokens): the model's decoder
        positions less what the method adds there; None when nothing bounds it (causal models, T5)."""
        if self.family != "seq2seq" or self.positions.decoder is None:
            return None
        budget = self.positions.decoder - self.added.decoder
        if budget <= 0:
            option = self.added.option or "what it adds"
            raise ConfigError(
                f"{self.task.name} on this seq2seq model leaves no room in the decoder: the model's "
                f"{self.positions.decoder} decoder positions − {self.added.decoder} positions {self.added_by} "
                f"adds there = {budget} tokens. To fit, lower {self.added_by}'s {option} below "
                f"{self.positions.decoder}."
            )
        return budget

    def check_budget(self) -> None:
        super().check_budget()
        _ = self.decoder_budget

    def _full_prompt_ids(self, example: Example) -> list[int]:
        return self.tokenizer(self._prompt_text(example))["input_ids"]

    def input_tokens(self, example: Example) -> int:
        return len(self._full_prompt_ids(example))

    def _prompt_ids(self, example: Example, reserve: int, what: str = "tokens to score") -> tuple[list[int], bool]:
        """Prompt ids cut from the left to leave ``reserve`` tokens for the continuation (``what``).

        Long fields (demonstrations, then the passage) open the prompt, so cutting on the left
        drops passage text and keeps the question and the answer cue.
        """
        if self.family == "seq2seq":
            reserve = 0  # the continuation lives in the decoder
        budget = self.text_budget - reserve
        if budget <= 0:
            raise ConfigError(self._budget_message("the prompt", budget, (what, reserve)))
        return self._cut_prompt(self._full_prompt_ids(example), budget)

    def _cut_prompt(self, ids: list[int], budget: int) -> tuple[list[int], bool]:
        if len(ids) <= budget:
            return ids, False
        bos = self.tokenizer.bos_token_id
        keep_bos = bos is not None and ids[0] == bos
        return ([bos] if keep_bos else []) + ids[len(ids) - budget + keep_bos :], True

    def _fit_training(self, example: Example, target: list[int]) -> tuple[list[int], list[int], bool]:
        """Prompt and target ids of a training example, cut so that the whole sequence fits.

        Causal: prompt + target share :attr:`text_budget`; the prompt gives way first (from the left),
        and only a target that leaves it no room at all is cut too (from the right; the prompt then
        keeps half the budget). Seq2seq: the prompt fills the encoder, the target the decoder
        (:attr:`decoder_budget`).
        """
        ids = self._full_prompt_ids(example)
        if self.family == "seq2seq":
            prompt, was_cut = self._cut_prompt(ids, self.text_budget)
            limit = self.decoder_budget
            if limit is not None and len(target) > limit:
                return prompt, target[:limit], True
            return prompt, target, was_cut
        budget = self.text_budget
        if len(target) < budget:
            prompt, was_cut = self._cut_prompt(ids, budget - len(target))
            return prompt, target, was_cut
        prompt, _ = self._cut_prompt(ids, min(len(ids), max(1, budget // 2)))
        return prompt, target[: budget - len(prompt)], True

    def _eos(self) -> list[int]:
        eos = self.tokenizer.eos_token_id
        return [eos] if eos is not None else []

    def _training_feature(self, prompt: list[int], target: list[int]) -> Features:
        if self.family == "causal":
            return {"input_ids": prompt + target, "labels": [IGNORE] * len(prompt) + target}
        return {"input_ids": prompt, "labels": target}

    def collate(self, features: Sequence[Features]) -> dict[str, torch.Tensor]:
        limit = self.text_budget
        batch = {
            "input_ids": pad([f["input_ids"] for f in features], self.pad_id, limit=limit),
            "attention_mask": pad([[1] * len(f["input_ids"]) for f in features], 0, limit=limit),
        }
        if "labels" in features[0]:
            labels_limit = limit if self.family == "causal" else self.decoder_budget
            batch["labels"] = pad([f["labels"] for f in features], IGNORE, limit=labels_limit)
        return batch

    def _target_ids(self, example: Example) -> list[int]:
        return self._text_ids(self.format.target(example)) + self._eos()

    def encode(self, examples: Sequence[Example], with_labels: bool = True) -> list[Features]:
        features, self.truncated = [], 0
        for example in examples:
            if with_labels:
                prompt, target, was_cut = self._fit_training(example, self._target_ids(example))
                features.append(self._training_feature(prompt, target))
            else:
                prompt, was_cut = self._prompt_ids(example, reserve=0)
                features.append({"input_ids": prompt})
            self.truncated += was_cut
        return features


class CandidateScoringHead(_GenerativeHead):
    """Classification (and COPA) by the log-likelihood of each candidate continuation.

    A causal LM scores ``prompt + " da"`` vs ``prompt + " ne"``; a seq2seq model scores each
    candidate as the decoder's output for the prompt. The likeliest candidate's label wins.
    Training maximises the likelihood of the gold candidate (prompt tokens masked out).
    """

    def _target_ids(self, example: Example) -> list[int]:
        # No EOS after a label word: scoring compares candidates without it, training matches.
        target = self._text_ids(self.format.target(example))
        return target + (self._eos() if self.family == "seq2seq" else [])

    def candidate_rows(self, example: Example) -> tuple[list[tuple[list[int], list[int]]], bool]:
        """One (prompt ids, candidate ids) row per candidate of ``example``, and whether the prompt was cut."""
        candidates = [
            self._text_ids(c) + (self._eos() if self.family == "seq2seq" else [])
            for c in self.format.candidates(example)
        ]
        prompt, was_cut = self._prompt_ids(example, reserve=max(map(len, candidates)))
        return [(prompt, candidate) for candidate in candidates], was_cut

    @torch.no_grad()
    def candidate_scores(
        self, model: PreTrainedModel, examples: Sequence[Example], batch_size: int = 16
    ) -> list[list[float]]:
        """Summed log-probability of every candidate of every example."""
        model.eval()
        scores: list[list[float]] = []
        self.truncated = 0
        for chunk in self.batches(examples, max(1, batch_size)):
            rows, counts = [], []
            for example in chunk:
                example_rows, was_cut = self.candidate_rows(example)
                self.truncated += was_cut
                rows += example_rows
                counts.append(len(example_rows))
            flat = self.score_rows(model, rows)
            position = 0
            for n in counts:
                scores.append(flat[position : position + n])
                position += n
        return scores

    def score_rows(self, model: PreTrainedModel, rows: list[tuple[list[int], list[int]]]) -> list[float]:
        """Summed log-probability of each candidate after its prompt, for (prompt ids, candidate ids) rows."""
        device = model.device
        if self.family == "seq2seq":
            limit = self.text_budget
            input_ids = pad([p for p, _ in rows], self.pad_id, limit=limit).to(device)
            attention = pad([[1] * len(p) for p, _ in rows], 0, limit=limit).to(device)
            labels = pad([c for _, c in rows], IGNORE, limit=self.decoder_budget).to(device)
            logits = model(input_ids=input_ids, attention_mask=attention, labels=labels).logits
            logprobs = logits.log_softmax(-1)
            mask = labels != IGNORE
            token = logprobs.gather(-1, labels.clamp(min=0).unsqueeze(-1)).squeeze(-1)
            return (token * mask).sum(-1).tolist()
        # Causal: left padding puts every candidate at the end of its row, so only the last
        # `width` positions need logits (a 262k-token vocabulary makes full logits costly).
        sequences = [p + c for p, c in rows]
        limit = self.text_budget
        input_ids = pad(sequences, self.pad_id, left=True, limit=limit).to(device)
        attention = pad([[1] * len(s) for s in sequences], 0, left=True, limit=limit).to(device)
        positions = (attention.cumsum(-1) - 1).clamp(min=0)
        width = max(len(c) for _, c in rows) + 1
        try:
            logits = model(
                input_ids=input_ids, attention_mask=attention, position_ids=positions, logits_to_keep=width
            ).logits
        except TypeError:  # an architecture without logits_to_keep
            logits = model(input_ids=input_ids, attention_mask=attention, position_ids=positions).logits
        logits = logits[:, -width:, :]
        logprobs = logits[:, :-1].log_softmax(-1)  # position t predicts token t+1
        targets = input_ids[:, -width + 1 :]
        token = logprobs.gather(-1, targets.unsqueeze(-1)).squeeze(-1)
        results = []
        for row, (_, candidate) in enumerate(rows):
            results.append(token[row, token.shape[1] - len(candidate) :].sum().item())
        return results

    def predict(
        self, model: PreTrainedModel, examples: Sequence[Example], batch_size: int = 16
    ) -> dict[int, Any]:
        labels = self.format.candidate_labels()
        scores = self.candidate_scores(model, examples, batch_size)
        return {
            e.idx: labels[max(range(len(s)), key=s.__getitem__)]
            for e, s in zip(examples, scores, strict=True)
        }


class GenerationHead(_GenerativeHead):
    """Translation: a causal LM continues a Slovene instruction prompt; a seq2seq model maps source to target."""

    max_new_tokens = 128
    """The longest translation generated (a seq2seq model's decoder positions may allow fewer:
    :attr:`generation_length`). On a causal model, prompt + this must fit :attr:`text_budget`."""

    @property
    def generation_length(self) -> int:
        """Tokens generated at most: ``max_new_tokens``, or fewer where a seq2seq decoder's positions
        (less what the method adds there) end sooner."""
        decoder = self.decoder_budget
        return self.max_new_tokens if decoder is None else min(self.max_new_tokens, decoder)

    def _prompt_budget(self) -> int:
        """Tokens for a generation prompt: a causal model's prompt and generation share the sequence."""
        if self.family == "seq2seq":
            return self.text_budget
        budget = self.text_budget - self.max_new_tokens
        if budget <= 0:
            raise ConfigError(
                self._budget_message("the prompt", budget, ("generated tokens", self.max_new_tokens))
            )
        return budget

    def check_budget(self) -> None:
        super().check_budget()
        self._prompt_budget()

    def _body(self, example: Example) -> str:
        if self.family == "seq2seq":
            return example.inputs["source"]  # Marian/NLLB/T5 translate the bare source (plus input_prefix)
        return self.format.prompt(example)

    def _target_ids(self, example: Example) -> list[int]:
        if self.family == "seq2seq":
            return self.tokenizer(text_target=example.label, add_special_tokens=True)["input_ids"]
        return self._text_ids(self.format.target(example)) + self._eos()

    def prompt_ids(self, example: Example) -> tuple[list[int], bool]:
        """The prompt ids generation starts from (cut to :meth:`_prompt_budget`, which leaves a causal
        model room for ``max_new_tokens``), and whether it was cut."""
        return self._cut_prompt(self._full_prompt_ids(example), self._prompt_budget())

    @torch.no_grad()
    def generate_ids(
        self, model: PreTrainedModel, prompts: Sequence[list[int]], max_new_tokens: int | None = None
    ) -> list[list[int]]:
        """Greedy continuations (token ids after the prompt, padding included) of a batch of prompts."""
        left = self.family == "causal"  # decoder-only generation continues from the right edge
        budget = self._prompt_budget()  # padding takes positions too: never past the prompt's budget
        input_ids = pad(prompts, self.pad_id, left=left, limit=budget).to(model.device)
        attention = pad([[1] * len(p) for p in prompts], 0, left=left, limit=budget).to(model.device)
        output = model.generate(
            input_ids=input_ids,
            attention_mask=attention,
            max_new_tokens=max_new_tokens or self.generation_length,
            do_sample=False,
            num_beams=1,
            pad_token_id=self.pad_id,
        )
        if left:
            output = output[:, input_ids.shape[1] :]
        return output.tolist()

    def decode(self, ids: Sequence[int]) -> str:
        """The translation in generated ids."""
        text = self.tokenizer.decode(ids, skip_special_tokens=True)
        # A causal LM may go on past the translation: keep its first line.
        return text.strip().split("\n")[0].strip() if self.family == "causal" else text.strip()

    @torch.no_grad()
    def predict(
        self, model: PreTrainedModel, examples: Sequence[Example], batch_size: int = 8
    ) -> dict[int, Any]:
        model.eval()
        predictions: dict[int, Any] = {}
        self.truncated = 0
        for chunk in self.batches(examples, batch_size):
            prompts = []
            for example in chunk:
                ids, was_cut = self.prompt_ids(example)
                self.truncated += was_cut
                prompts.append(ids)
            for example, ids in zip(chunk, self.generate_ids(model, prompts), strict=True):
                predictions[example.idx] = self.decode(ids)
        return predictions


for _family in ("causal", "seq2seq"):
    for _kind in ("pair-classification", "span-classification", "answer-classification", "multiple-choice"):
        HEADS[(_kind, _family)] = CandidateScoringHead
    HEADS[("translation", _family)] = GenerationHead
