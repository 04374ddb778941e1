"""archs: build, inspect and briefly train CNNs made of residual, dense and Inception stages.

Plain data describes a network (:class:`NetSpec`), stage types build it exactly (:func:`build_model`),
and inspectors measure it (:func:`summarize`, :func:`gradient_norms`). Nothing here imports Streamlit.
"""

from .builder import Network, build_model
from .inspect import (BlockGradient, GradientNorms, LayerGradient, LayerRow, StageTotal, Summary,
                      depth_sweep, gradient_norms, gradient_profile, plain_twin, summarize)
from .presets import PRESETS, cifar_resnet
from .fields import FieldInfo, SpecError, spec_fields
from .spec import DEFAULT_MAX_PARAMS, HeadSpec, NetSpec, StagePlan, decode_spec, encode_spec
from .stages import STAGE_TYPES, DenseSpec, InceptionSpec, PlainSpec, ResidualSpec, StageSpec

__all__ = [
    "NetSpec", "HeadSpec", "StageSpec", "ResidualSpec", "DenseSpec", "InceptionSpec", "PlainSpec",
    "STAGE_TYPES", "SpecError", "FieldInfo", "spec_fields", "StagePlan", "DEFAULT_MAX_PARAMS",
    "encode_spec", "decode_spec", "Network", "build_model", "PRESETS",
    "cifar_resnet", "summarize", "Summary", "LayerRow", "StageTotal", "gradient_norms", "gradient_profile",
    "GradientNorms", "LayerGradient", "BlockGradient", "depth_sweep", "plain_twin",
]
