"""What a worker is given and what its exit means, the same for the local and the Ray backend."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from rich.console import Console

from slopeft.experiments.grid import Grid, RunSpec
from slopeft.experiments.store import ResultsStore
from slopeft.experiments.worker import BUSY, INTERRUPTED


@dataclass
class RunSummary:
    total: int
    already_done: int = 0
    completed: list[str] = field(default_factory=list)
    failed: list[str] = field(default_factory=list)
    interrupted: list[str] = field(default_factory=list)
    skipped: list[tuple[str, str]] = field(default_factory=list)
    diverged: list[str] = field(default_factory=list)
    """Runs whose divergence an earlier run published: results, not trained again, not failures."""
    not_here: list[tuple[str, str]] = field(default_factory=list)
    """(run id, what this machine lacks) of unfinished runs it cannot train; not failures."""

    @property
    def ok(self) -> bool:
        return not self.failed and not self.interrupted


def job_for(grid: Grid, run: RunSpec) -> dict[str, Any]:
    """What a worker needs to execute ``run`` (all paths absolute: a worker may run elsewhere)."""
    out = grid.out.resolve()
    return {
        "spec": run.to_dict(),
        "grid": grid.name,
        "run_dir": str(out / "runs" / run.run_id),
        "store": str(out / "results.sqlite"),
        "lock": str(out / "locks" / f"{run.run_id}.lock"),
        "models_dir": str(out / "models"),
        "data_dir": str(Path(grid.data_dir).resolve()) if grid.data_dir else None,
        "results_dir": str(grid.results.resolve()) if grid.results else None,
    }


def report_exit(
    run: RunSpec,
    code: int,
    grid: Grid,
    store: ResultsStore,
    console: Console,
    summary: RunSummary,
    cpu: float | None = None,
) -> bool:
    """Books a finished worker; returns False when the run must be retried later (it was busy elsewhere)."""
    if code == BUSY:
        return False
    if code == 0:
        row = store.get(run.run_id) or {}
        score = f"{row.get('main_metric')} {row['main']:.4f}" if row.get("main") is not None else ""
        used = f" ({cpu:.1f} CPU s)" if cpu is not None else ""
        console.print(f"[green]✓[/green] {run.run_id} {score}{used}", highlight=False)
        summary.completed.append(run.run_id)
    elif code == INTERRUPTED:
        console.print(f"[yellow]⏸[/yellow] {run.run_id} interrupted (resumable)", highlight=False)
        summary.interrupted.append(run.run_id)
    else:
        row = store.get(run.run_id) or {}
        log = grid.out / "logs" / f"{run.run_id}.log"
        console.print(
            f"[red]✗[/red] {run.run_id} failed (exit {code}): {row.get('error') or 'see the log'}; log: {log}",
            highlight=False,
        )
        summary.failed.append(run.run_id)
    return True
