"""Executing a grid: locally N runs at a time, each in its own subprocess, or as Ray tasks on a cluster.

The runner is idempotent. Before scheduling it syncs every completed record on disk into the
store (a worker killed between writing its record and its store row loses nothing), skips
finished runs, and starts the rest through :mod:`~slopeft.experiments.worker`, which resumes an
interrupted run from its checkpoint. A run another process is working on (its lock is held) is
retried later instead of being started twice. Folders of a grid's output::

    <out>/grid.json            the expanded grid (what was asked, for reports)
    <out>/results.sqlite       the results store (WAL)
    <out>/runs/<run_id>/       one run: record.json, val_predictions.json, adapter/, checkpoint/
    <out>/jobs/<run_id>.json   the job a worker executes
    <out>/logs/<run_id>.log    the worker's output (appended across attempts)
    <out>/locks/<run_id>.lock  held by the process running the run
    <out>/models/tiny-ARCH/    tiny models built on the fly for ``tiny:ARCH`` entries
    <results>/<run_id>/        with ``results:`` in the grid: the finished run's record.json and
                               val_predictions.json, published for committing; such a run is done
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import time
from collections import deque
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from rich.console import Console

from slopeft.errors import ConfigError
from slopeft.experiments.grid import Expansion, Grid, RunSpec, expand
from slopeft.experiments.jobs import RunSummary, job_for, report_exit
from slopeft.experiments.published import (
    diverged_note,
    publish,
    published_failure,
    read_published,
)
from slopeft.experiments.store import ResultsStore
from slopeft.experiments.worker import RunLock
from slopeft.records import completed_record_data, write_json_atomic

RETRY_BUSY_SECONDS = 2.0
POLL_SECONDS = 0.2


def prepare(grid: Grid, expansion: Expansion) -> ResultsStore:
    """Creates the grid's folders, writes the expanded grid and the jobs; opens the store."""
    for sub in ("runs", "jobs", "logs", "locks"):
        (grid.out / sub).mkdir(parents=True, exist_ok=True)
    write_json_atomic(grid.out / "grid.json", grid_description(grid, expansion))
    for run in expansion.runs:
        path = grid.out / "jobs" / f"{run.run_id}.json"
        job = job_for(grid, run)
        if not path.is_file() or json.loads(path.read_text()) != job:
            write_json_atomic(path, job)
    return ResultsStore(grid.store_path)


def grid_description(grid: Grid, expansion: Expansion) -> dict[str, Any]:
    return {
        "name": grid.name,
        "description": grid.description,
        "source": str(grid.source) if grid.source else None,
        "models": grid.models,
        "tasks": grid.tasks,
        "methods": [m.label for m in grid.methods],
        "seeds": grid.seeds,
        "baselines": [b.label if b.model is None else f"{b.label} ({b.model})" for b in grid.baselines],
        "data_dir": grid.data_dir,
        "runs": [r.run_id for r in expansion.runs],
        "skipped": [{"what": what, "why": why} for what, why in expansion.skipped],
        "not_trainable_here": [{"run": run_id, "why": why} for run_id, why in expansion.not_here.items()],
    }


def sync_from_disk(grid: Grid, runs: list[RunSpec], store: ResultsStore) -> int:
    """Upserts every completed record found on disk whose store row is not completed; returns how many.

    A record is found in the run's folder or among the grid's published results; a finished run
    not yet published (its worker was killed in between) is published now.
    """
    published = read_published(grid.results, [run.run_id for run in runs])
    statuses = store.statuses()
    synced = 0
    for run in runs:
        run_dir = grid.runs_dir / run.run_id
        local = completed_record_data(run_dir)
        published_now = grid.results is not None and local is not None and publish(run_dir, grid.results, run.run_id)
        if statuses.get(run.run_id) == "completed":
            continue
        where, record = run_dir, local
        if published_now:  # the run's own record, just copied among the published results
            where = grid.results / run.run_id
        elif run.run_id in published:  # read (and checked) once above
            where, record = grid.results / run.run_id, published[run.run_id]
        if record is not None:
            store.upsert(run.to_dict(), "completed", record=record, run_dir=where.resolve(), grid=grid.name)
            synced += 1
        elif statuses.get(run.run_id) is None and (failure := published_failure(grid.results, run.run_id)):
            note = diverged_note(grid.results, run.run_id, failure.get("error", ""))
            store.upsert(run.to_dict(), "failed", error=note, run_dir=(grid.results / run.run_id).resolve(),
                         grid=grid.name)
    return synced


