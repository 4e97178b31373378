"""The runner end to end: kill -9 mid-grid and rerun; a killed run resumes from its checkpoint; status."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
from pathlib import Path

import psutil
import pytest

from slopeft.experiments.grid import expand, grid_from_dict, load_grid
from slopeft.experiments.runner import ForkLauncher, grid_status, prepare
from slopeft.experiments.runner import run_grid as run_grid_here
from slopeft.experiments.store import ResultsStore
from slopeft.training.checkpoint import saved_progress
from tests.experiments.smoke import (
    REPO,
    SMOKE,
    mark_completed,
    run_grid,
    share_tiny_models,
    slopeft,
    trainable_runs,
)


def _completed(out: Path) -> dict[str, bytes]:
    done = {}
    for record in (out / "runs").glob("*/record.json"):
        data = record.read_bytes()
        if json.loads(data).get("status") == "completed":
            done[record.parent.name] = data
    return done


def test_kill_9_mid_grid_then_rerun_finds_every_run_exactly_once(tmp_path_factory, grid_env, shared_models):
    out = tmp_path_factory.getbasetemp() / "smoke-grid"
    if out.exists():  # the session's smoke grid already ran: kill a fresh one
        out = tmp_path_factory.mktemp("smoke-kill")
    share_tiny_models(out, shared_models)
    expected = set(trainable_runs(out))
    log = open(out.parent / f"{out.name}-first.log", "w")  # noqa: SIM115
    runner = subprocess.Popen(
        slopeft("grid", "run", SMOKE, "--workers", 2, "--out", out),
        env=grid_env,
        stdout=log,
        stderr=subprocess.STDOUT,
        cwd=REPO,
    )
    deadline = time.monotonic() + 600
    while True:  # mid-grid: several runs finished, runs in flight
        assert runner.poll() is None, "the grid finished before it could be killed"
        assert time.monotonic() < deadline, "the grid made no progress"
        children = psutil.Process(runner.pid).children(recursive=True)
        if len(_completed(out)) >= 8 and len(children) >= 2:  # fork server + at least one run
            break
        time.sleep(0.05)
    runner.send_signal(signal.SIGKILL)
    runner.wait()
    log.close()
    finished_before = _completed(out)
    assert 0 < len(finished_before) < len(expected)

    # Nothing outlives the runner: the fork server and its runs get SIGTERM from the kernel.
    _, alive = psutil.wait_procs(children, timeout=90)
    assert not alive, f"orphaned processes: {alive}"
    interrupted = [
        d.name
        for d in (out / "runs").iterdir()
        if (d / "checkpoint").exists() and not (d / "record.json").exists()
    ]
    states, _ = grid_status(load_grid(SMOKE, out))
    counts = {s: sum(x.state == s for x in states) for s in ("done", "running", "failed", "pending")}
    assert counts["running"] == 0 and counts["failed"] == 0
    assert counts["done"] >= len(finished_before) and counts["pending"] > 0

    result = run_grid(out, grid_env)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    mark_completed(out)

    rows = ResultsStore(out / "results.sqlite").rows()
    ids = [row["run_id"] for row in rows]
    assert len(ids) == len(set(ids)) == len(expected)  # every run exactly once
    assert set(ids) == expected
    assert all(row["status"] == "completed" and row["record"]["run_id"] == row["run_id"] for row in rows)
    for run_id in expected:
        run_dir = out / "runs" / run_id
        record = json.loads((run_dir / "record.json").read_text())  # complete JSON, never half-written
        assert record["status"] == "completed"
        assert (run_dir / "val_predictions.json").is_file()
        assert not list(run_dir.glob(".*.tmp")) and not (run_dir / "checkpoint").exists()
    # Runs finished before the kill were not run again: their records are byte for byte the same.
    for run_id, data in finished_before.items():
        assert (out / "runs" / run_id / "record.json").read_bytes() == data
    for run_id in interrupted:  # caught between checkpoint and record: continued, not restarted
        assert "Resuming from step" in (out / "logs" / f"{run_id}.log").read_text()

    # A third invocation finds nothing to do (in-process: nothing is started).
    summary = run_grid_here(load_grid(SMOKE, out), workers=2)
    assert summary.ok and summary.already_done == len(expected) and not summary.completed


def test_status_counts_and_progress_bar(smoke_grid):
    from typer.testing import CliRunner

    from slopeft.cli import app

    shown = CliRunner().invoke(
        app, ["grid", "status", str(SMOKE), "--out", str(smoke_grid)], env={"COLUMNS": "200"}
    )
    assert shown.exit_code == 0, shown.output
    total = len(expand(load_grid(SMOKE, smoke_grid)).runs)
    trained = len(trainable_runs(smoke_grid))
    text = " ".join(shown.output.split())
    assert f"{trained}/{total} done · 0 running · 0 failed · {total - trained} pending" in text
    if trained < total:
        assert "not trainable on this machine" in text
        # priced as the finished runs of their task and model (every smoke task and model has some)
        assert f"The {total - trained} run(s) still to train: about" in text and "not priced" not in text
    else:
        assert "still to train" not in text
    assert "━" in shown.output  # the bar
    assert "By task, model and seed" in shown.output
    summary = CliRunner().invoke(
        app, ["grid", "status", str(SMOKE), "--out", str(smoke_grid), "--summary", "--all"], env={"COLUMNS": "200"}
    )
    assert summary.exit_code == 0 and "By task, model and seed" in summary.output
    assert "┃ run " not in summary.output  # the counts only, not a row per run


def test_progress_is_counted_per_task_model_and_seed_with_what_is_left_priced():
    from slopeft.experiments.grid import RunSpec
    from slopeft.experiments.runner import CostEstimate, RunState, progress_by_task

    def state(task, model, method, seed, what, kind="train"):
        run = RunSpec(run_id=f"{task}-{model}-{method}-s{seed}", kind=kind, task=task, model=model, method=method,
                      method_name=method, seed=seed, config={}, config_hash="")
        return RunState(run, what)

    states = [
        state("si-nli", "baseline", "majority", 0, "done", kind="baseline"),
        state("si-nli", "e5", "lora", 1, "done"), state("si-nli", "e5", "full", 1, "done"),
        state("si-nli", "e5", "lora", 2, "running"), state("si-nli", "e5", "full", 2, "pending"),
        state("cb", "e5", "lora", 1, "failed"),
    ]
    cost = CostEstimate(1800.0, 1, 1, {"si-nli-e5-full-s2": 1800.0})
    rows = {(r.task, r.model, r.seed): r for r in progress_by_task(states, cost)}
    assert list(rows) == [("si-nli", "baseline", 0), ("si-nli", "e5", 1), ("si-nli", "e5", 2), ("cb", "e5", 1)]
    assert rows["si-nli", "e5", 1].counts == {"done": 2, "running": 0, "failed": 0, "pending": 0}
    second = rows["si-nli", "e5", 2]
    assert (second.counts["running"], second.counts["pending"], second.total) == (1, 1, 2)
    assert (second.cpu_seconds_left, second.unpriced) == (1800.0, 1)  # lora's seed 2 has no estimate here
    assert rows["cb", "e5", 1].counts["failed"] == 1 and rows["cb", "e5", 1].unpriced == 0


def test_killed_run_resumes_from_its_checkpoint(tmp_path, grid_env, shared_models):
    grid = grid_from_dict(
        {
            "models": ["tiny:bert"],
            "tasks": ["slo-superglue/cb"],
            "methods": ["lora"],
            "seeds": [3],
            "training": {
                "epochs": 2,
                "batch_size": 4,
                "max_train_examples": 64,
                "max_eval_examples": 16,
                "max_length": 48,
                "group_by_length": False,
            },
        },
        default_name="resume",
    )
    grid.out = tmp_path / "grid"
    share_tiny_models(grid.out, shared_models)
    expansion = expand(grid)
    store = prepare(grid, expansion)
    (run,) = expansion.runs
    job = grid.out / "jobs" / f"{run.run_id}.json"
    run_dir = grid.out / "runs" / run.run_id
    log_path = tmp_path / "worker.log"
    # The runner's own launcher: the run is a child forked from this (torch-importing) process.
    launcher = ForkLauncher({**grid_env, "OMP_NUM_THREADS": "1"}, tmp_path)

    def wait(pid: int, timeout: float) -> int:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            for done, code, _ in launcher.finished():
                if done == pid:
                    return code
            time.sleep(0.05)
        raise AssertionError(log_path.read_text())

    pid = launcher.start(job, log_path)
    deadline = time.monotonic() + 300
    while not (run_dir / "checkpoint" / "checkpoint.json").is_file():
        assert pid in launcher.active and time.monotonic() < deadline, log_path.read_text()
        launcher.finished()
        time.sleep(0.02)
    os.kill(pid, signal.SIGKILL)  # no chance to save anything more
    wait(pid, 60)
    if (run_dir / "record.json").exists():
        pytest.skip(
            "the run finished between its first checkpoint and the kill; the machine is too fast for this test"
        )
    assert store.get(run.run_id)["status"] == "running"
    (state,) = grid_status(grid)[0]
    assert state.state == "pending" and "resumes from its checkpoint" in state.note
    progress = saved_progress(run_dir / "checkpoint")  # how far it got, in the note
    assert progress["step"] > 0 and f"{progress['epoch']} of 2 epochs" in state.note
    assert f"(step {progress['step']}, " in state.note

    assert wait(launcher.start(job, log_path), 300) == 0, log_path.read_text()
    text = log_path.read_text()
    assert "Resuming from step" in text
    resumed_at = int(text.split("Resuming from step")[1].split()[0].rstrip("."))
    record = json.loads((run_dir / "record.json").read_text())
    assert 0 < resumed_at < record["cost"]["steps"] == 2 * 16
    row = store.get(run.run_id)
    assert row["status"] == "completed" and row["attempts"] == 2


def test_a_run_held_by_another_process_is_left_to_it(tmp_path, real_data_env):
    """Two runners on one grid never execute the same run: a worker finding the run's lock held says busy."""
    from slopeft.experiments.runner import job_for
    from slopeft.experiments.worker import BUSY, RunLock, execute

    grid = grid_from_dict({"tasks": ["slo-superglue/cb"], "baselines": ["majority"]}, default_name="busy")
    grid.out = tmp_path / "grid"
    expansion = expand(grid)
    prepare(grid, expansion)
    (run,) = expansion.runs
    job = job_for(grid, run)
    other = RunLock(job["lock"])  # flock locks are per open file: this holds it as another process would
    assert other.acquire()
    try:
        assert execute(job) == BUSY
        assert grid_status(grid)[0][0].state == "running"
        assert not (grid.out / "runs" / run.run_id).exists()
    finally:
        other.release()
    assert execute(job) == 0
    assert grid_status(grid)[0][0].state == "done"
    record = json.loads((grid.out / "runs" / run.run_id / "record.json").read_text())
    assert record["metrics"]["val"] == {
        "accuracy": 0.5,
        "macro_f1": pytest.approx(2 / 9),
        "average": pytest.approx(13 / 36),
    }
    assert execute(job) == 0  # finished: nothing is run again
    assert ResultsStore(job["store"]).get(run.run_id)["attempts"] == 1


