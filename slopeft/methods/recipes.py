"""Recipes: each method's default training settings and options, kept as data.

A recipe is one YAML file per registered method in ``slopeft/resources/recipes/<method>.yaml``::

    method: lora
    training: {learning_rate: 2.0e-3, epochs: 3, warmup_ratio: 0.06, scheduler: linear, batch_size: 16}
    options: {}
    evidence: >-
      how the values were chosen (the sweep's grid, its numbers), and where they differ from the paper

``slopeft train`` starts from the method's recipe and lets a config file, flags and ``--set``
override it; grids start from it too (unless a grid says ``recipes: false`` and pins its own
values). ``slopeft methods`` shows the recipes. The values are chosen by a measured sweep
(``configs/grids/sweep.yaml``, results in ``results/sweep/``), not written into code.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from functools import cache
from importlib import resources
from typing import Any

import yaml

from slopeft.errors import ConfigError

RECIPE_FOLDER = ("resources", "recipes")


@dataclass(frozen=True)
class Recipe:
    """A method's default training settings (``TrainingConfig`` fields) and method options."""

    method: str
    training: dict[str, Any] = field(default_factory=dict)
    options: dict[str, Any] = field(default_factory=dict)
    evidence: str = ""

    @property
    def learning_rate(self) -> float:
        return float(self.training["learning_rate"])


@cache
def recipe_for(method: str) -> Recipe:
    """The shipped recipe of ``method`` (validated against the training config and the method's options)."""
    from slopeft.config import TrainingConfig, update_dataclass
    from slopeft.methods import METHODS

    method_class = METHODS.get(method)  # an unknown name fails here, with the known ones listed
    path = resources.files("slopeft").joinpath(*RECIPE_FOLDER, f"{method}.yaml")
    if not path.is_file():
        raise ConfigError(
            f"No recipe for method {method!r} (expected slopeft/{'/'.join(RECIPE_FOLDER)}/{method}.yaml). "
            "Every registered method ships one; add it with the method."
        )
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    except yaml.YAMLError as err:
        raise ConfigError(f"The recipe of {method} cannot be read: {err}.") from None
    unknown = set(data) - {f.name for f in dataclasses.fields(Recipe)}
    if unknown or data.get("method") != method:
        raise ConfigError(f"The recipe of {method} has unknown keys {sorted(unknown)} or names another method.")
    recipe = Recipe(
        method=method,
        training=dict(data.get("training") or {}),
        options=dict(data.get("options") or {}),
        evidence=" ".join(str(data.get("evidence") or "").split()),
    )
    update_dataclass(TrainingConfig(), recipe.training, f"recipe {method}: training")
    if "learning_rate" not in recipe.training:
        raise ConfigError(f"The recipe of {method} sets no training.learning_rate.")
    method_class(recipe.options)  # the options must be valid for the method
    return recipe


def recipe_defaults(method: str) -> tuple[dict[str, Any], dict[str, Any]]:
    """(training settings, method options) of ``method``'s recipe, for :func:`slopeft.config.load_run_config`."""
    recipe = recipe_for(method)
    return dict(recipe.training), dict(recipe.options)
