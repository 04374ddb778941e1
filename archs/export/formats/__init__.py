"""The export formats: the files of each (``export_bytes``), written to a folder (``export``).

One module per format (``code``, ``onnx``, ``pt``, ``safetensors``), whose function returning ``{file name:
bytes}`` carries ``@register_format(name, help)`` (:mod:`.base`). This package imports every module of itself, so
a new format is one new file here, with nothing else edited: ``export_bytes`` dispatches through :data:`FORMATS`.
"""

from __future__ import annotations

import os
from pathlib import Path

import torch
from torch import nn

from archs._registry import import_modules
from archs.builder import build_model
from archs.spec import NetSpec

from ..names import ExportError, check_file_name, escaped, file_stem
from .base import FORMATS, ExportFormat, register_format

import_modules(__name__, __path__)  # every module but base: each registers its format

__all__ = ["FORMATS", "ExportFormat", "export", "export_bytes", "initial_weights", "register_format"]


def initial_weights(spec: NetSpec, seed: int = 0) -> dict[str, torch.Tensor]:
    """The weights of a freshly built ``spec`` (its own initialisation scheme, from ``seed``)."""
    torch.manual_seed(seed)
    return build_model(spec).state_dict()


def _model(spec: NetSpec, state_dict: dict | None) -> nn.Module:
    if state_dict is None:
        torch.manual_seed(0)
        return build_model(spec).eval()
    with torch.device("meta"):                  # no initialisation to throw away: the weights replace it
        model = build_model(spec, init_weights=False)
    try:
        model.load_state_dict(state_dict, assign=True)
    except RuntimeError as error:
        first = str(error).strip().splitlines()
        raise ExportError(f"the weights do not fit {escaped(spec.name)}: "
                          f"{escaped(first[1].strip() if len(first) > 1 else first[0])}") from None
    return model.eval()


def export(spec: NetSpec, fmt: str, out_dir: str | Path, state_dict: dict | None = None,
           name: str | None = None) -> list[Path]:
    """Write ``spec`` (with ``state_dict``, or its seed-0 initialisation) in format ``fmt`` to ``out_dir``;
    return the paths written, the main file first."""
    files = export_bytes(spec, fmt, state_dict, name)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    paths = []
    for filename, data in files.items():
        path = out / check_file_name(filename)
        _write_new(path, data)
        paths.append(path)
    return paths


def _write_new(path: Path, data: bytes) -> None:
    """Write ``data`` to ``path`` itself: a symbolic link there (pointing out of the folder) is refused, not
    followed."""
    if path.is_symlink():
        raise ExportError(f"refusing to write {escaped(str(path))}: it is a symbolic link")
    flags = os.O_WRONLY | os.O_CREAT | os.O_TRUNC | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_BINARY", 0)
    with os.fdopen(os.open(path, flags, 0o666), "wb") as handle:
        handle.write(data)


def export_bytes(spec: NetSpec, fmt: str, state_dict: dict | None = None,
                 name: str | None = None) -> dict[str, bytes]:
    """The files of an export as ``{file name: content}``, the main file first (for a download button)."""
    if fmt not in FORMATS:
        raise ExportError(f"unknown format {fmt!r} (formats: {', '.join(FORMATS)})")
    stem = file_stem(name or spec.name)
    model = _model(spec, state_dict)
    weights = {k: v.detach().cpu().contiguous() for k, v in model.state_dict().items()}
    files = dict(FORMATS[fmt].files(spec, model, weights, stem))
    files[f"{stem}.json"] = spec.to_json().encode()   # every format writes the spec beside it, last
    return files
