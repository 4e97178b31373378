"""`slopeft grid run|status` and `slopeft results export`: flags in, functions of this package out."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console

grid_app = typer.Typer(
    help="Run grids of experiments (configs/grids/*.yaml) and follow them.", no_args_is_help=True
)
results_app = typer.Typer(help="The results store of a grid.", no_args_is_help=True)

GridFile = Annotated[Path, typer.Argument(help="A grid file, e.g. configs/grids/smoke.yaml.")]
OutDir = Annotated[
    Path | None,
    typer.Option(
        "--out", help="The grid's output folder (default: the grid's out:, else outputs/grids/<name>)."
    ),
]
ResultsDir = Annotated[
    Path | None,
    typer.Option(
        "--results",
        help="Folder of the grid's published records (default: the grid's results:, if any).",
        show_default=False,
    ),
]


@grid_app.command("run")
def grid_run(
    grid: GridFile,
    workers: Annotated[
        int, typer.Option("--workers", "-j", min=1, help="Runs at the same time (local backend).")
    ] = 1,
    out: OutDir = None,
    results: ResultsDir = None,
    backend: Annotated[str, typer.Option(help="local (subprocesses here) or ray (a Ray cluster).")] = "local",
    address: Annotated[
        str | None, typer.Option(help="Ray: the cluster's head, HOST:PORT (or 'auto').", show_default=False)
    ] = None,
    retry_failed: Annotated[bool, typer.Option(help="Rerun runs that failed before.")] = True,
    isolation: Annotated[
        str,
        typer.Option(
            help="Local backend: fork (each run a process forked from a server that imported torch once) "
            "or spawn (a fresh interpreter per run)."
        ),
    ] = "fork",
    retry_diverged: Annotated[bool, typer.Option(
        help="Also train runs whose divergence is published in the grid's results folder (seeded, they "
        "diverge again unless their code or data changed).")] = False,
    threads: Annotated[int | None, typer.Option(
        "--threads", min=1, show_default=False,
        help="CPU threads per run (local backend; default: OMP_NUM_THREADS, else the cores divided among "
        "the workers). Give 1 when another grid already runs on the same cores.")] = None,
) -> None:
    """Run every unfinished run of a grid; finished runs are skipped, interrupted ones resume."""
    from slopeft.experiments.grid import load_grid
    from slopeft.experiments.runner import run_grid
    from slopeft.files import check_output

    loaded = load_grid(grid, out, results)
    check_output(loaded.out, "folder", "--out" if out else "the grid's out:")
    if loaded.results is not None:
        check_output(loaded.results, "folder", "--results" if results else "the grid's results:")
    try:
        summary = run_grid(
            loaded,
            workers=workers,
            backend=backend,
            address=address,
            retry_failed=retry_failed,
            isolation=isolation,
            retry_diverged=retry_diverged,
            threads=threads,
        )
    except KeyboardInterrupt:
        Console(stderr=True).print(
            "Interrupted: runs in flight saved checkpoints; rerun the same command to resume."
        )
        raise typer.Abort() from None  # exit status 130
    if not summary.ok:
        from slopeft.errors import SlopeftError

        problems = [f"{len(summary.failed)} failed"] if summary.failed else []
        problems += [f"{len(summary.interrupted)} interrupted"] if summary.interrupted else []
        raise SlopeftError(
            f"Grid {grid}: {', '.join(problems)} ({', '.join((summary.failed + summary.interrupted)[:5])}"
            f"{' ...' if len(summary.failed) + len(summary.interrupted) > 5 else ''}). "
            "See each run's log under logs/ and `slopeft grid status`; rerunning the grid retries them "
            "(except runs that diverged: their failure is published as their result; --retry-diverged)."
        )


@grid_app.command("status")
def grid_status(
    grid: GridFile,
    out: OutDir = None,
    results: ResultsDir = None,
    all_runs: Annotated[
        bool, typer.Option("--all", help="List every run, not only unfinished ones.")
    ] = False,
    summary: Annotated[
        bool, typer.Option("--summary", help="Only the counts per task, model and seed, not every run.")
    ] = False,
) -> None:
    """Done / running / failed / pending runs of a grid, with a progress bar and the counts per task,
    model and seed."""
    from rich.progress_bar import ProgressBar
    from rich.table import Table

    from slopeft.experiments.grid import load_grid
    from slopeft.experiments.runner import estimate_remaining, progress_by_task
    from slopeft.experiments.runner import grid_status as status_of

    loaded = load_grid(grid, out, results)
    states, expansion = status_of(loaded)
    console = Console()
    counts = {name: sum(s.state == name for s in states) for name in ("done", "running", "failed", "pending")}
    total = len(states)
    console.print(f"Grid [bold]{loaded.name}[/bold] ({loaded.out}): {total} runs", highlight=False)
    bar = Table.grid(padding=(0, 1))
    bar.add_row(
        ProgressBar(total=max(total, 1), completed=counts["done"], width=40),
        f"{counts['done']}/{total} done · {counts['running']} running · "
        f"{counts['failed']} failed · {counts['pending']} pending",
    )
    console.print(bar)
    cost = estimate_remaining(loaded, states)
    by_task = Table(title="By task, model and seed", title_justify="left")
    for column in ("task", "model", "seed", "done", "running", "failed", "pending", "CPU-h left"):
        # Fold, not cut, long names: "slo-superglue/…" rows must say which task they are.
        by_task.add_column(column, justify="right" if column not in ("task", "model") else "left",
                           overflow="fold")
    for row in progress_by_task(states, cost):
        left = f"{row.cpu_seconds_left / 3600:.1f}" if row.cpu_seconds_left else ("—" if row.unpriced else "0")
        if row.cpu_seconds_left and row.unpriced:
            left += f" + {row.unpriced} unpriced"
        done = f"[green]{row.counts['done']}/{row.total}[/]" if row.counts["done"] == row.total else (
            f"{row.counts['done']}/{row.total}")
        by_task.add_row(row.task, row.model, str(row.seed) if row.model != "baseline" else "—", done, str(row.counts["running"] or ""),
                        str(row.counts["failed"] or ""), str(row.counts["pending"] or ""), left)
    console.print(by_task)
    shown = [s for s in states if (all_runs or s.state != "done") and not summary]
    if shown:
        table = Table(title_justify="left")
        for column in ("state", "run", "task", "model", "method", "seed", "note"):
            table.add_column(column)
        colours = {"done": "green", "running": "cyan", "failed": "red", "pending": "white"}
        for s in shown:
            table.add_row(
                f"[{colours[s.state]}]{s.state}[/]",
                s.run.run_id,
                s.run.task,
                s.run.model,
                s.run.method,
                str(s.run.seed),
                s.note[:120],
            )
        console.print(table)
    if cost.estimated:
        line = (
            f"The {cost.runs} run(s) still to train: about {cost.cpu_seconds / 3600:.1f} CPU-hours for {cost.estimated} of "
            "them, each priced as the finished runs of its task, model and method (else of its task and model) "
            "on the machines that trained them"
        )
        if cost.by_tokens:
            line += (f"; {cost.by_tokens} of those, of tasks with no finished run yet, by the tokens they train "
                     "at their model and method's CPU seconds per token on the tasks trained so far")
        if cost.unknown:
            line += f"; {cost.unknown} of models with no finished run yet (or baselines), not priced"
        console.print(line + ".", highlight=False)
    elif cost.runs:
        console.print(f"The {cost.runs} run(s) still to train are not priced: no run of their tasks and models has "
                      "finished yet.", highlight=False)
    if expansion.skipped:
        console.print(f"[dim]{len(expansion.skipped)} combinations skipped as incompatible[/dim]")


@results_app.command("import")
def results_import(
    grid: GridFile,
    out: OutDir = None,
    results: ResultsDir = None,
) -> None:
    """Rebuild a grid's results store from the records on disk: its published results (results:) and run folders."""
    from slopeft.errors import ConfigError
    from slopeft.experiments.grid import load_grid
    from slopeft.experiments.runner import import_results

    loaded = load_grid(grid, out, results)
    if loaded.results is None and not loaded.runs_dir.is_dir():
        raise ConfigError(
            f"Grid {grid} has no results: folder and no run folders under {loaded.out}; nothing to import."
        )
    count = import_results(loaded)
    Console().print(f"Imported {count} finished run(s) into {loaded.store_path}", highlight=False)


