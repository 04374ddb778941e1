"""archs: build, inspect and briefly train CNNs made of residual, dense and Inception stages.

Plain data describes a network (:class:`NetSpec`), stage types build it exactly (:func:`build_model`),
and inspectors measure it (:func:`summarize`, :func:`gradient_norms`). Nothing here imports Streamlit.
"""

from .builder import Network, build_model
from .presets import PRESETS
from .fields import FieldInfo, SpecError, spec_fields
from .spec import DEFAULT_MAX_PARAMS, HeadSpec, NetSpec, StagePlan, decode_spec, encode_spec
from .stages import STAGE_TYPES, DenseSpec, InceptionSpec, PlainSpec, ResidualSpec, StageSpec

__all__ = [
    "NetSpec", "HeadSpec", "StageSpec", "ResidualSpec", "DenseSpec", "InceptionSpec", "PlainSpec",
    "STAGE_TYPES", "SpecError", "FieldInfo", "spec_fields", "StagePlan", "DEFAULT_MAX_PARAMS",
    "encode_spec", "decode_spec", "Network", "build_model", "PRESETS",
]