def test_results_export_cli(smoke_grid, tmp_path):
    import pandas as pd
    from typer.testing import CliRunner

    from slopeft.cli import app

    total = len(trainable_runs(smoke_grid))  # the store holds what was trained
    for fmt in ("csv", "parquet", "json"):
        target = tmp_path / f"results.{fmt}"
        shown = CliRunner().invoke(
            app,
            [
                "results",
                "export",
                "--grid",
                str(SMOKE),
                "--out",
                str(smoke_grid),
                "--format",
                fmt,
                "-o",
                str(target),
            ],
        )
        assert shown.exit_code == 0, shown.output
        if fmt == "json":
            rows = json.loads(target.read_text())
            assert len(rows) == total and all(r["record"]["versions"] for r in rows)
        else:
            frame = pd.read_csv(target) if fmt == "csv" else pd.read_parquet(target)
            assert len(frame) == total and frame["run_id"].is_unique
            assert {"val.accuracy", "cost.trainable_share", "git.commit", "data.fingerprint"} <= set(
                frame.columns
            )
            assert (frame["status"] == "completed").all()


def test_a_failing_run_is_recorded_with_its_error_and_fails_the_command(tmp_path):
    from slopeft.cli import main

    grid_file = tmp_path / "bad.yaml"
    grid_file.write_text(
        f"name: bad\ntasks: [slo-superglue/cb]\nbaselines: [majority]\ndata_dir: {tmp_path / 'none'}\n"
    )
    out = tmp_path / "out"
    with pytest.raises(SystemExit) as exited:
        main(["grid", "run", str(grid_file), "--out", str(out)])
    assert exited.value.code == 2
    (row,) = ResultsStore(out / "results.sqlite").rows()
    assert row["status"] == "failed" and "slo-superglue" in row["error"] and row["attempts"] == 1
    assert "Traceback" in (out / "logs" / f"{row['run_id']}.log").read_text()
    (state,) = grid_status(load_grid(grid_file, out))[0]
    assert state.state == "failed" and state.note == row["error"]


