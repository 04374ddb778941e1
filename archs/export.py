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

from __future__ import annotations

import contextlib
import hashlib
import io
import keyword
import logging
import os
import re
import sys
import tempfile
import unicodedata
import warnings
from pathlib import Path

import torch
from torch import nn

from .builder import build_model
from .spec import NetSpec
from .stages.dense import DenseLayer
from .stages.inception import InceptionModule
from .stages.residual import ResidualBlock, ZeroPadShortcut

__all__ = ["FORMATS", "ExportError", "export", "export_bytes", "generate_code", "initial_weights", "file_stem"]

FORMATS = ("code", "onnx", "pt", "safetensors")


class ExportError(ValueError):
    """A network, module or format the exporter cannot handle."""


MAX_STEM = 64
# a stem never names a module the generated code imports (a torch.py beside it would shadow torch) or a
# Windows device (CON.py opens the console there)
_RESERVED_STEMS = frozenset(sys.stdlib_module_names) | {"torch", "archs", "numpy", "onnx", "onnxruntime",
                                                         "safetensors"}
_WINDOWS_DEVICES = frozenset({"con", "prn", "aux", "nul", *(f"com{i}" for i in range(10)),
                              *(f"lpt{i}" for i in range(10))})
_SAFE_FILE_NAME = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.-]{0,99}")
_PLAIN_NAME = re.compile(r"[A-Za-z0-9_.+-]+(?: [A-Za-z0-9_.+-]+)*")


def file_stem(name: str) -> str:
    """A file and Python module name for a network name: 'cifar-resnet20' -> 'cifar_resnet20'.

    Whatever ``name`` holds (path separators, '..', NUL, control characters, any script, any length), the
    stem is ASCII letters, digits and underscores, at most :data:`MAX_STEM` characters, starting with a
    letter, and neither a Python keyword, a module the generated code imports, nor a Windows device name:
    a file name that stays in the folder it is written to, and a module name that imports."""
    text = unicodedata.normalize("NFKD", name).encode("ascii", "ignore").decode("ascii")     # 'réseau' -> 'reseau'
    stem = re.sub(r"[^A-Za-z0-9_]+", "_", text).strip("_") or "network"
    if (not stem[0].isalpha() or keyword.iskeyword(stem) or stem.lower() in _RESERVED_STEMS
            or stem.lower() in _WINDOWS_DEVICES):
        stem = f"net_{stem}"
    if len(stem) > MAX_STEM:              # cut, with a digest of the whole name so long names stay apart
        digest = hashlib.sha256(name.encode("utf-8", "surrogatepass")).hexdigest()[:8]
        stem = f"{stem[:MAX_STEM - 9].rstrip('_')}_{digest}"
    return stem


def _escaped(text: str) -> str:
    """``text`` for a terminal, an error message or a ``#`` comment: every character that is not printable
    (newlines, CR, escape sequences, bidi overrides, lone surrogates) and every backslash as its Python
    escape, so the text stays on one line and shows what it holds. Printable text is unchanged."""
    return "".join(ch if ch.isprintable() and ch != "\\" else ch.encode("unicode_escape").decode("ascii")
                   for ch in text)


def _check_file_name(file_name: str) -> str:
    if not _SAFE_FILE_NAME.fullmatch(file_name):
        raise ExportError(f"refusing to write {file_name!r}: not a plain file name")
    return file_name


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
        raise ExportError(f"the weights do not fit {_escaped(spec.name)}: "
                          f"{_escaped(first[1].strip() if len(first) > 1 else first[0])}") from None
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
        path = out / _check_file_name(filename)
        _write_new(path, data)
        paths.append(path)
    return paths


def _write_new(path: Path, data: bytes) -> None:
    """Write ``data`` to ``path`` itself: a symbolic link there (pointing out of the folder) is refused, not
    followed."""
    if path.is_symlink():
        raise ExportError(f"refusing to write {_escaped(str(path))}: it is a symbolic link")
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
        from safetensors.torch import save

        data = save(weights, metadata={"format": "pt", "archs.spec": spec.to_json(indent=None)})
        return {f"{stem}.safetensors": data, f"{stem}.json": spec_json}
    return {f"{stem}.onnx": _onnx_bytes(spec, model), f"{stem}.json": spec_json}


def _torch_bytes(state_dict: dict) -> bytes:
    buffer = io.BytesIO()
    torch.save(state_dict, buffer)
    return buffer.getvalue()


