"""Pricing runs of tasks no run has trained yet: CPU seconds per training token, carried over."""

from __future__ import annotations

import json

import pytest
import yaml

from slopeft.experiments.grid import expand, load_grid
from slopeft.experiments.pricing import TokenCounter
from slopeft.experiments.runner import estimate_remaining, grid_status
from slopeft.tasks import get_task
from tests.experiments.smoke import REPO


def _grid(tmp_path, **extra):
    grid = {
        "name": "priced",
        "results": str(tmp_path / "results"),
        "models": ["tiny:bert"],
        "tasks": ["slo-superglue/cb", "slo-superglue/rte"],
        "methods": ["lora", "bitfit"],
        "seeds": [1],
        "training": {"epochs": 2, "max_train_examples": 16, "max_eval_examples": 12, "max_length": 48},
        **extra,
    }
    tmp_path.mkdir(parents=True, exist_ok=True)
    path = tmp_path / "priced.yaml"
    path.write_text(yaml.safe_dump(grid))
    return load_grid(path, tmp_path / "out")


def _publish(grid, run, seconds: float) -> None:
    template = json.loads(next((REPO / "results" / "study").glob("si-nli-e5-small-multilingual-lora-s1-*/record.json"))
                          .read_text())
    folder = grid.results / run.run_id
    folder.mkdir(parents=True)
    record = {**template, "run_id": run.run_id, "kind": run.kind,
              "cost": {**template["cost"], "train_cpu_seconds": seconds}}
    (folder / "record.json").write_text(json.dumps(record))


def test_a_task_nothing_has_trained_is_priced_by_its_tokens(real_data_env, tmp_path):
    from transformers import AutoTokenizer

    grid = _grid(tmp_path)
    runs = {(run.task.split("/")[-1], run.method): run for run in expand(grid).runs}
    assert estimate_remaining(grid, grid_status(grid)[0]).estimated == 0  # nothing finished: nothing priced
    _publish(grid, runs["cb", "lora"], 100.0)

    counter = TokenCounter(grid)
    counted = counter.tokens(runs["cb", "lora"])  # builds the tiny model on first use, as a worker does
    # The tokens a run trains on: its examples' pairs as the tokenizer encodes them, each weighted for
    # attention's cost at its length, times the epochs.
    tokenizer = AutoTokenizer.from_pretrained(grid.models_dir / "tiny-bert")

    config = json.loads((grid.models_dir / "tiny-bert" / "config.json").read_text())
    width = 2 * config["hidden_size"] + config["intermediate_size"]  # attention's share grows with L / width

    def tokens(task: str) -> float:
        examples = get_task(f"slo-superglue/{task}").examples("train")[:16]
        lengths = [len(tokenizer(e.inputs["premise"], e.inputs["hypothesis"], truncation=True, max_length=48)
                       ["input_ids"]) for e in examples]
        return 2 * sum(n * (1 + n / width) for n in lengths)  # 2 epochs

    assert counted == pytest.approx(tokens("cb"))
    assert counter.tokens(runs["rte", "lora"]) == pytest.approx(tokens("rte"))

    cost = estimate_remaining(grid, grid_status(grid)[0])
    assert (cost.estimated, cost.unknown, cost.by_tokens) == (3, 0, 2)
    assert cost.per_run[runs["cb", "bitfit"].run_id] == 100.0  # the task and model's finished run
    per_token = 100.0 / tokens("cb")
    # RTE: lora at lora's rate; bitfit, with no finished bitfit run anywhere, at the model's rate
    assert cost.per_run[runs["rte", "lora"].run_id] == pytest.approx(per_token * tokens("rte"))
    assert cost.per_run[runs["rte", "bitfit"].run_id] == pytest.approx(per_token * tokens("rte"))
    assert cost.cpu_seconds == pytest.approx(100.0 + 2 * per_token * tokens("rte"))


def test_max_steps_prices_the_examples_its_steps_take(real_data_env, tmp_path):
    grid = _grid(tmp_path, training={"max_steps": 3, "batch_size": 4, "max_train_examples": 16, "max_length": 48})
    run = next(run for run in expand(grid).runs if run.task.endswith("cb"))
    by_epoch = _grid(tmp_path / "epochs", training={"epochs": 1, "max_train_examples": 16, "max_length": 48})
    one_epoch = TokenCounter(by_epoch).tokens(next(r for r in expand(by_epoch).runs if r.task.endswith("cb")))
    assert TokenCounter(grid).tokens(run) == pytest.approx(one_epoch * 12 / 16)  # 3 steps × 4 of the 16 examples


def test_a_run_whose_data_is_not_here_stays_unpriced(tmp_path):
    grid = _grid(tmp_path, data_dir=str(tmp_path / "no-data"))
    runs = {(run.task.split("/")[-1], run.method): run for run in expand(grid).runs}
    assert TokenCounter(grid).tokens(runs["rte", "lora"]) is None
    _publish(grid, runs["cb", "lora"], 100.0)
    cost = estimate_remaining(grid, grid_status(grid)[0])
    assert (cost.estimated, cost.unknown, cost.by_tokens) == (1, 2, 0)  # cb bitfit as cb lora; RTE unpriced


def test_attention_width_from_a_model_config():
    from slopeft.experiments.pricing import attention_width

    assert attention_width({"hidden_size": 384, "intermediate_size": 1536}) == 2304  # e5-small
    assert attention_width({"d_model": 512, "d_ff": 2048}) == 3072  # T5's names
    assert attention_width({"hidden_size": 384}) is None and attention_width({}) is None
