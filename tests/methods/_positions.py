"""Inputs longer than a tiny model's position table, and a probe of the positions a model is asked for."""

from __future__ import annotations

import dataclasses

import torch


def long_examples(task, n: int = 2) -> list:
    """``n`` training examples whose text is longer than any tiny model's position table."""
    examples = task.examples("train")
    if task.spec.kind == "translation":  # one sentence is short: join twelve, source and target
        return [
            dataclasses.replace(
                examples[i],
                inputs={"source": " ".join(e.inputs["source"] for e in examples[i : i + 12])},
                label=" ".join(e.label for e in examples[i : i + 12]),
            )
            for i in range(0, 12 * n, 12)
        ]
    if task.spec.kind == "multiple-choice":  # COPA premises are one sentence: repeat it
        return [
            dataclasses.replace(e, inputs={**e.inputs, "premise": " ".join([e.inputs["premise"]] * 40)})
            for e in examples[:n]
        ]
    return sorted(examples[:200], key=lambda e: -len(str(e.inputs)))[:n]  # the longest passages


class PositionProbe:
    """Records the largest position every position table of a model is asked for during a test."""

    def __init__(self, monkeypatch, model) -> None:
        self.seen: dict[str, tuple[int, int]] = {}  # table → (largest position asked for, positions it has)
        tables = {
            id(module): name
            for name, module in model.named_modules()
            if isinstance(module, torch.nn.Embedding) and "position" in name.rsplit(".", 1)[-1]
        }
        original = torch.nn.Embedding.forward

        def embedding_forward(module, indices):
            if id(module) in tables and indices.numel():
                self._note(tables[id(module)], int(indices.max()), module.weight.shape[0])
            return original(module, indices)

        monkeypatch.setattr(torch.nn.Embedding, "forward", embedding_forward)
        # Rotary embeddings have no table to overrun; the model's context is max_position_embeddings.
        for name, module in model.named_modules():
            if type(module).__name__.endswith("RotaryEmbedding"):
                limit = module.config.max_position_embeddings

                def rotary_forward(x, position_ids, *args, _forward=module.forward, _name=name, _limit=limit, **kw):
                    self._note(_name, int(position_ids.max()), _limit)
                    return _forward(x, position_ids, *args, **kw)

                monkeypatch.setattr(module, "forward", rotary_forward)

    def _note(self, name: str, position: int, size: int) -> None:
        self.seen[name] = (max(position, self.seen.get(name, (-1, size))[0]), size)

    def overruns(self) -> dict[str, tuple[int, int]]:
        return {name: (p, size) for name, (p, size) in self.seen.items() if p >= size}


def generate_to_the_end(model: torch.nn.Module) -> None:
    """``generate`` runs to ``max_new_tokens`` (no end-of-sequence token stops it), so the longest
    sequences are the ones tested."""
    for module in model.modules():
        if getattr(module, "generation_config", None) is not None:
            module.generation_config.eos_token_id = None
