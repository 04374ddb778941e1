"""ConvNeXt stages (Liu et al. 2022): a ResNet modernised towards a vision transformer.

A stage may start by downsampling (a norm, then a 2x2 conv of stride 2 with bias: the layer between ConvNeXt's
stages belongs to the stage after it). Each block: a 7x7 depthwise conv (with bias), a norm, an inverted
bottleneck of 1x1 convs (``expansion`` x wider, with bias; the paper's linear layers on channels-last tensors,
the same weights) with the activation between them, a learned per-channel layer scale (initialised to
``layer_scale``; 0 leaves it out), and stochastic depth on the branch before the add: in training each image
skips the branch with probability ``stochastic_depth`` (the rest are scaled up to keep the expectation). No
activation after the add and no norm after the downsampling conv. The network's norm and activation are used:
ConvNeXt's are LayerNorm over the channels (``norm="layer"``, ``norm_eps=1e-6``) and GELU.

``convnext_tiny`` matches torchvision's 28,589,128 parameters: a 4x4/4 "patchify" conv stem with a norm, stages
of (3, 3, 9, 3) blocks of 96, 192, 384 and 768 channels, and a norm after the global pool before the classifier.
torchvision raises the stochastic depth linearly over the network's 18 blocks from 0 to 0.1; a stage here has one
probability for its blocks, so the preset gives each stage its blocks' mean, to 0.01: 0.01, 0.02, 0.06, 0.09.
"""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass, replace
from typing import ClassVar

import torch
from torch import nn

from ..fields import field_error, param
from .base import (
    CONVS,
    BuildContext,
    CountedByBuilding,
    Size,
    StageSpec,
    conv_params,
    norm_params,
    reduce_size,
    register_stage,
)
from .plain import PlainSpec


class ConvNeXtBlock(nn.Module):
    """x + drop_path(layer_scale * pwconv2(act(pwconv1(norm(dwconv(x)))))); no add where ``skip`` is off."""

    def __init__(self, dwconv: nn.Module, norm: nn.Module | None, pwconv1: nn.Module, act: nn.Module,
                 pwconv2: nn.Module, layer_scale_init: float = 0.0, drop_path: float = 0.0, skip: bool = True):
        super().__init__()
        self.dwconv, self.norm, self.pwconv1, self.act, self.pwconv2 = dwconv, norm, pwconv1, act, pwconv2
        self.layer_scale_init, self.drop_path, self.skip = layer_scale_init, drop_path, skip
        channels = pwconv2.out_channels
        self.layer_scale = nn.Parameter(torch.full((channels, 1, 1), layer_scale_init)) if layer_scale_init else None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.dwconv(x)                                          # N x C x H x W, each channel alone
        if self.norm is not None:
            out = self.norm(out)
        out = self.pwconv2(self.act(self.pwconv1(out)))               # N x eC x H x W, then N x C x H x W
        if self.layer_scale is not None:
            out = out * self.layer_scale
        if not self.skip:
            return out
        if self.training and self.drop_path > 0:                      # stochastic depth, per image
            keep = torch.rand(out.shape[0], 1, 1, 1, device=out.device, dtype=out.dtype) >= self.drop_path
            out = out * keep / (1 - self.drop_path)
        return x + out


class ConvNeXtStage(nn.Sequential):
    """An optional ``downsample`` (norm, 2x2/2 conv), then blocks block1..blockN."""


