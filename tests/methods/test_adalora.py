"""AdaLoRA's wiring into slopeft: the schedule from the trainer, allocation every step, the regulariser."""

from __future__ import annotations

import io
import json

import pytest
import torch
from rich.console import Console

from slopeft.config import TrainingConfig
from slopeft.errors import ConfigError
from slopeft.methods.adalora import AdaLora
from slopeft.training.build import load_base
from slopeft.training.trainer import Trainer
from tests.tolerance import assert_close

RTE, COPA = "slo-superglue/rte", "slo-superglue/copa"


def _batch(parts, n=4):
    return parts.head.collate(parts.head.encode(parts.task.examples("train")[:n], with_labels=True))


def test_trainer_runs_the_allocation_every_step_and_prunes_to_the_target_budget(
    run_parts, tmp_path, monkeypatch
):
    from peft.tuners.adalora import AdaLoraModel

    calls: list[int] = []
    original = AdaLoraModel.update_and_allocate

    def spy(self, step):
        calls.append(step)
        return original(self, step)

    monkeypatch.setattr(AdaLoraModel, "update_and_allocate", spy)
    options = {"init_r": 4, "target_r": 2, "tinit": 1, "tfinal": 2, "deltaT": 1}
    parts = run_parts("bert", RTE, "adalora", **options)
    base, context = load_base(parts)
    model = parts.method.apply(base, context)
    examples = parts.task.examples("train")[:12]
    config = TrainingConfig(epochs=1, batch_size=2, max_length=32, eval_batch_size=8)
    trainer = Trainer(
        model, parts.head, parts.method, parts.task, config, tmp_path / "run", 0, Console(file=io.StringIO())
    )
    trainer.fit(examples, examples[:2])

    assert calls == [1, 2, 3, 4, 5, 6]  # every optimiser step, counted from 1
    peft_config = model.peft_config["default"]
    assert (peft_config.tinit, peft_config.tfinal, peft_config.total_step) == (1, 2, 6)
    # The final allocation (step total - tfinal = 4) leaves target_r triplets per matrix on average.
    kept = [int((p != 0).sum()) for n, p in model.named_parameters() if "lora_E.default" in n]
    assert sum(kept) == 2 * len(kept)

    parts.method.save(model, tmp_path / "adapter")
    saved = json.loads((tmp_path / "adapter" / "adapter_config.json").read_text())
    assert saved["orth_reg_weight"] == 0.1  # the real coefficient, though PEFT's forward adds none
    assert saved["total_step"] == 6 and saved["rank_pattern"]
    assert sum(sum(mask) for mask in saved["rank_pattern"].values()) == 2 * len(kept)


def test_regulariser_matches_peft_and_is_added_for_multiple_choice_too(run_parts):
    method = AdaLora()
    # Sequence classification: PEFT's forward adds γ·R itself when its weight is set; extra_loss is the same.
    parts = run_parts("bert", RTE, "adalora")
    base, context = load_base(parts)
    model = method.apply(base, context).eval()
    batch = _batch(parts)
    config = model.peft_config["default"]
    assert config.orth_reg_weight == 0.0  # slopeft adds the regulariser, not PEFT
    with torch.no_grad():
        plain = model(**batch).loss
        config.orth_reg_weight = 0.1
        with_peft = model(**batch).loss
        config.orth_reg_weight = 0.0
        ours = method.extra_loss(model)
    assert ours is not None and ours > 0
    # A difference of two losses: rounding is relative to the losses, not to the difference.
    assert_close(with_peft - plain, ours, scale=float(with_peft))

    # Multiple choice has no PEFT task type: PeftModel.forward skips AdaLoraModel.forward and its regulariser.
    parts = run_parts("bert", COPA, "adalora")
    base, context = load_base(parts)
    assert context.task_type is None
    model = method.apply(base, context).eval()
    batch = _batch(parts)
    config = model.peft_config["default"]
    with torch.no_grad():
        plain = model(**batch).loss
        config.orth_reg_weight = 0.1
        with_peft = model(**batch).loss
        config.orth_reg_weight = 0.0
    assert torch.equal(plain, with_peft)  # PEFT would silently drop it ...
    assert method.extra_loss(model) > 0  # ... so slopeft adds it through extra_loss


def test_regulariser_gradient_reaches_the_adapter(run_parts):
    parts = run_parts("bert", COPA, "adalora")
    base, context = load_base(parts)
    model = parts.method.apply(base, context)
    parts.method.extra_loss(model).backward()
    grads = [p.grad for n, p in model.named_parameters() if "lora_A.default" in n or "lora_B.default" in n]
    assert grads and all(g is not None and g.abs().sum() > 0 for g in grads)


def test_schedule_from_shares_steps_or_an_explicit_total():
    assert AdaLora().schedule(100) == (10, 30, 100)  # defaults: 10% warm-up, 30% final phase
    assert AdaLora({"tinit": 5, "tfinal": 20}).schedule(100) == (5, 20, 100)
    assert AdaLora({"total_step": 50}).schedule(10) == (5, 15, 50)


@pytest.mark.parametrize(
    ("options", "words"),
    [
        ({"init_r": 8, "target_r": 8}, "target_r < init_r"),
        ({"beta1": 1.0}, "beta1"),
        ({"deltaT": 0}, "deltaT"),
    ],
)
def test_invalid_options_are_config_errors(options, words):
    with pytest.raises(ConfigError, match=words):
        AdaLora(options)


def test_a_schedule_without_a_pruning_phase_is_a_config_error():
    with pytest.raises(ConfigError, match="no pruning phase"):
        AdaLora({"tinit": 0.5, "tfinal": 0.5}).schedule(10)
