"""`slopeft quickstart`'s machinery on a tiny model: the recipes' settings, the table, the records."""

from __future__ import annotations

import json

from rich.console import Console

from slopeft.methods.recipes import recipe_for
from slopeft.models.tiny import make_tiny_model
from slopeft.quickstart import QuickstartConfig, quickstart


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
    shown = " ".join(console.export_text().split())
    assert "8 held-out rows" in shown and "trained on 16, 1.5 epoch(s)" in shown
