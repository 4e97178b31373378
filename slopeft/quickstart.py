"""`slopeft quickstart`: the README's main job, end to end on one small task.

Prepares the default offline model, trains LoRA and BitFit with their recipes (the learning rates
the recipe sweep chose, ``slopeft methods``) for one and a half epochs on SI-NLI's training split
(what fits in ten minutes on 2 CPU cores), in bf16 mixed precision where the hardware multiplies bf16
natively (fp32 elsewhere), and prints them next to the majority baseline scored on the same
validation rows, with what each cost. The final weights are scored (no checkpoint is chosen on those
rows), so the scores are unbiased estimates.

The methods train side by side, one process each with an equal share of the cores: a small
encoder's batches keep one thread busier than two, so on 2 cores the pair finishes sooner than one
after the other (measured on one idle 2-core machine: the whole quickstart in 12 min 17 s against
14 min 23 s, the same scores). Each run's log goes to ``<output>/<run>.log``; ``sequential`` trains
them in this process instead.
"""

from __future__ import annotations

import os
import queue as queue_module
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from slopeft.config import RunConfig, TrainingConfig, check_range, update_dataclass
from slopeft.evaluation.baselines import run_baseline
from slopeft.methods.recipes import recipe_for
from slopeft.records import RunRecord
from slopeft.reporting.tables import table
from slopeft.tasks import get_task
from slopeft.training.precision import resolve_precision
from slopeft.training.run import train_run


@dataclass
class QuickstartConfig:
    model: str = "e5-small-multilingual"
    task: str = "si-nli"
    methods: tuple[str, ...] = ("lora", "bitfit")
    train_examples: int = 0
    """Training rows (0: the whole training split, 3,952 rows for SI-NLI)."""
    eval_examples: int = 0
    """Validation rows scored (0: all, 440 for SI-NLI)."""
    epochs: float = 1.5
    learning_rate: float | None = None
    """None: each method's recipe (the sweep's choice)."""
    max_length: int = 256
    seed: int = 42
    output: Path = Path("runs/quickstart")
    data_dir: str | None = None
    method_options: dict[str, dict[str, Any]] = field(default_factory=dict)
    sequential: bool = False
    """Train the methods one after the other in this process (default: side by side, one process
    each, when the machine has at least one core per method)."""
    precision: str = "fastest"
    """``training.precision``: fastest is bf16 mixed precision where the hardware multiplies bf16
    natively (a GPU, or a CPU with AVX512_BF16 or AMX; on a 2-core AMX CPU the quickstart took
    5 min 44 s against fp32's 8 min 31 s, predicting differently on 3 of 440 rows, README), fp32 elsewhere."""

    def __post_init__(self) -> None:
        # The example limits slice lists here before any TrainingConfig sees them: -5 would take the last 5.
        check_range(self, "quickstart", "train_examples", low=0, hint="0 takes the whole split")
        check_range(self, "quickstart", "eval_examples", low=0, hint="0 scores every row")
        resolve_precision(self.precision)  # an unknown one, or one this machine cannot train in, before any work
        check_range(self, "quickstart", "epochs", low=0, low_open=True)
        if self.learning_rate is not None:
            check_range(self, "quickstart", "learning_rate", low=0, low_open=True,
                        hint="leave it out for each method's recipe rate")


