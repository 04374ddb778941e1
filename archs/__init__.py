"""archs: build, inspect and briefly train CNNs made of residual, dense and Inception stages.

Plain data describes a network (:class:`NetSpec`), stage types build it exactly (:func:`build_model`),
and inspectors measure it (:func:`summarize`, :func:`gradient_norms`, :func:`receptive_fields`,
:func:`measure_cost`, :func:`activation_health`); ``archs.export`` writes it out. Nothing here imports
Streamlit.
"""

import os

# Passive OpenMP threads sleep instead of spinning when they wait. Where torch shares the cores with
# other busy threads (a training job beside the dashboard's own work, a loaded CI machine), spinning
# threads slowed a ResNet-110 forward and backward pass from 0.2 s to 15 s on 2 cores. Only takes
# effect if set before torch loads its OpenMP runtime; a value the user set is kept.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

from .builder import Network, build_model  # noqa: E402
from .cost import CostReport, PartCost, available_devices, measure_cost  # noqa: E402
from .inspect import (BlockGradient, GradientNorms, LayerGradient, LayerRow, StageTotal, Summary,  # noqa: E402
                      depth_sweep, gradient_norms, gradient_profile, plain_twin, summarize)
from .presets import PRESETS, cifar_resnet  # noqa: E402
from .receptive import Field, LayerField, ReceptiveFields, receptive_fields  # noqa: E402
from .fields import FieldInfo, SpecError, spec_fields  # noqa: E402
from .health import ActivationHealth, BlockActivity, activation_health, activation_stats  # noqa: E402
from .spec import DEFAULT_MAX_PARAMS, HeadSpec, NetSpec, StagePlan, decode_spec, encode_spec  # noqa: E402
from .stages import STAGE_TYPES, DenseSpec, InceptionSpec, PlainSpec, ResidualSpec, StageSpec  # noqa: E402

__all__ = [
    "NetSpec", "HeadSpec", "StageSpec", "ResidualSpec", "DenseSpec", "InceptionSpec", "PlainSpec",
    "STAGE_TYPES", "SpecError", "FieldInfo", "spec_fields", "StagePlan", "DEFAULT_MAX_PARAMS",
    "encode_spec", "decode_spec", "Network", "build_model", "PRESETS",
    "cifar_resnet", "summarize", "Summary", "LayerRow", "StageTotal", "gradient_norms", "gradient_profile",
    "GradientNorms", "LayerGradient", "BlockGradient", "depth_sweep", "plain_twin",
    "receptive_fields", "ReceptiveFields", "LayerField", "Field", "measure_cost", "CostReport", "PartCost",
    "available_devices", "activation_health", "activation_stats", "ActivationHealth", "BlockActivity",
]
