"""Residual stages (He et al. 2015, 2016): basic and bottleneck blocks with a choice of shortcut."""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass, replace
from typing import ClassVar

import torch
import torch.nn.functional as F
from torch import nn

from ..fields import field_error, param
from .base import (
    BuildContext,
    Size,
    StageSpec,
    chained_blocks,
    conv_bn_act,
    conv_params,
    norm_params,
    reduce_size,
    register_stage,
)

SHORTCUTS = ("projection", "conv3x3", "zero_pad", "conv1x1_bias")


class ZeroPadShortcut(nn.Module):
    """He et al.'s option A: subsample by the stride and pad the new channels with zeros (no parameters)."""

    def __init__(self, stride: int, pad_front: int, pad_back: int):
        super().__init__()
        self.stride, self.pad_front, self.pad_back = stride, pad_front, pad_back

    @classmethod
    def between(cls, in_channels: int, out_channels: int, stride: int) -> ZeroPadShortcut:
        """The shortcut from ``in_channels`` to ``out_channels``: the new channels split evenly front and back."""
        front = (out_channels - in_channels) // 2
        return cls(stride, front, out_channels - in_channels - front)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x[:, :, ::self.stride, ::self.stride]
        return F.pad(x, (0, 0, 0, 0, self.pad_front, self.pad_back))

    def extra_repr(self) -> str:
        return f"stride={self.stride}, pad_channels=({self.pad_front}, {self.pad_back})"


class ResidualBlock(nn.Module):
    """out = act(branch(x) + shortcut(x)); its parts are made by :meth:`ResidualSpec.make_block`.

    - ``preact`` (pre-activation, He et al. 2016): norm-act applied first, and the shortcut sees its output;
      such blocks have no ``act`` after the add.
    - ``shortcut`` None: the identity; ``skip`` False: no shortcut at all, which gives the plain network of
      He et al.'s Fig. 1.
    """

    def __init__(self, branch: nn.Module, shortcut: nn.Module | None = None, preact: nn.Module | None = None,
                 act: nn.Module | None = None, skip: bool = True):
        super().__init__()
        self.preact = preact
        self.branch = branch
        self.shortcut = shortcut
        self.skip = skip
        self.act = act

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.preact is not None:
            x = self.preact(x)
        out = self.branch(x)
        if self.skip:
            out = out + (self.shortcut(x) if self.shortcut is not None else x)
        return out if self.act is None else self.act(out)


class ResidualStage(nn.Sequential):
    """A stage of residual blocks; its children are block1..blockN."""