def quickstart(config: QuickstartConfig, console: Console) -> list[tuple]:
    """Runs the quickstart and returns the rows of its results table."""
    from slopeft.models.sources import model_path, resolve_model

    console.rule("1/3 · model")
    console.print(f"Model folder: {model_path(resolve_model(config.model))}")
    task = get_task(config.task, config.data_dir)
    val = task.first(task.examples("val"), config.eval_examples)
    console.rule("2/3 · majority baseline")
    majority = run_baseline([task], "majority", "val")[task.name]
    baseline_metrics = task.metrics({e.idx: majority[e.idx] for e in val}, val)
    rows = [("majority", baseline_metrics[task.spec.main_metric], 0, "-", "-", "-", "-")]
    runs = []
    for method in config.methods:
        recipe = recipe_for(method)
        settings = {**recipe.training, "epochs": config.epochs, "max_length": config.max_length,
                    "max_train_examples": config.train_examples, "max_eval_examples": config.eval_examples,
                    "precision": config.precision,
                    # The final weights: the table calls the validation rows held out, so they pick nothing.
                    "select_best": False}
        if config.learning_rate is not None:
            settings["learning_rate"] = config.learning_rate
        runs.append(RunConfig(task=config.task, model=config.model, method=method, seed=config.seed,
                              data_dir=config.data_dir,
                              output=str(config.output / f"{config.task.replace('/', '-')}-{method}"),
                              method_options={**recipe.options, **config.method_options.get(method, {})},
                              training=update_dataclass(TrainingConfig(), settings, f"quickstart {method}")))
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    if config.sequential or len(runs) == 1 or cores < len(runs):
        records = []
        for number, run in enumerate(runs, start=1):
            console.rule(f"3/3 · {run.method} ({number}/{len(runs)})")
            records.append(train_run(run, resume=(run.run_dir() / "checkpoint").exists(), console=console))
    else:
        console.rule(f"3/3 · {' and '.join(config.methods)}, side by side")
        records = _train_side_by_side(runs, cores // len(runs), config.output, console)
    precisions = set()
    for run, data in zip(runs, records, strict=True):
        record = RunRecord.from_dict(data)
        precisions.add(record.precision)
        cost = record.cost
        rows.append((run.method, record.metrics.main, cost["trainable"], f"{cost['trainable_share']:.3%}",
                     f"{cost['adapter_bytes'] / 2**20:.2f}", f"{cost['train_examples_per_s']:.1f}",
                     f"{cost['peak_rss_mb']:.0f}"))
    trained = config.train_examples or len(task.examples("train"))
    console.print(table(f"{config.task} · {config.model} · val accuracy on {len(val)} held-out rows "
                        f"(trained on {trained}, {config.epochs:g} epoch(s), {'/'.join(sorted(precisions))})",
                        ("method", task.spec.main_metric, "trainable params", "share of base", "adapter MB",
                         "train ex/s", "peak RSS MB"), rows))
    console.print(f"Run records: {config.output}/*/record.json")
    return rows


def _train_side_by_side(runs: list[RunConfig], threads: int, output: Path, console: Console) -> list[dict]:
    """Trains every run in its own process with ``threads`` threads; one progress bar per run here."""
    import multiprocessing

    # spawn, not fork: this process has imported torch, and a forked child inherits its thread
    # pools in a state that can hang the child's first multi-threaded operation.
    context = multiprocessing.get_context("spawn")
    events = context.Queue()
    output.mkdir(parents=True, exist_ok=True)
    logs = {run.method: output / f"{Path(run.output).name}.log" for run in runs}
    workers = {
        run.method: context.Process(target=_train_worker, args=(run, threads, logs[run.method], events), daemon=True)
        for run in runs
    }
    console.print(f"{len(runs)} processes, {threads} thread(s) each; logs: "
                  f"{', '.join(str(p) for p in logs.values())}", highlight=False)
    records: dict[str, dict] = {}
    progress = Progress(TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(),
                        TimeElapsedColumn(), console=console)
    try:
        with progress:
            bars = {method: progress.add_task(f"{method} · {runs[0].task}", total=None) for method in workers}
            for worker in workers.values():
                worker.start()
            while len(records) < len(workers):
                try:
                    kind, method, *payload = events.get(timeout=1.0)
                except queue_module.Empty:
                    _check_alive(workers, records, logs)
                    continue
                if kind == "step":
                    step, total = payload
                    progress.update(bars[method], completed=step, total=total)
                elif kind == "done":
                    records[method] = payload[0]
                    progress.update(bars[method], description=f"{method} · {runs[0].task} ✓")
                else:  # an error: raised here as the child raised it
                    raise payload[0]
    finally:
        for worker in workers.values():
            worker.join(timeout=None if all(m in records for m in workers) else 30)
            if worker.is_alive():
                worker.terminate()
    return [records[run.method] for run in runs]


def _check_alive(workers: dict[str, Any], records: dict[str, dict], logs: dict[str, Path]) -> None:
    """Raises when a run's process died without a word (killed, out of memory)."""
    for method, worker in workers.items():
        if method not in records and worker.exitcode is not None:
            raise RuntimeError(
                f"The {method} run's process ended with exit code {worker.exitcode} before finishing; its "
                f"log is {logs[method]}. Run `slopeft quickstart` again: it resumes from the last checkpoint."
            )


def _train_worker(run: RunConfig, threads: int, log: Path, events: Any) -> None:
    """One side-by-side run (in a spawned process): trains with ``threads`` threads, logs to ``log``,
    and reports progress, the record or the error on ``events``."""
    import pickle

    import torch

    torch.set_num_threads(threads)
    with open(log, "a", encoding="utf-8") as handle:
        console = Console(file=handle, width=120)
        try:
            record = train_run(run, resume=(run.run_dir() / "checkpoint").exists(), console=console,
                               on_step=lambda step, total: events.put(("step", run.method, step, total)))
        except BaseException as err:  # noqa: BLE001 - handed to the parent, which raises it
            console.print_exception()
            try:
                pickle.dumps(err)
            except Exception:  # noqa: BLE001 - an exception that cannot travel is sent as text
                err = RuntimeError(f"{type(err).__name__}: {err} (see {log})")
            events.put(("error", run.method, err))
            return
        events.put(("done", run.method, record))