def import_results(grid: Grid) -> int:
    """Rebuilds the grid's store from the records on disk (its run folders and published results)."""
    expansion = expand(grid)
    grid.out.mkdir(parents=True, exist_ok=True)
    return sync_from_disk(grid, expansion.runs, ResultsStore(grid.store_path))


def _worker_env(workers: int, threads: int | None = None) -> dict[str, str]:
    """The environment of the runs: ``threads`` per run where given, else ``OMP_NUM_THREADS`` where
    set, else the machine's cores shared among the ``workers`` runs (the runner cannot see another
    grid on the same cores: two grids of 1 worker each would take every core twice over)."""
    env = dict(os.environ)
    env["SLOPEFT_PARENT_PID"] = str(os.getpid())
    env.setdefault("TOKENIZERS_PARALLELISM", "false")
    if threads is not None:
        env["OMP_NUM_THREADS"] = str(threads)
    # N runs share the machine's cores instead of each starting one thread per core.
    env.setdefault("OMP_NUM_THREADS", str(max(1, (os.cpu_count() or 1) // max(workers, 1))))
    env.setdefault("PYTHONUNBUFFERED", "1")
    return env


def run_grid(
    grid: Grid,
    workers: int = 1,
    backend: str = "local",
    address: str | None = None,
    console: Console | None = None,
    retry_failed: bool = True,
    isolation: str = "fork",
    retry_diverged: bool = False,
    threads: int | None = None,
) -> RunSummary:
    """Runs every unfinished run of ``grid``; see the module docstring.

    Args:
        grid: the loaded grid.
        workers: runs at the same time (local backend).
        backend: ``local`` (subprocesses here) or ``ray`` (Ray tasks on the cluster at ``address``).
        address: the Ray cluster (``127.0.0.1:6379``; ``auto`` finds a local one).
        console: where progress goes.
        retry_failed: also rerun runs that failed before (else they stay failed).
        isolation: local backend: ``fork`` (each run forked from a server that imported torch once)
            or ``spawn`` (a fresh interpreter per run).
        retry_diverged: also train runs whose divergence is published under the grid's ``results:``
            (seeded, they diverge again unless something else changed).
        threads: local backend: CPU threads per run (default: ``OMP_NUM_THREADS``, else the cores
            divided among the workers).
    """
    console = console or Console(stderr=True)
    if workers < 1:
        raise ConfigError("--workers must be at least 1.")
    if threads is not None and threads < 1:
        raise ConfigError("--threads must be at least 1.")
    expansion = expand(grid)
    store = prepare(grid, expansion)
    sync_from_disk(grid, expansion.runs, store)
    statuses = store.statuses()
    summary = RunSummary(total=len(expansion.runs), skipped=expansion.skipped)
    todo = []
    for run in expansion.runs:
        if statuses.get(run.run_id) == "completed":
            summary.already_done += 1
        elif not retry_diverged and published_failure(grid.results, run.run_id) is not None:
            summary.diverged.append(run.run_id)
        elif statuses.get(run.run_id) == "failed" and not retry_failed:
            summary.failed.append(run.run_id)
        elif run.run_id in expansion.not_here:
            summary.not_here.append((run.run_id, expansion.not_here[run.run_id]))
        else:
            todo.append(run)
    env = _worker_env(workers, threads)
    console.print(
        f"Grid [bold]{grid.name}[/bold]: {summary.total} runs, {summary.already_done} already done, "
        f"{len(todo)} to run ({backend}"
        + (f", {workers} at a time, {env['OMP_NUM_THREADS']} thread(s) each"
           if backend == "local" else "")
        + "); "
        f"results in {grid.store_path}",
        highlight=False,
    )
    if summary.diverged:
        console.print(
            f"{len(summary.diverged)} run(s) diverged before, published in {grid.results}: not trained again "
            f"(--retry-diverged trains them): {', '.join(summary.diverged)}",
            highlight=False,
        )
    for what, why in expansion.skipped:
        reason = why.split(". ")[0].split(": ")[0]  # the first clause; grid.json keeps the whole reason
        console.print(f"[dim]skipped {what}: {reason}[/dim]", highlight=False)
    for why in sorted({why for _, why in summary.not_here}):
        ids = [run_id for run_id, reason in summary.not_here if reason == why]
        console.print(
            f"[yellow]{len(ids)} run(s) not trained on this machine[/yellow] (the rest of the grid runs; "
            f"a machine that has what they need trains them): {why}\n  {', '.join(ids)}",
            highlight=False,
        )
    if todo:
        if backend == "local":
            _run_local(grid, todo, workers, store, console, summary, env, isolation)
        elif backend == "ray":
            from slopeft.experiments.ray_backend import run_with_ray

            run_with_ray(grid, todo, address, store, console, summary)
        else:
            raise ConfigError(f"--backend must be local or ray, not {backend!r}.")
    console.print(
        f"Grid {grid.name}: {summary.already_done + len(summary.completed)}/{summary.total} done, "
        f"{len(summary.failed)} failed, {len(summary.interrupted)} interrupted"
        f"{f', {len(summary.diverged)} diverged before' if summary.diverged else ''}"
        f"{f', {len(summary.not_here)} not trainable here' if summary.not_here else ''}.",
        highlight=False,
    )
    return summary


def _log_timing(grid: Grid, run: RunSpec, code: int, wall: float, cpu: float | None) -> None:
    """Appends the run's wall and CPU seconds to <out>/timings.jsonl (for sizing grids)."""
    line = {"run_id": run.run_id, "task": run.task, "model": run.model, "method": run.method, "exit": code}
    line.update(wall_s=round(wall, 2), cpu_s=None if cpu is None else round(cpu, 2))
    with open(grid.out / "timings.jsonl", "a", encoding="utf-8") as handle:
        handle.write(json.dumps(line) + "\n")


class SpawnLauncher:
    """One ``python -m slopeft.experiments.worker JOB`` per run (``--isolation spawn``)."""

    def __init__(self, env: dict[str, str], log_dir: Path) -> None:
        self.env = env
        self.active: dict[int, tuple[subprocess.Popen, Any]] = {}

    def start(self, job_path: Path, log_path: Path) -> int:
        log = open(log_path, "ab")  # noqa: SIM115  (closed when the run ends)
        log.write(f"\n=== {time.strftime('%Y-%m-%d %H:%M:%S')} runner pid {os.getpid()}\n".encode())
        log.flush()
        # Called from the main thread only: PR_SET_PDEATHSIG fires when the creating thread exits.
        process = subprocess.Popen(
            [sys.executable, "-m", "slopeft.experiments.worker", str(job_path)],
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            env=self.env,
        )
        self.active[process.pid] = (process, log)
        return process.pid

    def finished(self) -> list[tuple[int, int, float | None]]:
        """(pid, exit code, CPU seconds or None) of the runs that ended since the last call."""
        done = []
        for pid, (process, log) in list(self.active.items()):
            code = process.poll()
            if code is not None:
                log.close()
                del self.active[pid]
                done.append((pid, code, None))
        return done

    def close(self) -> None:
        for process, log in self.active.values():
            process.terminate()
            process.wait()
            log.close()


#: Imported by the runner before it forks runs, so each run starts with them loaded.
PRELOAD = (
    "torch",
    "transformers",
    "peft",
    "accelerate",
    "slopeft.methods",
    "slopeft.tasks",
    "slopeft.models.heads",
    "slopeft.training.run",
    "slopeft.training.trainer",
    "slopeft.evaluation.baselines",
)


class ForkLauncher:
    """Each run a child forked from this runner after it imported torch & co. once (``--isolation fork``).

    Importing torch, transformers and peft costs several CPU seconds per process; a grid of small
    runs (CI's smoke grid: dozens of runs of a few steps) would spend most of its time importing.
    The runner never trains or touches a tensor itself, runs no threads (its progress display is
    refreshed by hand) and holds no open database connection, so a forked child starts clean: its
    own process, memory and crash, like a fresh interpreter, without the import time.
    """

    def __init__(self, env: dict[str, str], log_dir: Path) -> None:
        import importlib

        self.env = env
        for module in PRELOAD:
            importlib.import_module(module)
        self.active: set[int] = set()

    def start(self, job_path: Path, log_path: Path) -> int:
        sys.stdout.flush()
        sys.stderr.flush()
        pid = os.fork()
        if pid == 0:
            _forked_run(job_path, log_path, self.env)  # never returns
        self.active.add(pid)
        return pid

    def finished(self) -> list[tuple[int, int, float | None]]:
        """(pid, exit code, CPU seconds) of the runs that ended since the last call."""
        done = []
        for pid in list(self.active):
            waited, status, usage = os.wait4(pid, os.WNOHANG)
            if waited:
                self.active.discard(pid)
                done.append((pid, os.waitstatus_to_exitcode(status), usage.ru_utime + usage.ru_stime))
        return done

    def close(self) -> None:
        for pid in self.active:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGTERM)  # the trainer saves a checkpoint on SIGTERM
        for pid in self.active:
            with contextlib.suppress(ChildProcessError):
                os.waitpid(pid, 0)
        self.active.clear()


def _forked_run(job_path: Path, log_path: Path, env: dict[str, str]) -> None:
    """In a forked child: own output and environment, die with the runner, run the job, exit."""
    code = 1
    try:
        log = os.open(log_path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
        null = os.open(os.devnull, os.O_RDONLY)
        os.dup2(null, 0)
        os.dup2(log, 1)
        os.dup2(log, 2)
        os.close(log)
        os.close(null)
        # Whatever the parent had bound to sys.stdout/stderr (a capture, a proxy), this run writes to its log.
        sys.stdout = open(1, "w", buffering=1, encoding="utf-8", errors="replace", closefd=False)  # noqa: SIM115
        sys.stderr = open(2, "w", buffering=1, encoding="utf-8", errors="replace", closefd=False)  # noqa: SIM115
        os.environ.clear()
        os.environ.update(env)
        os.write(1, f"\n=== {time.strftime('%Y-%m-%d %H:%M:%S')} forked run pid {os.getpid()}\n".encode())
        import torch

        # OMP_NUM_THREADS was read when torch was loaded in the runner; apply this run's share now.
        torch.set_num_threads(int(env.get("OMP_NUM_THREADS", "1")))
        from slopeft.experiments import worker

        code = worker.run_job_file(str(job_path))
    except SystemExit as done:
        code = done.code if isinstance(done.code, int) else 1
    except BaseException:  # noqa: BLE001
        import traceback

        traceback.print_exc()
    finally:
        with contextlib.suppress(Exception):
            sys.stdout.flush()
            sys.stderr.flush()
        os._exit(code)


def _run_local(
    grid: Grid,
    todo: list[RunSpec],
    workers: int,
    store: ResultsStore,
    console: Console,
    summary: RunSummary,
    env: dict[str, str],
    isolation: str = "fork",
) -> None:
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    queue: deque[tuple[float, RunSpec]] = deque((0.0, run) for run in todo)
    active: dict[int, tuple[RunSpec, float]] = {}
    if isolation == "fork" and not hasattr(os, "fork"):
        isolation = "spawn"
    launcher_class = {"fork": ForkLauncher, "spawn": SpawnLauncher}.get(isolation)
    if launcher_class is None:
        raise ConfigError(f"--isolation must be fork or spawn, not {isolation!r}.")
    progress = Progress(
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("{task.fields[running]}"),
        TimeElapsedColumn(),
        console=console,
        transient=True,
        auto_refresh=False,  # no refresh thread: the fork launcher forks from this process
        redirect_stdout=False,
        redirect_stderr=False,
    )
    launcher = launcher_class(env, grid.out / "logs")
    try:
        with progress:
            bar = progress.add_task(grid.name, total=len(todo), running="")
            while queue or active:
                now = time.monotonic()
                for _ in range(len(queue)):
                    if len(active) >= workers:
                        break
                    not_before, run = queue.popleft()
                    if not_before > now:
                        queue.append((not_before, run))
                        continue
                    pid = launcher.start(
                        (grid.out / "jobs" / f"{run.run_id}.json").resolve(),
                        (grid.out / "logs" / f"{run.run_id}.log").resolve(),
                    )
                    active[pid] = (run, time.monotonic())
                for pid, code, cpu in launcher.finished():
                    run, started = active.pop(pid, (None, 0.0))
                    if run is None:
                        continue
                    _log_timing(grid, run, code, time.monotonic() - started, cpu)
                    if report_exit(run, code, grid, store, console, summary, cpu):
                        progress.advance(bar)
                    else:
                        queue.append((time.monotonic() + RETRY_BUSY_SECONDS, run))
                names = [r.run_id for r, _ in active.values()]
                progress.update(bar, running=", ".join(names) if len(names) <= 2 else f"{len(names)} running")
                progress.refresh()
                time.sleep(POLL_SECONDS)
    finally:
        launcher.close()


# -- status -------------------------------------------------------------------------------------
@dataclass
class RunState:
    run: RunSpec
    state: str  # done | running | failed | pending
    note: str = ""
    record: dict[str, Any] | None = None  # a done run's record, when one is on disk


def _checkpointed(run: RunSpec, run_dir: Path) -> str:
    """How far a run's last checkpoint got ("2 of 3 epochs, 1,039 train CPU-s, saved 21:49"), or ""."""
    from slopeft.training.checkpoint import saved_progress

    progress = saved_progress(run_dir / "checkpoint")
    if progress is None:
        return ""
    epochs = (run.config.get("training") or {}).get("epochs")
    done = f"{progress['epoch']}{f' of {epochs:g}' if isinstance(epochs, int | float) else ''} epochs"
    if progress["batch_in_epoch"]:
        done += f" and {progress['batch_in_epoch']} batches"
    saved = time.strftime("%m-%d %H:%M", time.localtime(progress["saved"]))
    return f"{done} done by {saved} (step {progress['step']}, {progress['train_cpu_seconds']:,.0f} train CPU-s)"


def grid_status(grid: Grid) -> tuple[list[RunState], Expansion]:
    """Each run's state: done (completed record), running (its lock is held), failed, or pending."""
    expansion = expand(grid)
    published = read_published(grid.results, [run.run_id for run in expansion.runs])
    rows = {}
    if grid.store_path.is_file():
        rows = {row["run_id"]: row for row in ResultsStore(grid.store_path).rows()}
    states = []
    for run in expansion.runs:
        row = rows.get(run.run_id) or {}
        run_dir = grid.runs_dir / run.run_id
        record = published.get(run.run_id) or completed_record_data(run_dir)
        if row.get("status") == "completed" or record is not None:
            note = f"{row.get('main_metric') or ''} {row.get('main') or ''}".strip()
            states.append(RunState(run, "done", note, record))
        elif RunLock(grid.out / "locks" / f"{run.run_id}.lock").held_elsewhere():
            note = f"attempt {row.get('attempts') or 1}"
            if progress := _checkpointed(run, run_dir):
                note += f"; {progress}"
            states.append(RunState(run, "running", note))
        elif (failure := published_failure(grid.results, run.run_id)) is not None:
            note = diverged_note(grid.results, run.run_id, failure.get("error", ""))
            states.append(RunState(run, "failed", note))
        elif row.get("status") == "failed":
            states.append(RunState(run, "failed", row.get("error") or ""))
        else:
            resumable = (run_dir / "checkpoint").exists() or (run_dir / "checkpoint.old").exists()
            note = "resumes from its checkpoint" if resumable else ""
            if resumable and (progress := _checkpointed(run, run_dir)):
                note += f" ({progress})"
            if run.run_id in expansion.not_here:
                note = f"not trainable on this machine: {expansion.not_here[run.run_id].split('. ')[0]}"
            states.append(RunState(run, "pending", note))
    return states, expansion


@dataclass
class CostEstimate:
    """What the unfinished runs of a grid will cost, from what its finished runs cost."""

    cpu_seconds: float  # of the runs with an estimate
    estimated: int  # runs still to train with an estimate
    unknown: int  # runs still to train with no estimate (no finished run of the model, or a baseline)
    per_run: dict[str, float] = field(default_factory=dict)  # run id -> its estimate, for the priced runs
    by_tokens: int = 0  # of ``estimated``: priced by the model's CPU seconds per training token

    @property
    def runs(self) -> int:
        """The runs still to train: not done, and not a published divergence (``grid run`` skips those)."""
        return self.estimated + self.unknown


def _run_cpu_seconds(record: dict[str, Any]) -> float | None:
    """A finished run's CPU seconds: training's own for a trained run, the run's wall time for a
    baseline (it records no CPU time; a prompting baseline keeps its one core busy)."""
    cost = record.get("cost") or {}
    value = cost.get("train_cpu_seconds") if record.get("kind") != "baseline" else cost.get("wall_seconds")
    return float(value) if isinstance(value, int | float) and not isinstance(value, bool) else None


def estimate_remaining(grid: Grid, states: list[RunState]) -> CostEstimate:
    """The CPU time of the runs still to train, each priced as the mean of the finished runs of its task,
    model and method (else of its task and model, any method) on the machines that trained them.

    A training run of a task with no finished run of its model is priced by tokens
    (:mod:`~slopeft.experiments.pricing`): the model and method's CPU seconds per training token on
    the tasks they have trained (else the model's, any method), times the tokens the run trains on.
    """
    from slopeft.experiments.pricing import TokenCounter, token_rates

    by_method: dict[tuple, list[float]] = {}
    by_model: dict[tuple, list[float]] = {}
    finished: list[tuple[RunSpec, float]] = []
    for s in states:
        if s.state != "done":
            continue
        seconds = _run_cpu_seconds(s.record) if s.record else None
        if seconds is not None:
            by_method.setdefault((s.run.task, s.run.model, s.run.method), []).append(seconds)
            by_model.setdefault((s.run.task, s.run.model, s.run.kind), []).append(seconds)
            if s.run.kind == "train":
                finished.append((s.run, seconds))
    total, estimated, unknown, per_run = 0.0, 0, 0, {}
    unpriced: list[RunSpec] = []
    for s in states:
        if s.state == "done" or published_failure(grid.results, s.run.run_id) is not None:
            continue
        known = by_method.get((s.run.task, s.run.model, s.run.method)) or by_model.get(
            (s.run.task, s.run.model, s.run.kind)
        )
        if known:
            per_run[s.run.run_id] = sum(known) / len(known)
            total += per_run[s.run.run_id]
            estimated += 1
        else:
            unpriced.append(s.run)
    by_tokens = 0
    wanted = {run.model for run in unpriced if run.kind == "train"} & {run.model for run, _ in finished}
    if wanted:
        counter = TokenCounter(grid)
        rates = token_rates(counter, [(run, sec) for run, sec in finished if run.model in wanted])
        for run in unpriced:
            rate = (rates.get((run.model, run.method)) or rates.get((run.model,))) if run.kind == "train" else None
            tokens = counter.tokens(run) if rate else None
            if rate and tokens:
                per_run[run.run_id] = rate * tokens
                total += per_run[run.run_id]
                by_tokens += 1
    estimated += by_tokens
    unknown = len(unpriced) - by_tokens
    return CostEstimate(total, estimated, unknown, per_run, by_tokens)


@dataclass
class Progress:
    """How far one task, model and seed of a grid has got (baselines: model ``baseline``, seed 0)."""

    task: str
    model: str
    seed: int
    counts: dict[str, int]  # done, running, failed, pending
    cpu_seconds_left: float = 0.0  # the priced part of what is still to train
    unpriced: int = 0  # runs still to train with no estimate

    @property
    def total(self) -> int:
        return sum(self.counts.values())


def progress_by_task(states: list[RunState], cost: CostEstimate | None = None) -> list[Progress]:
    """The grid's runs counted per task, model and seed, in the grid's order: where a study that runs
    in pieces stands (which seeds of which task are complete) without reading every run's row."""
    rows: dict[tuple[str, str, int], Progress] = {}
    for s in states:
        key = (s.run.task, s.run.model, s.run.seed)
        row = rows.setdefault(key, Progress(*key, {"done": 0, "running": 0, "failed": 0, "pending": 0}))
        row.counts[s.state] += 1
        if cost is not None and s.run.run_id in cost.per_run:
            row.cpu_seconds_left += cost.per_run[s.run.run_id]
        elif cost is not None and s.state in ("pending", "running"):
            row.unpriced += 1
    return list(rows.values())