@register_stage
@dataclass(frozen=True)
class ConvNeXtSpec(CountedByBuilding, StageSpec):
    type_name: ClassVar[str] = "convnext"
    title: ClassVar[str] = "ConvNeXt"
    family: ClassVar[str] = "convnext"
    family_rank: ClassVar[int] = 24

    blocks: int = param(3, "Number of ConvNeXt blocks in the stage.", range=(1, 200), step=1)
    channels: int = param(96, "Channels of the blocks.", range=(1, 2048), step=1)
    downsample: bool = param(True, "Start with a norm and a 2x2 conv of stride 2 to the stage's channels (off: the "
                             "incoming channels must equal channels).")
    kernel_size: int = param(7, "Kernel of the depthwise conv.", choices=(3, 5, 7, 9, 11))
    expansion: int = param(4, "Width of the inverted bottleneck, in multiples of channels.", range=(1, 8), step=1)
    layer_scale: float = param(1e-6, "Initial value of the per-channel layer scale (0: no layer scale).",
                               choices=(0.0, 1e-6, 1e-5, 1e-4, 1e-3, 1e-2, 0.1, 1.0))
    stochastic_depth: float = param(0.0, "Probability, in training, that an image skips a block's branch.",
                                    range=(0.0, 0.9), step=0.01)
    skip: bool = param(True, "Add the block's input. Off gives the plain network with the same layers.")

    def check_input(self, in_channels: int) -> None:
        if not self.downsample and in_channels != self.channels:
            raise field_error("downsample", f"is off, so the blocks keep the {in_channels} incoming channels: set "
                                            f"channels to {in_channels} or turn downsample on")

    def out_channels(self, in_channels: int) -> int:
        return self.channels

    def out_stride(self) -> int:
        return 2 if self.downsample else 1

    def out_size(self, size: Size) -> Size:
        return reduce_size(size, 2, 2, 0) if self.downsample else size

    def make_block(self, ctx: BuildContext) -> ConvNeXtBlock:
        c, wide = self.channels, self.expansion * self.channels
        return ConvNeXtBlock(CONVS["depthwise"](c, c, self.kernel_size, bias=True),
                             ctx.norm_layer(c) if ctx.has_norm else None, nn.Conv2d(c, wide, 1), ctx.act(),
                             nn.Conv2d(wide, c, 1), self.layer_scale, self.stochastic_depth, self.skip)

    def num_params(self, in_channels: int, ctx: BuildContext) -> int:
        c, wide = self.channels, self.expansion * self.channels
        down = norm_params(ctx, in_channels) + conv_params(in_channels, c, 2, True) if self.downsample else 0
        block = (conv_params(c, c, self.kernel_size, True, groups=c) + norm_params(ctx, c)
                 + conv_params(c, wide, 1, True) + conv_params(wide, c, 1, True) + (c if self.layer_scale else 0))
        return down + self.blocks * block

    def build(self, in_channels: int, ctx: BuildContext) -> nn.Sequential:
        parts: OrderedDict[str, nn.Module] = OrderedDict()
        if self.downsample:
            down: OrderedDict[str, nn.Module] = OrderedDict()
            if ctx.has_norm:
                down["norm"] = ctx.norm_layer(in_channels)
            down["conv"] = nn.Conv2d(in_channels, self.channels, 2, stride=2)   # N x channels x H/2 x W/2
            parts["downsample"] = nn.Sequential(down)
        for i in range(self.blocks):
            parts[f"block{i + 1}"] = self.make_block(ctx)
        return ConvNeXtStage(parts)

    def label(self, in_channels: int) -> str:
        kind = "ConvNeXt" if self.skip else "Plain ConvNeXt"
        down = " ↓2" if self.downsample else ""
        return f"{kind}{down} x{self.blocks} · {self.channels} ch"

    def without_skips(self) -> ConvNeXtSpec:
        return replace(self, skip=False)

    @classmethod
    def reference_networks(cls) -> dict[str, dict]:
        stages = tuple(cls(blocks=n, channels=c, downsample=i > 0, stochastic_depth=p)
                       for i, (n, c, p) in enumerate(zip((3, 3, 9, 3), (96, 192, 384, 768), (0.01, 0.02, 0.06, 0.09))))
        stem = PlainSpec(channels=96, kernel_size=4, stride=4, padding=0, conv_bias=True, activation=False)
        return {"convnext_tiny": dict(name="convnext_tiny", in_channels=3, num_classes=1000, input_size=224,
                                      norm="layer", norm_eps=1e-6, activation="gelu", stem=(stem,), stages=stages,
                                      head={"norm_after_pool": True})}
