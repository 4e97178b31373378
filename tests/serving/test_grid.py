"""`slopeft serve --grid`: every finished training run of a grid, named by run id."""

from __future__ import annotations

import subprocess

from fastapi.testclient import TestClient

from slopeft.records import read_record
from slopeft.serving.adapters import SharedBase
from slopeft.serving.api import create_app
from slopeft.serving.cli import grid_adapters, same_base_runs
from slopeft.serving.engine import Engine
from tests.experiments.smoke import REPO, slopeft, subprocess_env

GRID = """\
name: serve-grid
models: [tiny:bert]
tasks: [slo-superglue/cb]
methods: [lora, bitfit]
seeds: [1]
training: {max_steps: 2, batch_size: 4, eval_batch_size: 8, max_length: 32, max_train_examples: 8, max_eval_examples: 4}
"""


def test_a_grids_finished_runs_are_served_by_run_id(tmp_path, data_root, serving_runs):
    grid = tmp_path / "grid.yaml"
    grid.write_text(GRID)
    out = tmp_path / "out"
    env = subprocess_env(data_root, tmp_path / "cache")
    done = subprocess.run(slopeft("grid", "run", grid, "--workers", 1, "--out", out), env=env, cwd=REPO,
                          capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
    runs = grid_adapters(grid, out)
    assert len(runs) == 2 and all(path.parent == out / "runs" for _, path in runs)
    assert {read_record(path).config["method"] for _, path in runs} == {"lora", "bitfit"}
    model = read_record(runs[0][1]).config["model"]
    engine = Engine(SharedBase(model))
    decoder_run = ("opt", serving_runs("opt-dora-rte"))
    mine, others = same_base_runs(engine.base, [*runs, decoder_run])
    assert mine == runs and others == [decoder_run]  # a run on another base is left out, not failed
    for name, path in runs:
        engine.load(name, path)
    with TestClient(create_app(engine)) as client:
        row = {"premise": "Ana je doma.", "hypothesis": "Ana ni doma."}
        for name, _ in runs:
            response = client.post("/v1/predict", json={"adapter": name, "inputs": [row]})
            assert response.status_code == 200 and response.json()["task"] == "slo-superglue/cb"
