"""The built-in objectives: accuracy (higher is better), and size, computation and training cost (lower is
better)."""

from __future__ import annotations

from archs.studies.pareto import Objective, register_objective

register_objective("accuracy", Objective("max", "Test accuracy", "fraction of the test set (0..1)"),
                   result_key="test_accuracy")
register_objective("params", Objective("min", "Parameters", "parameters"))
register_objective("mult_adds", Objective("min", "Mult-adds per image", "multiply-adds"))
register_objective("train_flops", Objective("min", "Training FLOPs (3 x 2 x mult-adds x images seen)", "FLOPs"))
register_objective("train_seconds", Objective("min", "Training time", "s"))
