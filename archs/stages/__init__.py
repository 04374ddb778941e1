"""Stage types, registered by name in ``STAGE_TYPES``. One file per type."""

from .base import STAGE_TYPES, BuildContext, ShapeProblem, StageSpec, register_stage
from .dense import DenseSpec
from .inception import InceptionSpec
from .plain import PlainSpec
from .residual import ResidualSpec

__all__ = ["STAGE_TYPES", "BuildContext", "ShapeProblem", "StageSpec", "register_stage", "DenseSpec",
           "InceptionSpec", "PlainSpec", "ResidualSpec"]