@register_stage
@dataclass(frozen=True)
class ResidualSpec(StageSpec):
    type_name: ClassVar[str] = "residual"
    title: ClassVar[str] = "Residual"
    family: ClassVar[str] = "residual"
    family_rank: ClassVar[int] = 10

    blocks: int = param(2, "Number of residual blocks in the stage.", range=(1, 200), step=1)
    channels: int = param(64, "Width of the blocks (a bottleneck block outputs 4x this).",
                          range=(1, 2048), step=1)
    block: str = param("basic", "Two 3x3 convs (basic) or 1x1-3x3-1x1 (bottleneck).",
                       choices=("basic", "bottleneck"))
    stride: int = param(1, "Stride of the first block (2 halves the feature map).", range=(1, 2), step=1)
    shortcut: str = param("projection", "Shortcut where the shape changes: 1x1 conv + norm (projection), "
                          "3x3 conv + norm (conv3x3), subsample and zero-pad channels, no parameters "
                          "(zero_pad), or a 1x1 conv with bias and no norm (conv1x1_bias).",
                          choices=SHORTCUTS)
    skip: bool = param(True, "Add the shortcut. Off gives the plain network with the same layers.")
    activation_before_add: bool = param(False, "Apply the activation to the branch output before the add "
                                        "as well as after it.")
    preactivation: bool = param(False, "Norm-activation-conv ordering (pre-activation ResNet).")
    conv_bias: bool = param(False, "Give the convolutions a bias.")

    def check(self) -> None:
        if self.preactivation and self.activation_before_add:
            raise field_error("activation_before_add", "cannot be combined with preactivation")

    @property
    def expansion(self) -> int:
        return 4 if self.block == "bottleneck" else 1

    def out_channels(self, in_channels: int) -> int:
        return self.channels * self.expansion

    def _needs_shortcut(self, in_channels: int, stride: int) -> bool:
        return stride != 1 or in_channels != self.out_channels(in_channels)

    def check_input(self, in_channels: int) -> None:
        if self.skip and self.shortcut == "zero_pad" and in_channels > self.out_channels(in_channels):
            raise field_error("shortcut", f"zero_pad cannot reduce {in_channels} channels to "
                                          f"{self.out_channels(in_channels)}; use a conv shortcut")

    def make_block(self, in_channels: int, stride: int, ctx: BuildContext) -> ResidualBlock:
        """One block: the branch's convs, the shortcut, and the activations the variant asks for.

        - ``activation_before_add``: the branch ends in an activation too (act applied before and after the add).
        - ``preactivation``: norm-act-conv ordering; no activation after the add, and the shortcut sees the
          pre-activated input.
        """
        width, out_channels = self.channels, self.out_channels(0)
        bias, pre = self.conv_bias, self.preactivation
        if self.block == "basic":
            convs = [(in_channels, width, 3, stride), (width, out_channels, 3, 1)]
        else:  # bottleneck, stride on the 3x3 conv as in torchvision (ResNet v1.5)
            convs = [(in_channels, width, 1, 1), (width, width, 3, stride), (width, out_channels, 1, 1)]
        layers: OrderedDict[str, nn.Module] = OrderedDict()
        for i, (c_in, c_out, k, s) in enumerate(convs, start=1):
            last = i == len(convs)
            if pre:
                if i > 1:  # the first norm-act lives in preact: the shortcut reads its output
                    if ctx.has_norm:
                        layers[f"norm{i}"] = ctx.norm_layer(c_in)
                    layers[f"act{i}"] = ctx.act()
                layers[f"conv{i}"] = nn.Conv2d(c_in, c_out, k, stride=s, padding=k // 2, bias=bias)
            else:
                layers[f"conv{i}"] = nn.Conv2d(c_in, c_out, k, stride=s, padding=k // 2, bias=bias)
                if ctx.has_norm:
                    layers[f"norm{i}"] = ctx.norm_layer(c_out)
                if not last or self.activation_before_add:
                    layers[f"act{i}"] = ctx.act()
        preact = None
        if pre:
            preact = nn.Sequential(*([ctx.norm_layer(in_channels)] if ctx.has_norm else []), ctx.act())
        shortcut = self.shortcut_module(in_channels, stride, ctx) if self.skip else None
        return ResidualBlock(nn.Sequential(layers), shortcut, preact, None if pre else ctx.act(), self.skip)

    def shortcut_module(self, in_channels: int, stride: int, ctx: BuildContext) -> nn.Module | None:
        out_channels = self.out_channels(in_channels)
        if not self._needs_shortcut(in_channels, stride):
            return None
        if self.shortcut == "zero_pad":
            return ZeroPadShortcut.between(in_channels, out_channels, stride)
        if self.shortcut == "conv1x1_bias":
            return nn.Conv2d(in_channels, out_channels, 1, stride=stride, bias=True)
        kernel = 3 if self.shortcut == "conv3x3" else 1
        return conv_bn_act(in_channels, out_channels, kernel, ctx, stride=stride, bias=self.conv_bias,
                           act=False)

    def _block_params(self, in_channels: int, stride: int, ctx: BuildContext) -> int:
        width, out = self.channels, self.out_channels(in_channels)
        convs = ([(in_channels, width, 3), (width, out, 3)] if self.block == "basic"
                 else [(in_channels, width, 1), (width, width, 3), (width, out, 1)])
        total = sum(conv_params(i, o, k, self.conv_bias) for i, o, k in convs)
        # norms: after each conv, or (pre-activation) before each conv
        total += sum(norm_params(ctx, i if self.preactivation else o) for i, o, _ in convs)
        if self.skip and self._needs_shortcut(in_channels, stride):
            if self.shortcut == "conv1x1_bias":
                total += conv_params(in_channels, out, 1, True)
            elif self.shortcut != "zero_pad":
                kernel = 3 if self.shortcut == "conv3x3" else 1
                total += conv_params(in_channels, out, kernel, self.conv_bias) + norm_params(ctx, out)
        return total

    def num_params(self, in_channels: int, ctx: BuildContext) -> int:
        out = self.out_channels(in_channels)
        first = self._block_params(in_channels, self.stride, ctx)
        return first + (self.blocks - 1) * self._block_params(out, 1, ctx)

    def out_stride(self) -> int:
        return self.stride

    def out_size(self, size: Size) -> Size:
        return reduce_size(size, 3, self.stride, 1) if self.stride > 1 else size

    def build(self, in_channels: int, ctx: BuildContext) -> nn.Sequential:
        return ResidualStage(chained_blocks(self.blocks, in_channels, self.out_channels(in_channels), self.stride,
                                    lambda c_in, stride: self.make_block(c_in, stride, ctx)))

    def label(self, in_channels: int) -> str:
        kind = "Residual" if self.skip else "Plain"
        variant = " bottleneck" if self.block == "bottleneck" else ""
        return f"{kind}{variant} x{self.blocks} · {self.out_channels(in_channels)} ch"

    def without_skips(self) -> ResidualSpec:
        return replace(self, skip=False)
