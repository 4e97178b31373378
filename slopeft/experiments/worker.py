"""One grid run in its own process: ``python -m slopeft.experiments.worker JOB.json`` (or ``-`` for stdin).

A job is a :class:`~slopeft.experiments.grid.RunSpec` plus where things go (run folder, store,
lock, data). The worker

1. holds an exclusive ``flock`` on the run's lock file for its whole life, so two runners (two
   ``grid run`` invocations, or a runner and a leftover worker) never train the same run at once
   — the second one exits with :data:`BUSY` and its runner retries later;
2. returns at once when the run folder, or the grid's published results, already hold a completed
   record (syncing it into the store), so nothing finished is ever trained twice;
3. trains with ``resume=True``: a run killed earlier continues from its checkpoint;
4. publishes a finished run's record and validation predictions to the grid's ``results:``
   folder (when it has one), then upserts the row — ``running``, then ``completed`` with the full
   record, or ``failed`` with the error — into the results store.

Under a local runner the worker dies with its parent (Linux ``PR_SET_PDEATHSIG`` → SIGTERM, which
the trainer turns into a checkpoint), so ``kill -9`` of ``slopeft grid run`` leaves no orphans.
"""

from __future__ import annotations

import contextlib
import ctypes
import fcntl
import json
import os
import shutil
import signal
import sys
import time
import traceback
from pathlib import Path
from typing import Any

from rich.console import Console

from slopeft.experiments.published import diverged_note, publish, publish_failure, published_record
from slopeft.records import completed_record_data

BUSY = 75  # EX_TEMPFAIL: another process holds the run
INTERRUPTED = 130
TINY_MARKER = ".slopeft-tiny-complete"

_interrupted = False


class RunLock:
    """An exclusive, non-blocking ``flock`` on ``path``; the kernel drops it when the process dies."""

    def __init__(self, path: Path | str) -> None:
        self.path = Path(path)
        self._fd: int | None = None

    def acquire(self) -> bool:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            os.close(fd)
            return False
        os.ftruncate(fd, 0)
        os.write(fd, f"{os.getpid()}\n".encode())
        self._fd = fd
        return True

    def release(self) -> None:
        if self._fd is not None:
            fcntl.flock(self._fd, fcntl.LOCK_UN)
            os.close(self._fd)
            self._fd = None

    def held_elsewhere(self) -> bool:
        """True when another process holds the lock (checked without keeping it)."""
        if not self.path.exists():
            return False
        if self.acquire():
            self.release()
            return False
        return True


def resolve_grid_model(model: str, models_dir: Path) -> str:
    """The folder to load ``model`` from: ``tiny:ARCH`` is built once into ``models_dir`` (under a lock)."""
    from slopeft.experiments.grid import TINY_PREFIX

    if not model.startswith(TINY_PREFIX):
        return model
    arch = model[len(TINY_PREFIX) :]
    target = Path(models_dir) / f"tiny-{arch}"
    if (target / TINY_MARKER).is_file():
        return str(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    with open(target.parent / f".tiny-{arch}.lock", "w") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)  # blocking: the first worker builds, the others wait
        if not (target / TINY_MARKER).is_file():
            from slopeft.models.tiny import make_tiny_model

            tmp = target.with_name(f".{target.name}.{os.getpid()}.tmp")
            shutil.rmtree(tmp, ignore_errors=True)
            make_tiny_model(arch, tmp)
            (tmp / TINY_MARKER).write_text(model + "\n")
            shutil.rmtree(target, ignore_errors=True)
            os.replace(tmp, target)
    return str(target)


def _clean_stale(run_dir: Path) -> None:
    # Temporary files of a writer that was killed mid-write; never a record.
    for stale in Path(run_dir).glob(".*.tmp"):
        with contextlib.suppress(OSError):
            stale.unlink()


def _train(job: dict[str, Any], console: Console) -> dict[str, Any]:
    from slopeft.config import run_config_from_dict
    from slopeft.training.run import train_run

    spec = job["spec"]
    config = run_config_from_dict(
        {
            **spec["config"],
            "model": resolve_grid_model(spec["config"]["model"], Path(job["models_dir"])),
            "output": job["run_dir"],
            "data_dir": job.get("data_dir"),
        },
        f"the job of {spec['run_id']}",
    )
    return train_run(config, resume=True, console=console)


