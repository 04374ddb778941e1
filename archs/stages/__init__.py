"""Stage types, registered by name in ``STAGE_TYPES``: one file per type.

Every module in this package is imported here, so a new stage type is one new file whose spec class
is decorated with ``@register_stage``; nothing else needs editing.
"""

from archs._registry import import_modules

from .base import STAGE_TYPES, BuildContext, ShapeProblem, StageSpec, register_stage

import_modules(__name__, __path__)  # every module but base: each registers its spec class

from .dense import DenseSpec  # noqa: E402  (the built-in types, named for convenience)
from .inception import InceptionSpec  # noqa: E402
from .plain import PlainSpec  # noqa: E402
from .residual import ResidualSpec  # noqa: E402

__all__ = ["STAGE_TYPES", "BuildContext", "ShapeProblem", "StageSpec", "register_stage", "DenseSpec",
           "InceptionSpec", "PlainSpec", "ResidualSpec"]
