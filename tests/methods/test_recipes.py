"""Recipes: every method ships one as data; `train` and grids start from it; users override it."""

from __future__ import annotations

import pytest

from slopeft.config import load_run_config
from slopeft.errors import ConfigError
from slopeft.experiments.grid import expand, grid_from_dict
from slopeft.methods import METHODS
from slopeft.methods.recipes import recipe_defaults, recipe_for


@pytest.mark.parametrize("method", METHODS.names())
def test_every_method_ships_a_valid_recipe_with_its_evidence(method):
    recipe = recipe_for(method)
    assert recipe.learning_rate > 0
    assert recipe.evidence  # how the values were chosen is part of the recipe


def test_train_starts_from_the_recipe_and_the_user_overrides_it():
    recipe = recipe_for("bitfit")
    config = load_run_config(None, [], method_defaults=recipe_defaults, method="bitfit")
    assert config.training.learning_rate == recipe.learning_rate
    for key, value in recipe.training.items():
        assert getattr(config.training, key) == value
    mine = load_run_config(
        None, ["training.learning_rate=0.123"], method_defaults=recipe_defaults, method="bitfit"
    )
    assert mine.training.learning_rate == 0.123
    with pytest.raises(ConfigError, match="Unknown method 'lorra'.*Did you mean 'lora'"):
        load_run_config(None, [], method_defaults=recipe_defaults, method="lorra")


def test_grids_start_from_recipes_unless_they_opt_out():
    base = {"models": ["tiny:bert"], "tasks": ["slo-superglue/cb"], "methods": ["ia3"], "seeds": [1]}
    with_recipe = expand(grid_from_dict(base)).runs[0]
    assert with_recipe.config["training"]["learning_rate"] == recipe_for("ia3").learning_rate
    pinned = expand(grid_from_dict({**base, "recipes": False})).runs[0]
    assert pinned.config["training"]["learning_rate"] is None
    with pytest.raises(ConfigError, match="recipes must be true or false"):
        grid_from_dict({**base, "recipes": "no"})
