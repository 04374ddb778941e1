"""archs: build, inspect and briefly train CNNs made of residual, dense and Inception stages.

Plain data describes a network (:class:`NetSpec`), stage types build it exactly (:func:`build_model`),
and inspectors measure it (:func:`summarize`, :func:`gradient_norms`, :func:`receptive_fields`,
:func:`measure_cost`, :func:`activation_health`); ``archs.export`` writes it out; :mod:`archs.training`
trains it. Nothing here imports Streamlit.

The names below load on first use (PEP 562), so that a process which only moves files about (the
local executor's supervisor) starts without importing torch.
"""

import os

from ._lazy import lazy_exports

# Passive OpenMP threads sleep instead of spinning when they wait. Where torch shares the cores with
# other busy threads (a training job beside the dashboard's own work, a loaded CI machine), spinning
# threads slowed a ResNet-110 forward and backward pass from 0.2 s to 15 s on 2 cores. Only takes
# effect if set before torch loads its OpenMP runtime; a value the user set is kept.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

_EXPORTS = {
    ".builder": ("Network", "build_model"),
    ".cost": ("CostReport", "PartCost", "available_devices", "measure_cost"),
    ".inspect": ("BlockGradient", "GradientNorms", "LayerGradient", "LayerRow", "StageTotal", "Summary",
                 "depth_sweep", "gradient_norms", "gradient_profile", "plain_twin", "summarize"),
    ".presets": ("PRESETS", "cifar_resnet"),
    ".receptive": ("Field", "LayerField", "ReceptiveFields", "receptive_fields"),
    ".fields": ("FieldInfo", "SpecError", "spec_fields"),
    ".health": ("ActivationHealth", "BlockActivity", "activation_health", "activation_stats"),
    ".spec": ("DEFAULT_MAX_PARAMS", "HeadSpec", "NetSpec", "StagePlan", "decode_spec", "encode_spec"),
    ".stages": ("STAGE_TYPES", "DenseSpec", "InceptionSpec", "PlainSpec", "ResidualSpec", "StageSpec"),
}
__getattr__, __dir__ = lazy_exports(__name__, globals(), _EXPORTS)
__all__ = sorted(name for names in _EXPORTS.values() for name in names)
