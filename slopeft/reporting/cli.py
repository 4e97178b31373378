"""`slopeft report`: flags in, :func:`slopeft.reporting.report.report_for_grid` out."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console


def report(
    grid: Annotated[Path, typer.Option("--grid", help="The grid file (configs/grids/NAME.yaml).")],
    out: Annotated[Path, typer.Option("--out", help="Folder for report.md, report.html and plots/.")],
    grid_out: Annotated[
        Path | None,
        typer.Option("--grid-out", help="The grid's output folder, when it was run with `grid run --out`."),
    ] = None,
    draws: Annotated[int, typer.Option(min=1, help="Bootstrap draws per interval.")] = 1000,
    seed: Annotated[int, typer.Option(min=0, max=2**32 - 1, help="Seed of the bootstrap draws.")] = 0,
    data_dir: Annotated[
        Path | None, typer.Option("--data-dir", help="Data root (else $SLOPEFT_DATA).", show_default=False)
    ] = None,
    results: Annotated[
        Path | None,
        typer.Option(
            "--results",
            help="Folder of the grid's published records (default: the grid's results:, if any).",
            show_default=False,
        ),
    ] = None,
) -> None:
    """Write a grid's report: Markdown, a standalone HTML page and plots (PNG and SVG); print each
    task's ranked table (baselines, full fine-tuning, the methods by mean score) and each model's
    methods across tasks against full fine-tuning.

    A grid with published results (``results:``) is reported from those records, so a fresh
    clone reports the committed study without having run it.
    """
    from slopeft.experiments.grid import load_grid
    from slopeft.experiments.runner import import_results
    from slopeft.files import check_output
    from slopeft.reporting.report import report_for_grid
    from slopeft.reporting.tables import table

    check_output(out, "folder", "--out")
    loaded = load_grid(grid, grid_out, results)
    if loaded.results is not None:
        import_results(loaded)
    files = report_for_grid(loaded.out, out, str(data_dir) if data_dir else None, draws=draws, seed=seed)
    console = Console()
    for title, ranked in files.ranked:  # the comparison itself, before the list of files
        console.print(table(title, ranked.columns, ranked.rows))
    console.print(f"Wrote {files.markdown}", highlight=False)
    console.print(f"Wrote {files.html}", highlight=False)
    for plot in files.plots:
        console.print(f"Wrote {plot.png} and {plot.svg}", highlight=False)
