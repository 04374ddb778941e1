"""``build_model``: a short loop that carries channels forward from the stem through the stages to the head."""

from __future__ import annotations

from collections import OrderedDict

import torch
from torch import nn

from .spec import NetSpec
from .stages.base import LayerNorm2d

__all__ = ["Network", "build_model"]


class Head(nn.Sequential):
    """(norm, act,) pool, (norm,) flatten, (dropout,) linear."""


class Stem(nn.Sequential):
    """The stem's plain parts, in order."""


class Network(nn.Sequential):
    """Children, in order: ``stem``, ``stage1`` .. ``stageN``, ``head``. ``spec`` is the NetSpec it was built from."""

    def __init__(self, spec: NetSpec, children: OrderedDict[str, nn.Module]):
        super().__init__(children)
        self.spec = spec


def build_model(spec: NetSpec, input_size: tuple[int, int] | int | None = None, *,
                init_weights: bool = True, max_params: int | None = None) -> Network:
    """Build the network a spec describes (no lazy modules: every shape is known up front).

    ``input_size`` (H, W) matters only for a head that flattens the feature map. The spec is checked
    first (:meth:`NetSpec.plan`): a map shrunk to nothing, or a network over the parameter limit or the rest
    of the server's size budget (:mod:`archs.budget`: stages, blocks, modules, memory), raises SpecError
    before any module is made.
    """
    plans = spec.plan(input_size, max_params=max_params)
    ctx = spec.context
    children: OrderedDict[str, nn.Module] = OrderedDict()
    channels = spec.in_channels
    stem_parts = []
    for part in spec.stem:
        stem_parts.append(part.build(channels, ctx))
        channels = part.out_channels(channels)
    children["stem"] = Stem(*stem_parts)
    for i, stage in enumerate(spec.stages):
        children[f"stage{i + 1}"] = stage.build(channels, ctx)
        channels = stage.out_channels(channels)
    children["head"] = _build_head(spec, channels, plans[-1])
    model = Network(spec, children)
    if init_weights:
        initialize(model, spec.init)
    return model


def _build_head(spec: NetSpec, channels: int, plan) -> nn.Module:
    head = spec.head
    layers: OrderedDict[str, nn.Module] = OrderedDict()
    if head.norm_activation:
        if spec.context.has_norm:
            layers["norm"] = spec.context.norm_layer(channels)
        layers["act"] = spec.context.act()
    if head.pool == "global_avg":
        layers["pool"] = nn.AdaptiveAvgPool2d(1)
    elif head.pool == "avg":
        layers["pool"] = nn.AvgPool2d(head.pool_kernel)
    if head.norm_after_pool and spec.context.has_norm:
        layers["pool_norm"] = spec.context.norm_layer(channels)
    layers["flatten"] = nn.Flatten(1)
    if head.dropout > 0:
        layers["dropout"] = nn.Dropout(head.dropout)
    h, w = plan.out_size
    layers["fc"] = nn.Linear(channels * h * w, spec.num_classes)
    return Head(layers)


@torch.no_grad()
def initialize(model: nn.Module, scheme: str) -> None:
    """Apply a named initialisation; norms get weight 1 and bias 0 in every scheme but 'default'."""
    if scheme == "default":
        return
    for module in model.modules():
        if isinstance(module, (nn.Conv2d, nn.Linear)):
            if scheme == "kaiming_normal":
                if isinstance(module, nn.Conv2d):
                    nn.init.kaiming_normal_(module.weight, mode="fan_out", nonlinearity="relu")
                    if module.bias is not None:
                        nn.init.zeros_(module.bias)
                continue  # torchvision keeps the Linear layer's default
            if scheme == "xavier_uniform":
                nn.init.xavier_uniform_(module.weight)
            elif scheme == "trunc_normal":
                nn.init.trunc_normal_(module.weight, mean=0.0, std=0.01, a=-2, b=2)
            if module.bias is not None:
                nn.init.zeros_(module.bias)
        elif isinstance(module, (nn.BatchNorm2d, LayerNorm2d)):
            nn.init.ones_(module.weight)
            nn.init.zeros_(module.bias)
