"""The one place where `archs` imports torchvision.

On this project's CPU machines pip pairs the CPU build of torch 2.13.0 with torchvision 0.28.0, whose
Linux wheel is a CUDA build: its compiled ops do not load, and ``import torchvision`` then fails with
``RuntimeError: operator torchvision::nms does not exist`` while registering fake kernels for them.
Defining the schemas of those ops (without kernels) lets the pure-Python parts import: datasets,
transforms and models work; ``torchvision.ops`` and ``torchvision.io`` stay unusable.

Where torch and torchvision match (a user's GPU machine) the first import succeeds and nothing here
runs. torchvision is imported lazily, only by code that needs data or reference models, so the
dashboard's cold start does not pay for it.
"""

from __future__ import annotations

import sys
from types import ModuleType

# Ops that torchvision/_meta_registrations.py registers fake kernels for unconditionally.
_MISSING_OP_SCHEMAS = (
    "nms(Tensor dets, Tensor scores, float iou_threshold) -> Tensor",
    "qnms(Tensor dets, Tensor scores, float iou_threshold) -> Tensor",
)
_shim_library = None  # kept alive: a torch.library.Library deregisters its ops when collected


def _define_missing_ops() -> None:
    global _shim_library
    import torch

    if _shim_library is not None:
        return
    library = torch.library.Library("torchvision", "DEF")
    for schema in _MISSING_OP_SCHEMAS:
        library.define(schema)
    _shim_library = library


def import_torchvision() -> ModuleType:
    """Return the torchvision module, working around a CPU-torch / CUDA-torchvision mismatch."""
    if "torchvision" in sys.modules and hasattr(sys.modules["torchvision"], "datasets"):
        return sys.modules["torchvision"]
    try:
        import torchvision
    except RuntimeError as error:
        if "torchvision::nms does not exist" not in str(error):
            raise
        for name in [m for m in sys.modules if m == "torchvision" or m.startswith("torchvision.")]:
            del sys.modules[name]  # drop the half-imported package before trying again
        _define_missing_ops()
        import torchvision
    return torchvision
