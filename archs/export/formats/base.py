"""Where export formats are registered: :data:`FORMATS` maps each name to its :class:`ExportFormat`, filled by
:func:`register_format` on each format's function (one module per format in this package, each imported by the
package)."""

from __future__ import annotations

import io
from collections.abc import Callable
from typing import NamedTuple

import torch
from torch import nn

from archs._registry import add
from archs.spec import NetSpec

__all__ = ["FORMATS", "ExportFormat", "register_format", "torch_bytes"]

# (spec, its model in eval mode, its weights as detached CPU tensors, the file stem) -> {file name: bytes}
FormatFiles = Callable[[NetSpec, nn.Module, dict, str], dict]


class ExportFormat(NamedTuple):
    name: str
    help: str          # one sentence for the Build page's Export tab and the command line
    files: FormatFiles


FORMATS: dict[str, ExportFormat] = {}


def register_format(name: str, help: str) -> Callable[[FormatFiles], FormatFiles]:
    """Decorator: make ``files(spec, model, weights, stem) -> {file name: bytes}`` (the main file first) the
    export format ``name``. ``export_bytes`` adds the spec as ``<stem>.json`` after its files; the command line's
    ``--format``, the Build page's Export tab and ``archs.export.export`` read :data:`FORMATS`. A name already taken
    is refused."""
    def decorate(files: FormatFiles) -> FormatFiles:
        add(FORMATS, name, ExportFormat(name, help, files), "export format")
        return files
    return decorate


def torch_bytes(state_dict: dict) -> bytes:
    """A state_dict as ``torch.save`` writes it."""
    buffer = io.BytesIO()
    torch.save(state_dict, buffer)
    return buffer.getvalue()
