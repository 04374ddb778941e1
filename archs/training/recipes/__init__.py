"""Named training recipes: values for some of :class:`~archs.training.config.TrainConfig`'s fields.

A recipe fills in settings (optimizer, schedule, warm-up, augmentation, batch size, label smoothing, ...);
whatever a user sets afterwards still wins (the Train page's fields stay editable, the CLI's flags
override ``--recipe``). Budgets (epochs, steps, a target accuracy) are not part of a recipe.

- ``default``: the settings' own defaults (Adam 1e-3, cosine, batch 64).
- ``article``: the source article's loop, for comparison: Adam 1e-3 at a constant rate, batch 32,
  pad-crop and flips per sample.
- ``fast``: the project's time-to-accuracy recipe, measured on MNIST and Fashion-MNIST
  (``benchmarks/bench_speedrun.py``): SGD with Nesterov momentum at a high peak rate, a one-cycle
  schedule (linear warm-up over a fifth of the run, then a straight line down to 0), label smoothing 0.1,
  weight decay on conv and linear weights only, batch 128, and evaluations only in the last part of the
  run, where a target can be reached.

The three are registered in :mod:`.builtin`. A new recipe is one new module in this package calling
``register_recipe(Recipe(name, description, settings))``: the package imports every module of itself, so the
command line's ``--recipe``, the Train page and a study's ``train.recipe`` list it with nothing else edited.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field

from archs._registry import add, import_modules
from archs.training.config import ConfigError, TrainConfig

__all__ = ["RECIPES", "Recipe", "apply_recipe", "register_recipe"]


@dataclass(frozen=True)
class Recipe:
    name: str
    description: str
    settings: dict = field(default_factory=dict)

    def apply(self, config: TrainConfig = TrainConfig()) -> TrainConfig:
        return dataclasses.replace(config, **self.settings)


RECIPES: dict[str, Recipe] = {}


def register_recipe(recipe: Recipe) -> Recipe:
    """Make ``recipe`` known by its name, and return it. A name already taken is refused, and so are settings
    that are not fields of :class:`TrainConfig`."""
    unknown = sorted(set(recipe.settings) - {f.name for f in dataclasses.fields(TrainConfig)})
    if unknown:
        raise ValueError(f"recipe {recipe.name!r}: {', '.join(unknown)} not a field of TrainConfig")
    return add(RECIPES, recipe.name, recipe, "recipe")


def apply_recipe(name: str, config: TrainConfig = TrainConfig()) -> TrainConfig:
    """``config`` with the named recipe's settings; ConfigError naming the recipes for an unknown name."""
    if name not in RECIPES:
        raise ConfigError(f"recipe: must be one of {', '.join(map(repr, RECIPES))}, got {name!r}", "recipe")
    return RECIPES[name].apply(config)


import_modules(__name__, __path__)  # every module of the package: each registers its recipes