def test_worker_threads_come_from_threads_then_the_environment_then_the_cores(monkeypatch):
    from slopeft.experiments.runner import _worker_env

    monkeypatch.setenv("OMP_NUM_THREADS", "5")
    assert _worker_env(2)["OMP_NUM_THREADS"] == "5"  # a user's setting is kept
    assert _worker_env(2, threads=3)["OMP_NUM_THREADS"] == "3"  # --threads wins over it
    monkeypatch.delenv("OMP_NUM_THREADS")
    monkeypatch.setattr(os, "cpu_count", lambda: 8)
    assert _worker_env(2)["OMP_NUM_THREADS"] == "4" and _worker_env(16)["OMP_NUM_THREADS"] == "1"


def test_threads_per_run_reach_the_run_and_its_record(tmp_path, grid_env, shared_models):
    """In a subprocess, as users run it: a run forked in this (threaded) test process that starts more
    OpenMP threads can deadlock."""
    import yaml

    grid_file = tmp_path / "threads.yaml"
    grid_file.write_text(yaml.safe_dump({
        "name": "threads", "models": ["tiny:bert"], "tasks": ["slo-superglue/cb"], "methods": ["bitfit"],
        "seeds": [1], "training": {"epochs": 1, "batch_size": 4, "max_train_examples": 8,
                                   "max_eval_examples": 8, "max_length": 32},
    }))
    out = tmp_path / "grid"
    share_tiny_models(out, shared_models)
    env = {k: v for k, v in grid_env.items() if k != "OMP_NUM_THREADS"}
    # 2 workers would give each run max(1, cores // 2) threads; --threads 3 asks for more than that.
    result = run_grid(out, env, grid_file, "--threads", 3)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    assert "2 at a time, 3 thread(s) each" in " ".join((result.stdout + result.stderr).split())
    (record,) = (json.loads(p.read_text()) for p in (out / "runs").glob("*/record.json"))
    assert record["cost"]["threads"] == 3