def _onnx_bytes(spec: NetSpec, model: nn.Module) -> bytes:
    import onnx

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
            raise ExportError(f"ONNX export of {_escaped(spec.name)} failed: {_root_cause(error)}. The weights "
                              "can still be exported as pt or safetensors.") from None
        return path.read_bytes()


def _root_cause(error: BaseException) -> str:
    """The innermost cause in one line ('GuardOnDataDependentSymNode: Could not guard on …')."""
    while error.__cause__ is not None:
        error = error.__cause__
    lines = [re.sub(r"\x1b\[[0-9;]*m", "", line).strip() for line in str(error).splitlines()]
    first = next((line for line in lines if line), "")
    return f"{type(error).__name__}: {_escaped(first[:300])}"


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


# --------------------------------------------------------------------------------------------- code
# The building blocks a network may contain, as standalone classes: the same forward passes as the
# classes in archs/stages, taking their parts ready-made instead of a spec.
BLOCK_SOURCES = {
    ResidualBlock: '''
class ResidualBlock(nn.Module):
    """out = act(branch(x) + shortcut(x)); pre-activation blocks apply preact first and no act after."""

    def __init__(self, branch, shortcut=None, preact=None, act=None, skip=True):
        super().__init__()
        self.preact = preact
        self.branch = branch
        self.shortcut = shortcut
        self.skip = skip
        self.act = act

    def forward(self, x):
        if self.preact is not None:
            x = self.preact(x)
        out = self.branch(x)
        if self.skip:
            out = out + (self.shortcut(x) if self.shortcut is not None else x)
        return out if self.act is None else self.act(out)
''',
    ZeroPadShortcut: '''
class ZeroPadShortcut(nn.Module):
    """Subsample by the stride and pad the new channels with zeros (no parameters)."""

    def __init__(self, stride, pad_front, pad_back):
        super().__init__()
        self.stride, self.pad_front, self.pad_back = stride, pad_front, pad_back

    def forward(self, x):
        x = x[:, :, ::self.stride, ::self.stride]
        return F.pad(x, (0, 0, 0, 0, self.pad_front, self.pad_back))
''',
    DenseLayer: '''
class DenseLayer(nn.Module):
    """Its input, concatenated with what its layers make of it (growth rate new channels)."""

    def __init__(self, layers):
        super().__init__()
        self.layers = layers

    def forward(self, x):
        return torch.cat([x, self.layers(x)], dim=1)
''',
    InceptionModule: '''
class InceptionModule(nn.Module):
    """Parallel branches on the same input, concatenated along the channels."""

    def __init__(self, branches):
        super().__init__()
        self.branches = branches

    def forward(self, x):
        return torch.cat([branch(x) for branch in self.branches.values()], dim=1)
''',
}


def _args(*positional, **keywords) -> str:
    """Constructor arguments, keywords left out where they equal PyTorch's default (given as (value, default))."""
    parts = [repr(p) for p in positional]
    parts += [f"{k}={v[0]!r}" for k, v in keywords.items() if v[0] != v[1]]
    return ", ".join(parts)


def _square(value):
    return value[0] if isinstance(value, tuple) and len(set(value)) == 1 else value


