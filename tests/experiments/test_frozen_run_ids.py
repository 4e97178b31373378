"""Every shipped grid expands to the run ids it had when the study started committing results.

A grid run treats a run published under ``results/<grid>/<run_id>/`` as done, so a changed id would
orphan a finished record and train it again. ``frozen_run_ids.json`` holds the ids of every grid in
configs/grids as they were (qlora included: a machine without bitsandbytes keeps its runs, see
``Expansion.not_here``, so the ids do not depend on the machine): never regenerate it to
make this test pass; find what changed the ids instead. Runs a grid gains (a method newly offered for a
task, a learning rate added to the sweep) are added to the file, and no id in it may disappear. One
change renames runs by design: a new recipe (``slopeft/resources/recipes/``) for the grids that start
from recipes, since another learning rate is another run; the commit that changes the recipe updates
those grids' entries, and only the runs of that method change (the sweep pins its own values).
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from slopeft.experiments.grid import expand, load_grid
from tests.experiments.smoke import REPO

FROZEN = json.loads((Path(__file__).parent / "frozen_run_ids.json").read_text(encoding="utf-8"))


@pytest.mark.parametrize("name", sorted(FROZEN))
def test_shipped_grid_keeps_its_run_ids(name):
    ids = sorted(run.run_id for run in expand(load_grid(REPO / "configs" / "grids" / f"{name}.yaml")).runs)
    assert ids == FROZEN[name]
