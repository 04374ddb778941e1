"""Activation health per block: the mean and spread of each block's output over a batch, and how many of
its ReLU units are dead (output zero for every image of the batch and every position).

A unit is one channel of a ReLU's output. A dead unit passes no gradient, so its filter stops learning;
many dead units at initialisation point to a bad initialisation or too large a learning rate later, and
outputs whose spread grows or shrinks block after block show the signal exploding or vanishing on the
way forward, as the gradient views show it on the way back.
"""

from __future__ import annotations

import dataclasses
import functools
from dataclasses import asdict, dataclass

import torch
from torch import nn

from .builder import build_model
from .inspect import _block_modules
from .spec import NetSpec

__all__ = ["BlockActivity", "ActivationHealth", "activation_health", "activation_stats", "random_batch"]


@dataclass(frozen=True)
class BlockActivity:
    index: int                      # execution order of blocks, from 1 (as in the gradient records)
    name: str                       # "stage2.block1"
    stage: str
    mean: float                     # of the block's output, over the batch
    std: float
    relu_units: int                 # channels of the block's ReLU outputs (0: the block has no ReLU)
    dead_units: int                 # of those, channels that are 0 for every image and position
    zero_fraction: float | None     # share of all ReLU outputs that are 0 (None: no ReLU)

    @property
    def dead_fraction(self) -> float | None:
        return self.dead_units / self.relu_units if self.relu_units else None


@dataclass(frozen=True)
class ActivationHealth:
    blocks: tuple[BlockActivity, ...]
    batch_size: int
    train_mode: bool                # BatchNorm used batch statistics (train) or running ones (eval)
    inputs: str = "random normal images"

    @property
    def dead_fraction(self) -> float | None:
        """Dead ReLU channels over all ReLU channels of all blocks."""
        units = sum(b.relu_units for b in self.blocks)
        return sum(b.dead_units for b in self.blocks) / units if units else None

    def to_dict(self) -> dict:
        return {"batch_size": self.batch_size, "train_mode": self.train_mode, "inputs": self.inputs,
                "dead_fraction": self.dead_fraction,
                "blocks": [dict(asdict(b), dead_fraction=b.dead_fraction) for b in self.blocks]}

    @classmethod
    def from_dict(cls, values: dict) -> ActivationHealth:
        """Back from :meth:`to_dict` (a measurement made in a worker process and stored as a run's result)."""
        names = [f.name for f in dataclasses.fields(BlockActivity)]
        blocks = tuple(BlockActivity(**{k: b[k] for k in names}) for b in values["blocks"])
        return cls(blocks, int(values["batch_size"]), bool(values["train_mode"]), str(values["inputs"]))


_RELUS = (nn.ReLU, nn.ReLU6)   # activations whose units can die (stay at 0 for every input)


def activation_stats(model: nn.Module, inputs: torch.Tensor, train_mode: bool | None = None) -> ActivationHealth:
    """One forward pass of ``inputs`` without autograd; per block (the children of each stage and each stem
    part, as the gradient views use) the mean and std of its output and its ReLU units that stayed at 0.

    ``train_mode`` None keeps the model's mode. Leaves the model as found: mode and norm statistics.
    """
    was_training = model.training
    mode = was_training if train_mode is None else train_mode
    blocks = _block_modules(model)
    outputs: dict[str, torch.Tensor] = {}
    relus: dict[str, list[torch.Tensor]] = {name: [] for name, _ in blocks}

    def on_block(name):
        def hook(_module, _inputs, output):
            outputs[name] = output.detach()
        return hook

    def on_relu(name):
        def hook(_module, _inputs, output):
            relus[name].append(output.detach())
        return hook

    handles = []
    for name, block in blocks:
        handles.append(block.register_forward_hook(on_block(name)))
        handles += [m.register_forward_hook(on_relu(name)) for m in block.modules() if type(m) in _RELUS]
    buffers = {name: b.detach().clone() for name, b in model.named_buffers()}
    try:
        model.train(mode)
        with torch.no_grad():
            model(inputs)
    finally:
        for handle in handles:
            handle.remove()
        model.train(was_training)
        with torch.no_grad():
            for name, b in model.named_buffers():
                b.copy_(buffers[name])
    records = []
    for index, (name, _) in enumerate(blocks, start=1):
        out = outputs[name].float()
        units = dead = zeros = total = 0
        for act in relus[name]:
            per_channel = act.transpose(0, 1).reshape(act.shape[1], -1)   # C x (N * H * W)
            units += per_channel.shape[0]
            dead += int((per_channel.amax(dim=1) <= 0).sum())
            zeros += int((per_channel == 0).sum())
            total += per_channel.numel()
        records.append(BlockActivity(index, name, name.split(".")[0], float(out.mean()), float(out.std()), units,
                                     dead, zeros / total if total else None))
    return ActivationHealth(tuple(records), int(inputs.shape[0]), mode)


def random_batch(spec: NetSpec, batch_size: int, seed: int) -> torch.Tensor:
    """The batch the health and gradient views use: standard normal images, seeded."""
    generator = torch.Generator().manual_seed(seed + 1)
    return torch.randn(batch_size, spec.in_channels, spec.input_size, spec.input_size, generator=generator)


@functools.lru_cache(maxsize=32)
def activation_health(spec: NetSpec, batch_size: int = 64, seed: int = 0, train_mode: bool = True) -> ActivationHealth:
    """Activation health of ``spec`` at initialisation (seeded weights and batch). Train mode by default,
    as the gradient views: BatchNorm normalises with the batch's statistics."""
    torch.manual_seed(seed)
    model = build_model(spec)
    return activation_stats(model, random_batch(spec, batch_size, seed), train_mode)