@results_app.command("export")
def results_export(
    grid: Annotated[Path | None, typer.Option("--grid", help="A grid file: export its store.")] = None,
    store: Annotated[
        Path | None, typer.Option("--store", help="A results.sqlite file (instead of --grid).")
    ] = None,
    out_dir: OutDir = None,
    fmt: Annotated[
        str, typer.Option("--format", help="csv, parquet or json (json keeps full records).")
    ] = "csv",
    output: Annotated[
        Path | None,
        typer.Option("--output", "-o", help="File to write (default: <grid out>/results.<format>)."),
    ] = None,
) -> None:
    """Export one row per run: config, versions, commit, data fingerprint, metrics, costs, status, error."""
    from slopeft.errors import ConfigError
    from slopeft.experiments.grid import load_grid
    from slopeft.experiments.store import export, open_store
    from slopeft.files import check_output

    if (grid is None) == (store is None):
        raise ConfigError("Pass --grid GRID.yaml or --store results.sqlite (one of them).")
    if grid is not None:
        loaded = load_grid(grid, out_dir)
        store = loaded.store_path
    assert store is not None
    target = check_output(output or store.parent / f"results.{fmt}", "file", "--output" if output else "")
    written = export(open_store(store), target, fmt)
    Console().print(f"Wrote {written}", highlight=False)
