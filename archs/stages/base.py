"""The contract every stage type honours, the registry, and the small helpers they share.

A stage type is a frozen dataclass (its fields are the sliders) that, given the incoming channels,
builds its module and reports its outgoing channels, its stride, its output size and its parameter
count, the last one computed without allocating anything. Adding a stage type means adding one file here:

- the spec class, decorated with ``@register_stage``: ``type_name``, ``title``, ``family`` and ``family_rank``
  (what the charts colour its networks by), fields made with ``param`` (the Build page's controls), and
  ``out_channels``, ``out_size``, ``out_stride``, ``num_params``, ``build``, ``label``, ``without_skips`` (and
  ``check``/``check_input`` for its rules). tests/test_stage_types.py checks the arithmetic against ``build()``
  for every registered type, so it cannot drift unseen;
- its block classes (``nn.Module`` subclasses whose constructor takes ready-made parts and plain values and
  keeps each as an attribute of the same name, using only torch in their code): code export copies their source;
- ``reference_networks()`` for presets its paper defines, and ``CountedByBuilding`` first among its bases unless
  archs.budget has a counter for it;
- norms, activations and conv kinds from the registries below (``NORMS``, ``ACTIVATIONS``, ``CONVS``), or its
  own added with ``register_norm``/``register_activation``/``register_conv``.
"""

from __future__ import annotations

import functools
from collections import OrderedDict
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import ClassVar

import torch
import torch.nn.functional as F
from torch import nn

from ..fields import check_fields, field_error, param

__all__ = ["StageSpec", "BuildContext", "ShapeProblem", "STAGE_TYPES", "register_stage", "PoolAfter", "NORMS",
           "ACTIVATIONS", "CONVS", "LayerNorm2d", "register_norm", "register_activation", "register_conv"]

Size = tuple[int, int]
STAGE_TYPES: dict[str, type[StageSpec]] = {}


class LayerNorm2d(nn.Module):
    """LayerNorm over the channels of an N x C x H x W map, at every position (ConvNeXt's channels-first norm)."""

    def __init__(self, num_channels: int, eps: float = 1e-6):
        super().__init__()
        self.num_channels, self.eps = num_channels, eps
        self.weight = nn.Parameter(torch.ones(num_channels))
        self.bias = nn.Parameter(torch.zeros(num_channels))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x.permute(0, 2, 3, 1)                                      # N x H x W x C
        x = F.layer_norm(x, (self.num_channels,), self.weight, self.bias, self.eps)
        return x.permute(0, 3, 1, 2)                                   # N x C x H x W


# The library's parts, looked up by name (a stage file may register its own with the functions below):
#   norms: name -> (channels, eps) -> module with 2 x channels parameters; "none" means no norm at all
#   activations: name -> () -> module
#   convs: name -> (c_in, c_out, kernel, stride, padding, bias, groups) -> Conv2d; "groups" is ignored by the
#   kinds that fix it (standard: 1, depthwise: c_in)
NORMS: dict[str, Callable[[int, float], nn.Module]] = {
    "batch": lambda channels, eps: nn.BatchNorm2d(channels, eps=eps),
    "layer": LayerNorm2d,
}
ACTIVATIONS: dict[str, Callable[[], nn.Module]] = {
    "relu": nn.ReLU,
    "relu6": nn.ReLU6,
    "leaky_relu": lambda: nn.LeakyReLU(0.01),
    "gelu": nn.GELU,
    "silu": nn.SiLU,
    "elu": nn.ELU,
    "tanh": nn.Tanh,
}


def _conv_kind(groups_of: Callable[[int, int], int]) -> Callable[..., nn.Conv2d]:
    """A conv factory whose groups come from ``groups_of(c_in, groups)``; padding keeps the size at stride 1."""
    def make(c_in: int, c_out: int, kernel: int, stride: int = 1, padding: int | None = None, bias: bool = False,
             groups: int = 1) -> nn.Conv2d:
        return nn.Conv2d(c_in, c_out, kernel, stride=stride, padding=kernel // 2 if padding is None else padding,
                         bias=bias, groups=groups_of(c_in, groups))
    return make


CONVS: dict[str, Callable[..., nn.Conv2d]] = {
    "standard": _conv_kind(lambda c_in, groups: 1),
    "grouped": _conv_kind(lambda c_in, groups: groups),      # ResNeXt's cardinality
    "depthwise": _conv_kind(lambda c_in, groups: c_in),      # one filter per channel (MobileNet, ConvNeXt)
}


def _register(table: dict, name: str, factory: Callable) -> Callable:
    if name in table:
        raise ValueError(f"{name!r} is already registered")
    table[name] = factory
    return factory


