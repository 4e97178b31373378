"""Helpers shared by the experiment and reporting tests: running `slopeft` in a subprocess, the smoke grid."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
SMOKE = REPO / "configs" / "grids" / "smoke.yaml"


def trainable_runs(grid_out: Path | None = None, grid: Path = SMOKE) -> list[str]:
    """Run ids of ``grid`` this machine trains: all but those it lacks something for (QLoRA without
    bitsandbytes), which a grid keeps, untrained and pending, for their published records."""
    from slopeft.experiments.grid import expand, load_grid

    expansion = expand(load_grid(grid, grid_out))
    return [run.run_id for run in expansion.runs if run.run_id not in expansion.not_here]


def slopeft(*args: object) -> list[str]:
    """The command line running ``slopeft ARGS`` with this interpreter (no reliance on PATH)."""
    return [sys.executable, "-c", "from slopeft.cli import main; main()", *map(str, args)]


def subprocess_env(data_root: Path, cache: Path) -> dict[str, str]:
    env = dict(os.environ)
    env.update(SLOPEFT_DATA=str(data_root), SLOPEFT_CACHE=str(cache), PYTHONUNBUFFERED="1", COLUMNS="200")
    return env


def share_tiny_models(grid_out: Path, models: Path) -> None:
    """Points a grid's models/ folder at one shared folder, so tiny models are built once per session."""
    grid_out.mkdir(parents=True, exist_ok=True)
    models.mkdir(parents=True, exist_ok=True)
    link = grid_out / "models"
    if not link.exists():
        link.symlink_to(models, target_is_directory=True)


def run_grid(grid_out: Path, env: dict[str, str], grid: Path = SMOKE, *extra: object, timeout: int = 900):
    return subprocess.run(
        slopeft("grid", "run", grid, "--workers", 2, "--out", grid_out, *extra),
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
        cwd=REPO,
    )


_COMPLETED: set[Path] = set()


def completed_smoke_grid(out: Path, env: dict[str, str], models: Path) -> Path:
    """``out`` holding the finished smoke grid; run (or resumed) at most once per test session."""
    if out not in _COMPLETED:
        share_tiny_models(out, models)
        result = run_grid(out, env)
        assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
        _COMPLETED.add(out)
    return out


def mark_completed(out: Path) -> None:
    _COMPLETED.add(out)