def _baseline(job: dict[str, Any]) -> dict[str, Any]:
    from slopeft.evaluation.baselines import BASELINES
    from slopeft.records import (
        RunMetrics,
        RunRecord,
        data_fingerprint,
        git_commit,
        library_versions,
        write_predictions,
        write_record,
    )
    from slopeft.tasks import get_task

    spec = job["spec"]
    config = spec["config"]
    run_dir = Path(job["run_dir"])
    run_dir.mkdir(parents=True, exist_ok=True)
    started = time.perf_counter()
    task = get_task(config["task"], job.get("data_dir"), config.get("train_set"), config.get("val_set"))
    train = task.first(task.examples("train"), config["max_train_examples"])
    val = task.first(task.examples("val"), config["max_eval_examples"])
    options: dict[str, Any] = {}
    if config.get("model"):  # a prompting baseline: the model, how many shots, its limits
        options = {
            "model": resolve_grid_model(config["model"], Path(job["models_dir"])),
            "shots": config["shots"],
            "max_length": config["max_length"],
            "batch_size": config["batch_size"],
            "_loaded": {},
        }
    predict_started = time.perf_counter()
    predictions = BASELINES.get(config["strategy"])(task, train, val, seed=config["seed"], **options)
    predict_seconds = time.perf_counter() - predict_started
    metrics = task.metrics(predictions, val)
    extra_val = {}
    for val_set in config.get("extra_val_sets") or []:
        other = get_task(config["task"], job.get("data_dir"), config.get("train_set"), val_set)
        examples = other.first(other.examples("val"), config["max_eval_examples"])
        scored = BASELINES.get(config["strategy"])(other, train, examples, seed=config["seed"], **options)
        scores = other.metrics(scored, examples)
        extra_val[val_set] = {"metrics": scores, "main": scores[task.spec.main_metric], "examples": len(examples)}
        write_predictions(run_dir, scored, val_set)
    write_predictions(run_dir, predictions)
    record = RunRecord(
        run_id=run_dir.name,
        kind="baseline",
        config=config,
        versions=library_versions(),
        git=git_commit(),
        data={
            "fingerprint": data_fingerprint(task.source_files("train") + task.source_files("val")),
            "train_examples": len(train),
            "val_examples": len(val),
        },
        metrics=RunMetrics(
            val=metrics, main_metric=task.spec.main_metric, main=metrics[task.spec.main_metric], extra_val=extra_val
        ),
        cost={
            "trainable": 0,
            "trainable_head": 0,
            "trainable_without_head": 0,
            "trainable_share": 0.0,
            "adapter_bytes": 0,
            "train_seconds": 0.0,
            "wall_seconds": time.perf_counter() - started,
            "inference_examples_per_s": len(val) / max(predict_seconds, 1e-9),
            "peak_rss_mb": None,
            "peak_gpu_mb": None,
        },
        finished_at=time.strftime("%Y-%m-%dT%H:%M:%S%z"),
    )
    return write_record(run_dir, record)


def execute(job: dict[str, Any], console: Console | None = None) -> int:
    """Runs one job; returns 0 (completed), 1 (failed), :data:`BUSY` or :data:`INTERRUPTED`."""
    from slopeft.experiments.store import ResultsStore

    console = console or Console(stderr=True)
    spec = job["spec"]
    lock = RunLock(job["lock"])
    if not lock.acquire():
        console.print(f"{spec['run_id']} is being run by another process; leaving it to that one.")
        return BUSY
    try:
        store = ResultsStore(job["store"])
        run_dir = Path(job["run_dir"])
        common = {"run_dir": run_dir, "grid": job.get("grid")}
        results_dir = job.get("results_dir")
        record = completed_record_data(run_dir)
        if record is not None and results_dir:
            publish(run_dir, results_dir, spec["run_id"])
        if record is None and (published := published_record(results_dir, spec["run_id"])) is not None:
            record, common["run_dir"] = published, Path(results_dir) / spec["run_id"]
        if record is not None:
            store.upsert(spec, "completed", record=record, **common)
            return 0
        store.upsert(spec, "running", new_attempt=True, **common)
        if run_dir.exists():
            _clean_stale(run_dir)
        console.print(
            f"[bold]{spec['run_id']}[/bold] (pid {os.getpid()}) started {time.strftime('%H:%M:%S')}"
        )
        try:
            record = _baseline(job) if spec["kind"] == "baseline" else _train(job, console)
        except BaseException as err:  # noqa: BLE001  (every failure is recorded, then reported)
            if _interrupted or isinstance(err, KeyboardInterrupt):
                console.print(f"{spec['run_id']} interrupted; it resumes from its checkpoint next time.")
                store.upsert(spec, "interrupted", error="interrupted; resumes from its checkpoint", **common)
                return INTERRUPTED
            text = "".join(traceback.format_exception(err))
            console.print(text, markup=False, highlight=False)
            error = f"{type(err).__name__}: {err}".strip()
            if results_dir and getattr(err, "diverged", False):
                # Seeded training diverges the same way again: publish it as this configuration's result.
                from slopeft.records import git_commit, library_versions

                publish_failure(results_dir, spec["run_id"], {
                    "error": error, "spec": spec, "versions": library_versions(), "git": git_commit(),
                    "finished_at": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
                })
                error = diverged_note(results_dir, spec["run_id"], error)
            store.upsert(spec, "failed", error=error, **common)
            return 1
        if results_dir and publish(run_dir, results_dir, spec["run_id"]):
            common["run_dir"] = Path(results_dir) / spec["run_id"]
        store.upsert(spec, "completed", record=record, **common)
        return 0
    finally:
        lock.release()


def _on_sigterm(signum, frame) -> None:
    global _interrupted
    if _interrupted:
        os._exit(143)
    _interrupted = True
    raise KeyboardInterrupt  # the trainer saves a checkpoint on KeyboardInterrupt


def die_with_parent(sig: int = signal.SIGTERM) -> None:
    """Get ``sig`` when the process named by $SLOPEFT_PARENT_PID dies (Linux); exit if it is already gone."""
    parent = os.environ.get("SLOPEFT_PARENT_PID")
    if not parent or not sys.platform.startswith("linux"):
        return
    with contextlib.suppress(OSError, AttributeError):
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(1, int(sig))  # PR_SET_PDEATHSIG
    if os.getppid() != int(parent):
        os._exit(INTERRUPTED)


def run_job_file(path: str) -> int:
    """Executes the job in file ``path`` (``-``: standard input) as this process's only work."""
    signal.signal(signal.SIGTERM, _on_sigterm)
    die_with_parent(signal.SIGTERM)
    job = json.loads(sys.stdin.read() if path == "-" else Path(path).read_text(encoding="utf-8"))
    return execute(job)


def main(argv: list[str] | None = None) -> None:
    argv = sys.argv[1:] if argv is None else argv
    if len(argv) != 1:
        print("usage: python -m slopeft.experiments.worker JOB.json|-", file=sys.stderr)
        sys.exit(2)
    sys.exit(run_job_file(argv[0]))


if __name__ == "__main__":
    main()
