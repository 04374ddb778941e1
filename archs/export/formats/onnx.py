"""``onnx``: the network in eval mode through ``torch.onnx.export(dynamo=True)``, for any batch size."""

from __future__ import annotations

import contextlib
import logging
import re
import tempfile
import warnings
from pathlib import Path

import torch
from torch import nn

from archs.spec import NetSpec

from ..names import ExportError, escaped
from .base import register_format


@register_format("onnx", "ONNX through torch.onnx.export(dynamo=True), in eval mode, for any batch size. Takes a "
                         "few seconds.")
def onnx_files(spec, model, weights, stem) -> dict[str, bytes]:
    return {f"{stem}.onnx": _onnx_bytes(spec, model)}


def _onnx_bytes(spec: NetSpec, model: nn.Module) -> bytes:
    import onnx  # deferred: heavy, and only this format needs it

    x = torch.randn(2, spec.in_channels, spec.input_size, spec.input_size)
    batch = torch.export.Dim("batch", min=1, max=1 << 16)
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "model.onnx"
        try:
            with warnings.catch_warnings(), _quiet_torch_logs():
                warnings.simplefilter("ignore")
                torch.onnx.export(model, (x,), str(path), dynamo=True, input_names=["images"],
                                  output_names=["logits"], dynamic_shapes=({0: batch},), verbose=False,
                                  external_data=False)
            onnx.checker.check_model(str(path))
        except Exception as error:  # noqa: BLE001 - torch.export raises many types; report the root cause
            raise ExportError(f"ONNX export of {escaped(spec.name)} failed: {_root_cause(error)}. The weights "
                              "can still be exported as pt or safetensors.") from None
        return path.read_bytes()


def _root_cause(error: BaseException) -> str:
    """The innermost cause in one line ('GuardOnDataDependentSymNode: Could not guard on …')."""
    while error.__cause__ is not None:
        error = error.__cause__
    lines = [re.sub(r"\x1b\[[0-9;]*m", "", line).strip() for line in str(error).splitlines()]
    first = next((line for line in lines if line), "")
    return f"{type(error).__name__}: {escaped(first[:300])}"


@contextlib.contextmanager
def _quiet_torch_logs():
    """torch.export logs the whole traced graph when it fails; the ExportError says what matters."""
    loggers = [logging.getLogger(name) for name in ("torch", "torch.export", "torch._dynamo", "torch.onnx")]
    levels = [logger.level for logger in loggers]
    for logger in loggers:
        logger.setLevel(logging.CRITICAL)
    try:
        yield
    finally:
        for logger, level in zip(loggers, levels):
            logger.setLevel(level)
