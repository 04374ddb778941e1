"""Stage types, registered by name in ``STAGE_TYPES``: one file per type.

Every module in this package is imported here, so a new stage type is one new file whose spec class
is decorated with ``@register_stage``; nothing else needs editing.
"""

import importlib
import pkgutil

from .base import STAGE_TYPES, BuildContext, ShapeProblem, StageSpec, register_stage

for _module in pkgutil.iter_modules(__path__):
    if _module.name != "base":
        importlib.import_module(f"{__name__}.{_module.name}")

from .dense import DenseSpec  # noqa: E402  (the built-in types, named for convenience)
from .inception import InceptionSpec  # noqa: E402
from .plain import PlainSpec  # noqa: E402
from .residual import ResidualSpec  # noqa: E402

__all__ = ["STAGE_TYPES", "BuildContext", "ShapeProblem", "StageSpec", "register_stage", "DenseSpec",
           "InceptionSpec", "PlainSpec", "ResidualSpec"]