def register_norm(name: str, factory: Callable[[int, float], nn.Module]) -> Callable:
    """A norm by name, for NetSpec's ``norm`` choice: ``factory(channels, eps)``, 2 x channels parameters."""
    return _register(NORMS, name, factory)


def register_activation(name: str, factory: Callable[[], nn.Module]) -> Callable:
    return _register(ACTIVATIONS, name, factory)


def register_conv(name: str, factory: Callable[..., nn.Conv2d]) -> Callable:
    return _register(CONVS, name, factory)


class ShapeProblem(Exception):
    """A stage would shrink the feature map to nothing; the network adds which stage and input."""


def register_stage(cls: type[StageSpec]) -> type[StageSpec]:
    if cls.type_name in STAGE_TYPES:
        raise ValueError(f"stage type {cls.type_name!r} is already registered")
    STAGE_TYPES[cls.type_name] = cls
    return cls


@dataclass(frozen=True)
class BuildContext:
    """Network-wide choices every stage honours."""

    norm: str = "batch"
    norm_eps: float = 1e-5
    activation: str = "relu"

    @property
    def has_norm(self) -> bool:
        return self.norm != "none"

    def norm_layer(self, channels: int) -> nn.Module:
        return NORMS[self.norm](channels, self.norm_eps)

    def act(self) -> nn.Module:
        return ACTIVATIONS[self.activation]()


