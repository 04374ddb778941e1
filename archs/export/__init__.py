"""Export a network: standalone PyTorch code, ONNX, or its weights as ``.pt`` or safetensors.

Every export writes the spec beside it (``<name>.json``), so the files can be rebuilt with ``archs``:

=============  ===========================================================================================
``code``       ``<name>.py``, needing only torch: the network as readable modules (``build()``) and
               ``load()``, which loads the weights exported beside it as ``<name>.pt``
``onnx``       ``<name>.onnx`` through ``torch.onnx.export(..., dynamo=True)``, eval mode, any batch size
``pt``         ``<name>.pt``: the ``state_dict`` (``torch.load`` + ``load_state_dict``)
``safetensors`` ``<name>.safetensors``: the ``state_dict``, with the spec in the file's metadata
=============  ===========================================================================================

Weights are the given ``state_dict`` (a stored run's trained weights) or, without one, the spec's own
initialisation from seed 0. A module the code exporter does not know, or a network ONNX cannot express,
raises :class:`ExportError` naming it.

A spec's name comes from a link, an upload or a stored run, so it is treated as hostile (issue 13): file
names are :func:`file_stem` slugs that cannot leave the output folder, and generated code holds the name
only as a ``repr()`` literal (``NAME``); the docstring repeats it only when it is plain letters, digits,
spaces and ``_.+-``. Comments and messages show text with its control characters escaped.
"""

from .codegen import generate_code
from .formats import FORMATS, export, export_bytes, initial_weights
from .names import ExportError, file_stem

__all__ = ["FORMATS", "ExportError", "export", "export_bytes", "generate_code", "initial_weights", "file_stem"]
