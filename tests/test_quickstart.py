"""`slopeft quickstart`'s machinery on a tiny model: the recipes' settings, the table, the records."""

from __future__ import annotations

import json
import os

import pytest
from rich.console import Console

from slopeft.errors import ConfigError
from slopeft.methods.recipes import recipe_for
from slopeft.models.tiny import make_tiny_model
from slopeft.quickstart import QuickstartConfig, quickstart
from slopeft.training.precision import resolve_precision


def test_quickstart_trains_each_method_with_its_recipe_next_to_the_majority(real_data_env, tmp_path):
    model = make_tiny_model("bert", tmp_path / "tiny-bert")
    console = Console(record=True, width=200)
    config = QuickstartConfig(model=str(model), task="slo-superglue/cb", train_examples=16, eval_examples=8,
                              output=tmp_path / "runs")
    rows = quickstart(config, console)
    assert [row[0] for row in rows] == ["majority", "lora", "bitfit"]
    for method in ("lora", "bitfit"):
        record = json.loads((tmp_path / "runs" / f"slo-superglue-cb-{method}" / "record.json").read_text())
        assert record["learning_rate"] == recipe_for(method).learning_rate
        assert record["data"]["train_examples"] == 16 and record["data"]["val_examples"] == 8
        # fastest: bf16 where this machine multiplies it natively, else fp32
        assert record["cost"]["precision"] == resolve_precision("fastest")
        # the final weights are scored: the held-out rows choose no checkpoint
        assert record["config"]["training"]["select_best"] is False
        final = record["metrics"]["history"][-1]["metrics"]
        assert record["metrics"]["main"] == final[record["metrics"]["main_metric"]]
    shown = " ".join(console.export_text().split())
    assert "8 held-out rows" in shown and f"trained on 16, 1.5 epoch(s), {resolve_precision('fastest')})" in shown


def test_quickstart_trains_in_the_precision_asked(real_data_env, tmp_path):
    model = make_tiny_model("bert", tmp_path / "tiny-bert")
    config = QuickstartConfig(model=str(model), task="slo-superglue/cb", train_examples=16, eval_examples=8,
                              output=tmp_path / "runs", methods=("bitfit",), precision="fp32")
    quickstart(config, Console(record=True, width=200))
    record = json.loads((tmp_path / "runs" / "slo-superglue-cb-bitfit" / "record.json").read_text())
    assert record["cost"]["precision"] == "fp32" and record["config"]["training"]["precision"] == "fp32"
    with pytest.raises(ConfigError, match="training.precision must be one of"):
        QuickstartConfig(model=str(model), precision="half")


def test_side_by_side_and_sequential_runs_train_the_same_runs(real_data_env, tmp_path):
    """Side by side (the default where there is a core per method: one spawned process each, progress
    shown here, a log per run) and --sequential give the same table rows and records."""
    model = make_tiny_model("bert", tmp_path / "tiny-bert")
    shown = {}
    for sequential in (False, True):
        console = Console(record=True, width=200)
        config = QuickstartConfig(model=str(model), task="slo-superglue/cb", train_examples=16, eval_examples=8,
                                  output=tmp_path / f"runs-{sequential}", sequential=sequential)
        rows = quickstart(config, console)
        shown[sequential] = (rows, " ".join(console.export_text().split()))
    parallel_rows, parallel_text = shown[False]
    sequential_rows, sequential_text = shown[True]
    assert [r[0] for r in parallel_rows] == [r[0] for r in sequential_rows] == ["majority", "lora", "bitfit"]
    assert [r[2] for r in parallel_rows] == [r[2] for r in sequential_rows]  # trainable parameters
    if len(os.sched_getaffinity(0)) >= 2:
        assert "lora and bitfit, side by side" in parallel_text and "thread(s) each" in parallel_text
        for method in ("lora", "bitfit"):
            log = (tmp_path / "runs-False" / f"slo-superglue-cb-{method}.log").read_text()
            assert f"{method} on slo-superglue/cb" in log
    assert "side by side" not in sequential_text and "3/3 · lora (1/2)" in sequential_text


def test_a_failing_side_by_side_run_raises_its_own_error(real_data_env, tmp_path):
    if len(os.sched_getaffinity(0)) < 2:
        pytest.skip("side by side needs a core per method")
    model = make_tiny_model("bert", tmp_path / "tiny-bert")
    config = QuickstartConfig(model=str(model), task="slo-superglue/cb", train_examples=16, eval_examples=8,
                              output=tmp_path / "runs", method_options={"bitfit": {"no_such_option": 1}})
    with pytest.raises(ConfigError, match="no_such_option"):
        quickstart(config, Console(record=True, width=200))