def conv_params(c_in: int, c_out: int, kernel: int, bias: bool, groups: int = 1) -> int:
    return c_out * (c_in // groups) * kernel * kernel + (c_out if bias else 0)


def norm_params(ctx: BuildContext, channels: int, used: bool = True) -> int:
    return 2 * channels if used and ctx.has_norm else 0


def conv_bn_act(c_in: int, c_out: int, kernel: int, ctx: BuildContext, *, stride: int = 1,
                padding: int | None = None, bias: bool = False, norm: bool = True,
                act: bool = True, conv: str = "standard", groups: int = 1) -> nn.Sequential:
    """conv (+norm)(+act) as a named Sequential, the unit most stages are made of; ``conv`` names a kind in
    ``CONVS`` (standard, grouped with ``groups``, depthwise)."""
    layers: OrderedDict[str, nn.Module] = OrderedDict(
        conv=CONVS[conv](c_in, c_out, kernel, stride=stride, padding=padding, bias=bias, groups=groups))
    if norm and ctx.has_norm:
        layers["norm"] = ctx.norm_layer(c_out)
    if act:
        layers["act"] = ctx.act()
    return nn.Sequential(layers)


def conv_bn_act_params(c_in: int, c_out: int, kernel: int, ctx: BuildContext, *, bias: bool,
                       norm: bool = True, groups: int = 1) -> int:
    return conv_params(c_in, c_out, kernel, bias, groups) + norm_params(ctx, c_out, norm)


def chained_blocks(count: int, in_channels: int, out_channels: int, stride: int,
                   make_block: Callable[[int, int], nn.Module]) -> OrderedDict[str, nn.Module]:
    """``block1``..``blockN`` of a stage of ``count`` blocks: ``make_block(c_in, stride)`` for the first from the
    stage's input at its stride, for each other from its output at stride 1."""
    return OrderedDict((f"block{i + 1}", make_block(in_channels if i == 0 else out_channels, stride if i == 0 else 1))
                       for i in range(count))


def reduce_size(size: Size, kernel: int, stride: int, padding: int, ceil_mode: bool = False) -> Size:
    """Output size of a conv or pool; raises ShapeProblem where the map would vanish."""
    out = []
    for n in size:
        if stride > 1 and n == 1:
            verb = "halved" if stride == 2 else f"reduced by stride {stride}"
            raise ShapeProblem(f"a {size[0]}x{size[1]} feature map cannot be {verb}")
        span = n + 2 * padding - kernel
        if span < 0:
            raise ShapeProblem(f"a {size[0]}x{size[1]} feature map is smaller than a {kernel}x{kernel} "
                               f"window with padding {padding}")
        m = -(-span // stride) + 1 if ceil_mode else span // stride + 1
        if ceil_mode and (m - 1) * stride >= n + padding:
            m -= 1  # PyTorch: the last window must start inside the input or left padding
        out.append(m)
    return out[0], out[1]


@dataclass(frozen=True)
class StageSpec:
    """Base of every stage type. Subclasses are frozen dataclasses registered by ``type_name``."""

    type_name: ClassVar[str] = ""
    title: ClassVar[str] = ""
    #: what the charts colour a network with this stage by (archs.studies.results.network_family): a network is
    #: named after the stage of highest ``family_rank`` it holds; a stage whose skips are off counts as "plain"
    family: ClassVar[str] = "plain"
    family_rank: ClassVar[int] = 0

    def __post_init__(self) -> None:
        check_fields(self)
        self.check()

    def check(self) -> None:
        """Cross-field rules; raise SpecError naming the field."""

    def out_channels(self, in_channels: int) -> int:
        raise NotImplementedError

    def out_size(self, size: Size) -> Size:
        raise NotImplementedError

    def out_stride(self) -> int:
        """How much the stage downsamples: the product of its conv and pool strides."""
        raise NotImplementedError

    def num_params(self, in_channels: int, ctx: BuildContext) -> int:
        raise NotImplementedError

    def build(self, in_channels: int, ctx: BuildContext) -> nn.Sequential:
        """The stage as a Sequential whose children are its blocks."""
        raise NotImplementedError

    def check_input(self, in_channels: int) -> None:
        """Rules that depend on the incoming channels (e.g. zero padding cannot drop channels)."""

    def label(self, in_channels: int) -> str:
        return self.title

    def without_skips(self) -> StageSpec:
        """The same stage with residual skips removed; stages without skips return themselves."""
        return self

    @classmethod
    def reference_networks(cls) -> dict[str, dict]:
        """Named networks made of this stage type, registered as presets by archs.presets: name -> NetSpec's
        keyword arguments, its ``head`` as HeadSpec's keyword arguments (a dict). So a stage file brings its
        paper's network with it."""
        return {}


_NOT_BLOCKS = ("pool", "act", "transition")     # a stage's children that archs.budget does not count as blocks


@functools.lru_cache(maxsize=256)
def _meta_stage(stage: StageSpec, in_channels: int, ctx: BuildContext) -> nn.Module:
    with torch.device("meta"):
        return stage.build(in_channels, ctx)


def _leaves(module: nn.Module) -> Iterator[nn.Module]:
    for child in module.modules():
        if not list(child.children()):
            yield child


class CountedByBuilding:
    """For a stage type with no counter of its own in archs.budget: its budget footprint (modules and blocks
    exactly, the activations of one image as an upper bound) from the stage built on the meta device (no
    memory, a few ms a stage, cached by stage, incoming channels and context)."""

    def footprint(self, in_channels: int, size: Size, ctx: BuildContext, tally) -> None:
        stage = _meta_stage(self, in_channels, ctx)
        leaves = list(_leaves(stage))
        tally.modules += sum(1 for _ in stage.modules()) - len(leaves)     # containers; out() counts the leaves
        blocks = sum(1 for name in stage._modules if name not in _NOT_BLOCKS)
        tally.blocks += blocks
        out_size = self.out_size(size)
        area = max(size[0] * size[1], out_size[0] * out_size[1])
        channels = in_channels
        for leaf in leaves:
            channels = getattr(leaf, "out_channels", getattr(leaf, "num_features",
                                                             getattr(leaf, "num_channels", channels)))
            tally.out(channels * area, weighted=int(any(True for _ in leaf.parameters(recurse=False))))
        for _ in range(blocks):
            tally.join(self.out_channels(in_channels) * out_size[0] * out_size[1])   # the adds


@dataclass(frozen=True)
class PoolAfter:
    """An optional pooling layer at the end of a stage (fields shared by plain and inception stages)."""

    pool: str = param("none", "Pooling after the stage.", choices=("none", "max", "avg"))
    pool_kernel: int = param(2, "Pooling window size.", range=(1, 8), step=1)
    pool_stride: int = param(2, "Pooling stride.", range=(1, 8), step=1)
    pool_padding: int = param(0, "Pooling padding on each side (at most half the window).",
                              range=(0, 4), step=1)
    pool_ceil_mode: bool = param(False, "Round the pooled size up (torchvision's GoogLeNet does).")

    def check_pool(self) -> None:
        if self.pool != "none" and 2 * self.pool_padding > self.pool_kernel:
            raise field_error("pool_padding", f"must be at most half of pool_kernel ({self.pool_kernel}),"
                                              f" got {self.pool_padding}")

    def pool_module(self) -> nn.Module | None:
        if self.pool == "none":
            return None
        cls = nn.MaxPool2d if self.pool == "max" else nn.AvgPool2d
        return cls(self.pool_kernel, stride=self.pool_stride, padding=self.pool_padding,
                   ceil_mode=self.pool_ceil_mode)

    def pool_stride_factor(self) -> int:
        return 1 if self.pool == "none" else self.pool_stride

    def pooled_size(self, size: Size) -> Size:
        if self.pool == "none":
            return size
        return reduce_size(size, self.pool_kernel, self.pool_stride, self.pool_padding, self.pool_ceil_mode)


