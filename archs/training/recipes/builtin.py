"""The built-in recipes: ``default``, ``article`` and ``fast`` (what each is for: :mod:`archs.training.recipes`)."""

from __future__ import annotations

import dataclasses

from archs.training.config import TrainConfig
from archs.training.recipes import Recipe, register_recipe

register_recipe(Recipe(
    "default", "The settings' defaults: Adam 1e-3 with a cosine schedule, batch 64.",
    {f.name: f.default for f in dataclasses.fields(TrainConfig)
     if f.name in ("optimizer", "lr", "schedule", "warmup_steps", "warmup_fraction", "batch_size", "augment",
                   "label_smoothing", "weight_decay", "decay_all", "momentum", "eval_from")}))

register_recipe(Recipe(
    "article", "The source article's loop: Adam 1e-3 at a constant rate, batch 32, pad-crop and horizontal flips "
               "per sample, no warm-up.",
    {"optimizer": "adam", "lr": 1e-3, "schedule": "constant", "warmup_steps": 0, "warmup_fraction": 0.0,
     "batch_size": 32, "augment": "crop-flip", "label_smoothing": 0.0, "weight_decay": 0.0, "decay_all": True,
     "eval_from": 0.0}))

register_recipe(Recipe(
    "fast", "Time to accuracy: SGD with Nesterov momentum 0.9 at 0.1, one-cycle (warm-up over a fifth of the run, "
            "then linearly down to 0), label smoothing 0.1, weight decay 5e-4 on weights only, batch 128, "
            "evaluations from 60 % of the run on.",
    {"optimizer": "sgd", "lr": 0.1, "momentum": 0.9, "schedule": "onecycle", "warmup_steps": 0,
     "warmup_fraction": 0.2, "batch_size": 128, "label_smoothing": 0.1, "weight_decay": 5e-4, "decay_all": False,
     "eval_from": 0.6}))
