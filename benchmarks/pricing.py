"""How well ``grid status``'s token price carries over: one task's finished runs priced from another's.

``grid status`` prices a run of a task nothing has trained yet by its model and method's CPU seconds
per training token on the tasks trained so far (``slopeft.experiments.pricing``). This script
checks that on finished runs: it takes the CPU-s per token of ``--from``'s runs, prices ``--to``'s
finished runs with them, and prints each method's actual and predicted training CPU-s and their
ratio (below 1: the price was low). It reads committed records only; nothing is trained or timed.

    python benchmarks/pricing.py [--grid configs/grids/study.yaml] [--from si-nli] [--to slo-superglue/rte] [--seed 1]
"""

from __future__ import annotations

import argparse
import statistics
from pathlib import Path

from rich.console import Console
from rich.table import Table

from slopeft.experiments.grid import load_grid
from slopeft.experiments.pricing import TokenCounter, token_rates
from slopeft.experiments.runner import _run_cpu_seconds, grid_status


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--grid", type=Path, default=Path("configs/grids/study.yaml"))
    parser.add_argument("--from", dest="source", default="si-nli", help="the task whose runs give the rates")
    parser.add_argument("--to", dest="target", default="slo-superglue/rte", help="the task whose runs are priced")
    parser.add_argument("--seed", type=int, default=None, help="price only this seed of --to (default: all)")
    args = parser.parse_args()

    grid = load_grid(args.grid)
    states, _ = grid_status(grid)
    finished = [(s.run, _run_cpu_seconds(s.record)) for s in states
                if s.state == "done" and s.run.kind == "train" and s.record]
    source = [(run, seconds) for run, seconds in finished if run.task == args.source and seconds]
    target = [(run, seconds) for run, seconds in finished if run.task == args.target and seconds
              and (args.seed is None or run.seed == args.seed)]
    if not source or not target:
        raise SystemExit(f"No finished training runs of {args.source if not source else args.target} in {args.grid}.")
    counter = TokenCounter(grid)
    rates = token_rates(counter, source)
    table = Table(title=f"{args.target} priced from {args.source}'s CPU-s per token", title_justify="left")
    for column in ("method", "seed", "tokens", "actual CPU-s", "priced CPU-s", "priced / actual"):
        table.add_column(column, justify="left" if column == "method" else "right")
    ratios = []
    for run, seconds in sorted(target, key=lambda item: (item[0].method, item[0].seed)):
        rate = rates.get((run.model, run.method)) or rates.get((run.model,))
        tokens = counter.tokens(run)
        if not rate or not tokens:
            continue
        priced = rate * tokens
        ratios.append(priced / seconds)
        table.add_row(run.method, str(run.seed), f"{tokens:,.0f}", f"{seconds:,.0f}", f"{priced:,.0f}",
                      f"{priced / seconds:.2f}")
    console = Console()
    console.print(table)
    if ratios:
        console.print(f"priced / actual over {len(ratios)} runs: mean {statistics.mean(ratios):.2f}, "
                      f"range {min(ratios):.2f}–{max(ratios):.2f}")


if __name__ == "__main__":
    main()