def _leaf(module: nn.Module) -> str | None:
    """Constructor call of a torch.nn layer, or None for a type the exporter does not know."""
    m = module
    kind = type(m)
    if kind is nn.Conv2d:
        if m.padding_mode != "zeros":
            return None
        args = _args(m.in_channels, m.out_channels, _square(m.kernel_size), stride=(_square(m.stride), 1),
                     padding=(_square(m.padding), 0), dilation=(_square(m.dilation), 1), groups=(m.groups, 1),
                     bias=(m.bias is not None, True))
        return f"nn.Conv2d({args})"
    if kind is nn.BatchNorm2d:
        args = _args(m.num_features, eps=(m.eps, 1e-5), momentum=(m.momentum, 0.1), affine=(m.affine, True),
                     track_running_stats=(m.track_running_stats, True))
        return f"nn.BatchNorm2d({args})"
    if kind is nn.Linear:
        return f"nn.Linear({_args(m.in_features, m.out_features, bias=(m.bias is not None, True))})"
    if kind in (nn.MaxPool2d, nn.AvgPool2d):
        common = dict(stride=(_square(m.stride), _square(m.kernel_size)), padding=(_square(m.padding), 0),
                      ceil_mode=(m.ceil_mode, False))
        if kind is nn.MaxPool2d:
            common["dilation"] = (_square(m.dilation), 1)
        else:
            common["count_include_pad"] = (m.count_include_pad, True)
            if m.divisor_override is not None:
                return None
        return f"nn.{kind.__name__}({_args(_square(m.kernel_size), **common)})"
    if kind is nn.AdaptiveAvgPool2d:
        return f"nn.AdaptiveAvgPool2d({_args(_square(m.output_size))})"
    if kind is nn.Flatten:
        return f"nn.Flatten({_args(start_dim=(m.start_dim, 1), end_dim=(m.end_dim, -1))})"
    if kind is nn.Dropout:
        return f"nn.Dropout({_args(p=(m.p, 0.5))})"
    if kind is nn.ReLU:
        return "nn.ReLU()"
    if kind is nn.LeakyReLU:
        return f"nn.LeakyReLU({_args(negative_slope=(m.negative_slope, 0.01))})"
    if kind is nn.GELU:
        return f"nn.GELU({_args(approximate=(m.approximate, 'none'))})"
    if kind is nn.ELU:
        return f"nn.ELU({_args(alpha=(m.alpha, 1.0))})"
    if kind in (nn.SiLU, nn.Tanh):
        return f"nn.{kind.__name__}()"
    return None


class _Writer:
    """Python source for a module tree, one constructor call per module, indented as the tree."""

    def __init__(self):
        self.blocks: set[type] = set()

    def module(self, module: nn.Module, path: str, indent: int) -> str:
        pad, inner = " " * indent, " " * (indent + 4)
        leaf = _leaf(module)
        if leaf is not None and not list(module.children()):
            return leaf
        kind = type(module)
        if kind in BLOCK_SOURCES:
            self.blocks.add(kind)
            return self._block(module, kind, path, indent)
        if isinstance(module, nn.Sequential) and kind.forward is nn.Sequential.forward:
            children = list(module.named_children())
            if not children:
                return "nn.Sequential()"
            if all(name.isdigit() for name, _ in children):
                items = [self.module(child, f"{path}.{name}", indent + 4) for name, child in children]
                return "nn.Sequential(\n" + "".join(f"{inner}{item},\n" for item in items) + f"{pad})"
            items = [f"{_identifier(name, path)}={self.module(child, f'{path}.{name}', indent + 4)}"
                     for name, child in children]
            return "nn.Sequential(OrderedDict(\n" + "".join(f"{inner}{item},\n" for item in items) + f"{pad}))"
        if kind is nn.ModuleDict:
            items = [f"{name!r}: {self.module(child, f'{path}.{name}', indent + 4)}"
                     for name, child in module.named_children()]
            return "nn.ModuleDict({\n" + "".join(f"{inner}{item},\n" for item in items) + f"{pad}}})"
        raise ExportError(f"code export: {path or 'the network'} is a {kind.__name__}, which the code exporter "
                          "does not know; export as onnx, pt or safetensors instead")

    def _block(self, module: nn.Module, kind: type, path: str, indent: int) -> str:
        pad, inner = " " * indent, " " * (indent + 4)

        def part(name):
            child = getattr(module, name)
            return "None" if child is None else self.module(child, f"{path}.{name}", indent + 4)

        if kind is ZeroPadShortcut:
            return f"ZeroPadShortcut({module.stride}, {module.pad_front}, {module.pad_back})"
        if kind is DenseLayer:
            args = [f"layers={part('layers')}"]
        elif kind is InceptionModule:
            args = [f"branches={part('branches')}"]
        else:
            args = [f"branch={part('branch')}"]
            args += [f"{name}={part(name)}" for name in ("shortcut", "preact", "act")
                     if getattr(module, name) is not None]
            if not module.skip:
                args.append("skip=False")
        return f"{kind.__name__}(\n" + "".join(f"{inner}{a},\n" for a in args) + f"{pad})"


def _identifier(name: str, path: str = "") -> str:
    """A module's attribute name, where the generated code writes it as a Python name (``conv1=…``)."""
    if name.isascii() and name.isidentifier() and not keyword.iskeyword(name):
        return name
    where = f"{path}." if path else ""
    raise ExportError(f"code export: {where + name!r} is not a Python name; export as onnx, pt or "
                      "safetensors instead")


