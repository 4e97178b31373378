"""A grid across a cluster: each run a Ray task with its resource request.

``slopeft grid run GRID --backend ray --address HEAD:PORT`` connects to a running Ray cluster
(``ray start --head`` on one machine, ``ray start --address HEAD:PORT`` on the others) and submits
one task per unfinished run with the grid's ``resources:`` (``num_cpus``, ``num_gpus``,
``memory`` in bytes). Inside the task the run executes in a fresh subprocess through the same
worker as the local backend, so it takes the same run lock, resumes from the same checkpoint and
writes the same SQLite store. The grid's output folder must therefore be on a filesystem every
node sees at the same path (NFS with working ``flock``, or a single machine); slopeft and the data
must be installed on every node. Ray is an optional extra: ``pip install 'slopeft[distributed]'``.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from rich.console import Console

from slopeft.errors import ConfigError
from slopeft.experiments.grid import Grid, RunSpec
from slopeft.experiments.jobs import job_for, report_exit
from slopeft.experiments.store import ResultsStore

RETRY_BUSY_SECONDS = 2.0


def _execute_in_subprocess(job: dict[str, Any], log_path: str, env_overrides: dict[str, str]) -> int:
    """The body of a Ray task: one worker subprocess on whichever node Ray placed the task."""
    env = {**os.environ, **env_overrides}
    env.setdefault("TOKENIZERS_PARALLELISM", "false")
    env.setdefault("PYTHONUNBUFFERED", "1")
    Path(log_path).parent.mkdir(parents=True, exist_ok=True)
    with open(log_path, "ab") as log:
        log.write(f"\n=== {time.strftime('%Y-%m-%d %H:%M:%S')} ray task pid {os.getpid()}\n".encode())
        log.flush()
        completed = subprocess.run(
            [sys.executable, "-m", "slopeft.experiments.worker", "-"],
            input=json.dumps(job).encode(),
            stdout=log,
            stderr=subprocess.STDOUT,
            env=env,
            check=False,
        )
    return completed.returncode


def _task_options(run: RunSpec) -> dict[str, Any]:
    resources = run.resources or {}
    options: dict[str, Any] = {"num_cpus": resources.get("num_cpus", 1.0), "max_retries": 0}
    if resources.get("num_gpus"):
        options["num_gpus"] = resources["num_gpus"]
    if resources.get("memory"):
        options["memory"] = int(resources["memory"])
    return options


def run_with_ray(
    grid: Grid, todo: list[RunSpec], address: str | None, store: ResultsStore, console: Console, summary
) -> None:
    try:
        import ray
    except ImportError:
        raise ConfigError(
            "The Ray backend needs Ray: pip install 'slopeft[distributed]' (or pip install 'ray[default]')."
        ) from None
    if not address:
        raise ConfigError("--backend ray needs --address HEAD:PORT of a running cluster (or 'auto').")
    ray.init(address=address, log_to_driver=False, ignore_reinit_error=True)
    try:
        env_overrides = {
            k: os.environ[k] for k in ("SLOPEFT_DATA", "SLOPEFT_CACHE", "HF_HOME") if k in os.environ
        }
        remote = ray.remote(_execute_in_subprocess)
        pending: dict[Any, RunSpec] = {}
        waiting: list[tuple[float, RunSpec]] = []

        def submit(run: RunSpec) -> None:
            options = _task_options(run)
            threads = str(max(1, int(options["num_cpus"])))
            ref = remote.options(**options).remote(
                job_for(grid, run),
                str((grid.out / "logs" / f"{run.run_id}.log").resolve()),
                {**env_overrides, "OMP_NUM_THREADS": threads},
            )
            pending[ref] = run

        for run in todo:
            submit(run)
        console.print(f"Submitted {len(todo)} Ray tasks to {address}.")
        while pending or waiting:
            for not_before, run in list(waiting):
                if not_before <= time.monotonic():
                    waiting.remove((not_before, run))
                    submit(run)
            if not pending:
                time.sleep(0.2)
                continue
            done, _ = ray.wait(list(pending), num_returns=1, timeout=1.0)
            for ref in done:
                run = pending.pop(ref)
                try:
                    code = ray.get(ref)
                except Exception as err:  # noqa: BLE001  (a task that died: node lost, out of memory)
                    store.upsert(
                        run.to_dict(),
                        "failed",
                        error=f"Ray task failed: {err}".splitlines()[0],
                        grid=grid.name,
                    )
                    code = 1
                if not report_exit(run, code, grid, store, console, summary):
                    waiting.append((time.monotonic() + RETRY_BUSY_SECONDS, run))
    finally:
        ray.shutdown()
