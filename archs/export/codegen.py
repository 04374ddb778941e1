"""``--format code``: a network as a Python file that needs only torch, the same module tree (so the same
``state_dict`` keys) written as one constructor call per module. The network's name is user text: the file
holds it as a ``repr()`` literal (``NAME``), in the docstring only when plain, in comments escaped."""

from __future__ import annotations

import functools
import inspect
import keyword
import re
import textwrap

from torch import nn

from ..builder import build_model
from ..spec import NetSpec
from .names import ExportError, check_file_name, escaped, file_stem

_PLAIN_NAME = re.compile(r"[A-Za-z0-9_.+-]+(?: [A-Za-z0-9_.+-]+)*")
_BLOCK_PACKAGE = "archs.stages."


def is_block(kind: type) -> bool:
    """A module class of a stage file (a block, a shortcut, a norm) that the exporter copies into the file.

    Its source is copied as it stands, so it may use only torch (``torch``, ``nn``, ``F``) and its constructor's
    parameters must be attributes of the same names (the exporter writes ``Block(param=<the attribute>)``): its
    parts as modules, the rest as plain values."""
    return (isinstance(kind, type) and issubclass(kind, nn.Module) and kind.__module__.startswith(_BLOCK_PACKAGE)
            and not (issubclass(kind, nn.Sequential) and kind.forward is nn.Sequential.forward))


@functools.cache
def block_source(kind: type) -> str:
    """The class's own source, as the stage file defines it."""
    return "\n" + textwrap.dedent(inspect.getsource(kind))


@functools.cache
def _parameters(kind: type) -> tuple[inspect.Parameter, ...]:
    return tuple(inspect.signature(kind.__init__).parameters.values())[1:]


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
    if kind in (nn.SiLU, nn.Tanh, nn.ReLU6, nn.Sigmoid, nn.Identity):
        return f"nn.{kind.__name__}()"
    return None


class _Writer:
    """Python source for a module tree, one constructor call per module, indented as the tree."""

    def __init__(self):
        self.blocks: dict[type, None] = {}   # the block classes met, in order

    def module(self, module: nn.Module, path: str, indent: int) -> str:
        pad, inner = " " * indent, " " * (indent + 4)
        leaf = _leaf(module)
        if leaf is not None and not list(module.children()):
            return leaf
        kind = type(module)
        if is_block(kind):
            self.blocks.setdefault(kind, None)
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
        raise self._unknown(kind, path)

    @staticmethod
    def _unknown(kind: type, path: str) -> ExportError:
        return ExportError(f"code export: {path or 'the network'} is a {kind.__name__}, which the code exporter "
                           "does not know; export as onnx, pt or safetensors instead")

    def _block(self, module: nn.Module, kind: type, path: str, indent: int) -> str:
        """``Kind(arg=…, …)``: each constructor parameter from the attribute of its name, left out where it
        equals the default; written on one line, positionally, where none is a module."""
        pad, inner = " " * indent, " " * (indent + 4)
        args = []
        for parameter in _parameters(kind):
            if not hasattr(module, parameter.name) or parameter.kind in (parameter.VAR_POSITIONAL,
                                                                         parameter.VAR_KEYWORD):
                raise self._unknown(kind, path)
            value = getattr(module, parameter.name)
            if isinstance(value, nn.Module):
                args.append((parameter.name, self.module(value, f"{path}.{parameter.name}", indent + 4), True))
            elif value is parameter.default or (not isinstance(value, nn.Module) and value == parameter.default
                                                 and type(value) is type(parameter.default)):
                args.append((parameter.name, None, False))
            elif value is None or isinstance(value, (bool, int, float, str)):
                args.append((parameter.name, repr(value), False))
            else:
                raise self._unknown(kind, path)
        while args and args[-1][1] is None:
            args.pop()
        if not any(is_module for _, _, is_module in args) and all(code is not None for _, code, _ in args):
            return f"{kind.__name__}({', '.join(code for _, code, _ in args)})"
        written = [f"{name}={code}" for name, code, _ in args if code is not None]
        return f"{kind.__name__}(\n" + "".join(f"{inner}{a},\n" for a in written) + f"{pad})"


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
    weights_file = check_file_name(weights_file or f"{file_stem(spec.name)}.pt")
    writer = _Writer()
    plans = {plan.name: plan for plan in spec.plan()}
    parts = []
    for name, child in model.named_children():
        plan = plans.get(_identifier(name))
        code = writer.module(child, name, 4)
        note = ""
        if plan is not None and name != "head":
            h, w = plan.out_size
            note = f"    # {escaped(plan.label)}: N x {plan.out_channels} x {h} x {w}\n"
        elif name == "head":
            note = f"    # {escaped(plans['head'].label)}: N x {spec.num_classes}\n"
        parts.append((name, note, code))
    blocks = "".join("\n" + block_source(kind) for kind in writer.blocks)
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

from __future__ import annotations

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
