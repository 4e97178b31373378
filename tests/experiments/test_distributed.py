"""Distributed: one run across 2 CPU processes (accelerate, gloo); a grid on a local Ray head (127.0.0.1)."""

from __future__ import annotations

import importlib.util
import json
import os
import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from slopeft.experiments.store import ResultsStore
from slopeft.experiments.worker import resolve_grid_model
from tests.experiments.smoke import REPO, run_grid, share_tiny_models, slopeft


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_one_run_in_two_processes_with_accelerate_gloo(tmp_path, grid_env, shared_models):
    """`accelerate launch` on a CPU: two processes (MULTI_CPU, gloo) train one run; one writes its files."""
    model = resolve_grid_model("tiny:bert", shared_models)
    probe = tmp_path / "probe.py"
    probe.write_text(
        "from accelerate import Accelerator\n"
        "import torch.distributed as dist\n"
        "a = Accelerator()\n"
        # One os.write per process: a short single write to a pipe is atomic; print's pieces interleave.
        "import os\n"
        "line = f'PROBE {a.process_index} {a.num_processes} {a.distributed_type} {dist.get_backend()}'\n"
        "os.write(1, (line + chr(10)).encode())\n"
    )
    out = tmp_path / "run"
    entry = tmp_path / "slopeft_entry.py"  # what the `slopeft` console script runs
    entry.write_text("from slopeft.cli import main\n\nmain()\n")
    launch = [
        sys.executable, "-m", "accelerate.commands.launch",
        "--multi_gpu", "--num_processes", "2", "--num_machines", "1",
        "--mixed_precision", "no", "--dynamo_backend", "no",
    ]  # fmt: skip
    env = {**grid_env, "ACCELERATE_USE_CPU": "true", "OMP_NUM_THREADS": "1"}
    probed = subprocess.run(
        [*launch, "--main_process_port", str(_free_port()), str(probe)],
        env=env, capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    lines = sorted(line for line in probed.stdout.splitlines() if line.startswith("PROBE"))
    assert lines == [
        "PROBE 0 2 DistributedType.MULTI_CPU gloo",
        "PROBE 1 2 DistributedType.MULTI_CPU gloo",
    ], probed.stdout + probed.stderr
    trained = subprocess.run(
        [
            *launch, "--main_process_port", str(_free_port()),
            str(entry),
            "train", "--task", "slo-superglue/cb", "--model", model, "--method", "lora", "--output", str(out),
            "--set", "training.max_steps=2", "--set", "training.batch_size=4", "--set", "training.max_length=48",
            "--set", "training.max_train_examples=32", "--set", "training.max_eval_examples=16",
        ],
        env=env, capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert trained.returncode == 0, trained.stdout[-3000:] + trained.stderr[-3000:]
    output = trained.stdout + trained.stderr
    assert output.count("trainable parameters") == 2  # both processes built the model and trained
    record = json.loads((out / "record.json").read_text())
    assert record["cost"]["steps"] == 2 and record["status"] == "completed"
    assert (out / "adapter" / "slopeft_adapter.json").is_file()
    assert len(json.loads((out / "val_predictions.json").read_text())) == 16
    assert not list(out.glob("*.tmp")) and not (out / "checkpoint").exists()


@pytest.fixture
def ray_head(tmp_path):
    """A Ray head on 127.0.0.1 only (Ray otherwise advertises the machine's network address)."""
    if importlib.util.find_spec("ray") is None:
        pytest.skip("Ray is not installed: pip install 'slopeft[distributed]'")
    ray_cli = shutil.which("ray", path=str(Path(sys.executable).parent)) or shutil.which("ray")
    port = _free_port()
    env = {**os.environ, "RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER": "0", "RAY_USAGE_STATS_ENABLED": "0"}
    temp = Path(f"/tmp/slopeft-ray-{os.getpid()}")  # Ray's socket paths must stay short
    head = subprocess.Popen(
        [
            ray_cli, "start", "--head", f"--port={port}", "--num-cpus=2", "--include-dashboard=false",
            "--disable-usage-stats", f"--temp-dir={temp}", "--block",
        ],
        env=env, stdout=open(tmp_path / "ray-head.log", "w"), stderr=subprocess.STDOUT,  # noqa: SIM115
    )  # fmt: skip
    try:
        deadline = time.monotonic() + 120
        while True:
            assert head.poll() is None, (tmp_path / "ray-head.log").read_text()
            with socket.socket() as s:
                if s.connect_ex(("127.0.0.1", port)) == 0:
                    break
            assert time.monotonic() < deadline, "the Ray head did not start"
            time.sleep(0.5)
        yield f"127.0.0.1:{port}", env
    finally:
        head.terminate()  # `ray start --block` stops the processes it started
        try:
            head.wait(timeout=60)
        except subprocess.TimeoutExpired:
            head.kill()
        shutil.rmtree(temp, ignore_errors=True)


def test_grid_on_a_local_ray_head(tmp_path, ray_head, grid_env, shared_models):
    address, ray_env = ray_head
    grid = tmp_path / "ray.yaml"
    grid.write_text(
        "name: ray\nmodels: [tiny:bert]\ntasks: [slo-superglue/cb]\nmethods: [lora]\nseeds: [1]\n"
        "baselines: [majority]\nresources: {num_cpus: 1}\n"
        "training: {epochs: 1, batch_size: 16, max_length: 48, max_train_examples: 32, max_eval_examples: 16}\n"
    )
    out = tmp_path / "out"
    share_tiny_models(out, shared_models)
    env = {
        **grid_env,
        **{k: ray_env[k] for k in ("RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER", "RAY_USAGE_STATS_ENABLED")},
    }
    result = run_grid(out, env, grid, "--backend", "ray", "--address", address, timeout=600)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    assert "Submitted 2 Ray tasks" in result.stderr
    rows = ResultsStore(out / "results.sqlite").rows()
    assert sorted(r["kind"] for r in rows) == ["baseline", "train"]
    assert all(r["status"] == "completed" and r["record"]["run_id"] == r["run_id"] for r in rows)
    for row in rows:
        assert "ray task pid" in (out / "logs" / f"{row['run_id']}.log").read_text()
    # the same store and locks as the local backend: a local rerun finds everything done
    again = subprocess.run(
        slopeft("grid", "run", grid, "--out", out),
        env=env,
        capture_output=True,
        text=True,
        cwd=REPO,
        timeout=300,
    )
    assert again.returncode == 0 and "2 already done, 0 to run" in " ".join(again.stderr.split())