def generate_code(spec: NetSpec, model: nn.Module | None = None, weights_file: str | None = None) -> str:
    """A Python file that needs only torch and defines ``spec``'s network: ``build()`` makes it (the same
    module tree, so the same ``state_dict`` keys), ``load()`` adds the weights exported beside it."""
    model = model if model is not None else build_model(spec, init_weights=False)
    weights_file = _check_file_name(weights_file or f"{file_stem(spec.name)}.pt")
    writer = _Writer()
    plans = {plan.name: plan for plan in spec.plan()}
    parts = []
    for name, child in model.named_children():
        plan = plans.get(_identifier(name))
        code = writer.module(child, name, 4)
        note = ""
        if plan is not None and name != "head":
            h, w = plan.out_size
            note = f"    # {_escaped(plan.label)}: N x {plan.out_channels} x {h} x {w}\n"
        elif name == "head":
            note = f"    # {_escaped(plans['head'].label)}: N x {spec.num_classes}\n"
        parts.append((name, note, code))
    blocks = "".join("\n" + BLOCK_SOURCES[kind] for kind in BLOCK_SOURCES if kind in writer.blocks)
    body = "".join(f"{note}    {name} = {code}\n" for name, note, code in parts)
    names = ", ".join(f"{name}={name}" for name, _, _ in parts)
    size = f"{spec.in_channels} x {spec.input_size} x {spec.input_size}"
    # the name is user text: verbatim in the docstring only when plain (it then cannot end the string, start
    # an escape or a line); otherwise only in NAME, as repr() writes it
    title = spec.name if _PLAIN_NAME.fullmatch(spec.name) else "The network named in NAME"
    return f'''"""{title}: {size} images -> {spec.num_classes} class scores, {spec.num_params():,} parameters.

Written by `python -m archs export` from an archs NetSpec; needs only PyTorch.

    model = load()              # the network with the weights exported beside this file, in eval mode
    scores = model(images)      # images: N x {size} float tensor
"""

from collections import OrderedDict
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

NAME = {spec.name!r}
WEIGHTS = Path(__file__).with_name({weights_file!r})
INPUT_SHAPE = ({spec.in_channels}, {spec.input_size}, {spec.input_size})
{blocks}

def build() -> nn.Sequential:
    """The network, freshly initialised by PyTorch's defaults (``load`` replaces the weights)."""
{body}    return nn.Sequential(OrderedDict({names}))


def load(weights=WEIGHTS) -> nn.Sequential:
    """The network with ``weights`` (a state_dict file; None: keep build()'s), in eval mode."""
    model = build()
    if weights is not None:
        model.load_state_dict(torch.load(weights, map_location="cpu", weights_only=True))
    return model.eval()


if __name__ == "__main__":
    model = load()
    with torch.no_grad():
        print(model(torch.randn(1, *INPUT_SHAPE)).shape)
'''


# --------------------------------------------------------------------------------------------- command line
def add_parser(sub) -> None:
    """``python -m archs export SPEC_OR_RUN --format … --out DIR`` (registered by archs.cli)."""
    p = sub.add_parser("export", help="write a network as PyTorch code, ONNX, .pt or safetensors",
                       description="Export a preset, a JSON spec file or a stored run (with its trained weights). "
                                   "Every format also writes the spec as <name>.json.")
    p.add_argument("spec", metavar="SPEC_OR_RUN", help="a preset name, a JSON spec file, or a run id")
    p.add_argument("--format", required=True, choices=FORMATS,
                   help="code: a .py needing only torch, plus its weights as .pt; onnx; pt; safetensors")
    p.add_argument("--out", required=True, help="folder to write to (created if missing)")
    p.add_argument("--name", help="file name (default: the network's name)")
    p.set_defaults(run=_cmd_export)


def _cmd_export(args) -> int:
    import sys

    from .fields import SpecError
    from .sources import SourceError, resolve

    try:
        source = resolve(args.spec)
        paths = export(source.spec, args.format, args.out, state_dict=source.weights(), name=args.name)
    except (SpecError, SourceError, ExportError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    except OSError as error:
        print(f"error: cannot write to {args.out}: {error.strerror}", file=sys.stderr)
        return 2
    weights = f"trained weights of run {source.run_id}" if source.run_id else "weights initialised from seed 0"
    print(f"{_escaped(source.spec.name)} ({weights}):")
    for path in paths:
        print(f"  {path}")
    return 0
