"""The export formats: the files of each (``export_bytes``), written to a folder (``export``)."""

from __future__ import annotations

import contextlib
import io
import logging
import os
import re
import tempfile
import warnings
from pathlib import Path

import torch
from torch import nn

from ..builder import build_model
from ..spec import NetSpec
from .codegen import generate_code
from .names import ExportError, check_file_name, escaped, file_stem

FORMATS = ("code", "onnx", "pt", "safetensors")


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
    spec_json = spec.to_json().encode()
    if fmt == "code":
        code = generate_code(spec, model, weights_file=f"{stem}.pt")
        return {f"{stem}.py": code.encode(), f"{stem}.pt": _torch_bytes(weights), f"{stem}.json": spec_json}
    if fmt == "pt":
        return {f"{stem}.pt": _torch_bytes(weights), f"{stem}.json": spec_json}
    if fmt == "safetensors":
        from safetensors.torch import save  # deferred: only this format needs safetensors

        data = save(weights, metadata={"format": "pt", "archs.spec": spec.to_json(indent=None)})
        return {f"{stem}.safetensors": data, f"{stem}.json": spec_json}
    return {f"{stem}.onnx": _onnx_bytes(spec, model), f"{stem}.json": spec_json}


def _torch_bytes(state_dict: dict) -> bytes:
    buffer = io.BytesIO()
    torch.save(state_dict, buffer)
    return buffer.getvalue()


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
