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
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field

from archs.training.config import ConfigError, TrainConfig

__all__ = ["RECIPES", "Recipe", "apply_recipe"]


@dataclass(frozen=True)
class Recipe:
    name: str
    description: str
    settings: dict = field(default_factory=dict)

    def apply(self, config: TrainConfig = TrainConfig()) -> TrainConfig:
        return dataclasses.replace(config, **self.settings)


RECIPES: dict[str, Recipe] = {r.name: r for r in (
    Recipe("default", "The settings' defaults: Adam 1e-3 with a cosine schedule, batch 64.",
           {f.name: f.default for f in dataclasses.fields(TrainConfig)
            if f.name in ("optimizer", "lr", "schedule", "warmup_steps", "warmup_fraction", "batch_size",
                          "augment", "label_smoothing", "weight_decay", "decay_all", "momentum", "eval_from")}),
    Recipe("article", "The source article's loop: Adam 1e-3 at a constant rate, batch 32, pad-crop and "
                      "horizontal flips per sample, no warm-up.",
           {"optimizer": "adam", "lr": 1e-3, "schedule": "constant", "warmup_steps": 0, "warmup_fraction": 0.0,
            "batch_size": 32, "augment": "crop-flip", "label_smoothing": 0.0, "weight_decay": 0.0,
            "decay_all": True, "eval_from": 0.0}),
    Recipe("fast", "Time to accuracy: SGD with Nesterov momentum 0.9 at 0.1, one-cycle (warm-up over a fifth of "
                   "the run, then linearly down to 0), label smoothing 0.1, weight decay 5e-4 on weights only, "
                   "batch 128, evaluations from 60 % of the run on.",
           {"optimizer": "sgd", "lr": 0.1, "momentum": 0.9, "schedule": "onecycle", "warmup_steps": 0,
            "warmup_fraction": 0.2, "batch_size": 128, "label_smoothing": 0.1, "weight_decay": 5e-4,
            "decay_all": False, "eval_from": 0.6}),
)}


def apply_recipe(name: str, config: TrainConfig = TrainConfig()) -> TrainConfig:
    """``config`` with the named recipe's settings; ConfigError naming the recipes for an unknown name."""
    if name not in RECIPES:
        raise ConfigError(f"recipe: must be one of {', '.join(map(repr, RECIPES))}, got {name!r}", "recipe")
    return RECIPES[name].apply(config)
