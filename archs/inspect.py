"""Inspectors: what a network is (``summarize``, on torchinfo) and how its gradients flow
(``gradient_norms``). They return plain data; a UI only lays it out."""

from __future__ import annotations

import functools
import itertools
import math
from collections.abc import Callable, Iterable
from dataclasses import asdict, dataclass

import torch
import torch.nn.functional as F
from torch import nn

from .builder import build_model
from .presets import cifar_resnet
from .spec import NetSpec

__all__ = ["LayerRow", "StageTotal", "Summary", "summarize", "LayerGradient", "BlockGradient", "GradientNorms",
           "gradient_norms", "gradient_profile", "depth_sweep", "plain_twin", "parse_input_size"]


# --------------------------------------------------------------------------------------------- summary
@dataclass(frozen=True)
class LayerRow:
    """One module of the network, as torchinfo saw it during a forward pass."""

    depth: int
    name: str                   # qualified name, e.g. "stage2.block1.branch.conv1"
    type: str                   # class name, e.g. "Conv2d"
    stage: str                  # top-level part: "stem", "stage2", "head"
    output_shape: tuple[int, ...]
    params: int                 # including children
    mult_adds: int              # including children, for the whole batch
    trainable: bool
    is_leaf: bool


@dataclass(frozen=True)
class StageTotal:
    name: str
    type_name: str
    label: str
    output_shape: tuple[int, ...]
    params: int
    mult_adds: int


@dataclass(frozen=True)
class Summary:
    spec: NetSpec
    input_shape: tuple[int, int, int]
    batch_size: int
    rows: tuple[LayerRow, ...]
    stages: tuple[StageTotal, ...]
    total_params: int
    trainable_params: int
    mult_adds: int                  # for the whole batch
    activation_bytes: int           # forward + backward activations for the batch (torchinfo's estimate)
    param_bytes: int

    def to_dict(self, layers: bool = True) -> dict:
        out = {
            "name": self.spec.name, "input_shape": list(self.input_shape), "batch_size": self.batch_size,
            "total_params": self.total_params, "trainable_params": self.trainable_params,
            "mult_adds": self.mult_adds, "activation_bytes": self.activation_bytes,
            "param_bytes": self.param_bytes,
            "stages": [dict(asdict(s), output_shape=list(s.output_shape)) for s in self.stages],
        }
        if layers:
            out["layers"] = [dict(asdict(r), output_shape=list(r.output_shape)) for r in self.rows]
        return out


def parse_input_size(spec: NetSpec, input_size: Iterable[int] | int | None) -> tuple[int, int, int]:
    """(C, H, W) from None (the spec's default), an int (square), (H, W) or (C, H, W)."""
    if input_size is None:
        return spec.in_channels, spec.input_size, spec.input_size
    if isinstance(input_size, int):
        return spec.in_channels, input_size, input_size
    dims = tuple(int(d) for d in input_size)
    if len(dims) == 2:
        return (spec.in_channels, *dims)
    if len(dims) == 3:
        return dims
    raise ValueError(f"input size must be H,W or C,H,W, got {input_size}")


def summarize(spec: NetSpec, input_size: Iterable[int] | int | None = None, batch_size: int = 1) -> Summary:
    """Layer-by-layer table and totals for ``spec`` (torchinfo). The same arguments again hit a cache."""
    shape = parse_input_size(spec, input_size)
    if shape[0] != spec.in_channels:
        spec = _with_channels(spec, shape[0])
    return _summarize(spec, shape, int(batch_size))


def _with_channels(spec: NetSpec, channels: int) -> NetSpec:
    from dataclasses import replace
    return replace(spec, in_channels=channels)


@functools.lru_cache(maxsize=64)
def _summarize(spec: NetSpec, shape: tuple[int, int, int], batch_size: int) -> Summary:
    import torchinfo

    plans = {plan.name: plan for plan in spec.plan(shape[1:])}
    model, device = _shape_only_model(spec, shape[1:], batch_size, plans.values())
    stats = torchinfo.summary(model, input_size=(batch_size, *shape), depth=1000, verbose=0, device=device,
                              col_names=("output_size", "num_params", "mult_adds", "trainable"))
    infos = stats.summary_list
    # summary_list is in pre-order: a stack of open ancestors gives each layer its qualified name and
    # lets leaf mult-adds roll up to every ancestor
    names, macs, stack = [], [0] * len(infos), []
    for i, info in enumerate(infos):
        del stack[info.depth:]
        names.append(".".join([infos[j].var_name for j in stack[1:]] + [info.var_name]))
        if info.is_leaf_layer:
            for j in stack + [i]:
                macs[j] += info.macs
        stack.append(i)
    rows = []
    for info, name, mult_adds in zip(infos, names, macs):
        if info.depth == 0:
            continue
        rows.append(LayerRow(info.depth, name, info.class_name, name.split(".", 1)[0],
                             tuple(info.output_size), info.num_params, mult_adds,
                             info.trainable_params == info.num_params, info.is_leaf_layer))
    stages = tuple(StageTotal(r.name, plans[r.name].type_name, plans[r.name].label, r.output_shape, r.params,
                              r.mult_adds)
            for r in rows if r.depth == 1 and r.name in plans)  # an empty stem has no plan
    return Summary(spec, shape, batch_size, tuple(rows), stages, stats.total_params, stats.trainable_params,
                   stats.total_mult_adds, stats.total_output_bytes, stats.total_param_bytes)


# Rough costs on a small CPU: a real forward pass runs ~1.5e9 mult-adds/s and zeroes ~1e8 weights/s; a
# forward pass on the meta device computes no numbers but spends ~1.2 ms per module in Python shape code.
_CPU_MACS_PER_S, _CPU_ZEROS_PER_S, _META_S_PER_MODULE = 1.5e9, 1e8, 1.2e-3


_SHAPE_PRESERVING = (nn.BatchNorm2d, nn.ReLU, nn.LeakyReLU, nn.GELU, nn.SiLU, nn.ELU, nn.Tanh, nn.Dropout)


def _pass_through(x: torch.Tensor) -> torch.Tensor:
    return x


def _shape_only_model(spec: NetSpec, size: tuple[int, int], batch_size: int = 1,
                      plans: Iterable | None = None) -> tuple[nn.Module, str]:
    """The network and the device to summarise it on, whichever should be faster: the meta device
    (shapes only, nothing allocated: a ResNet-18 at 224x224 in ~0.1 s instead of ~1 s) or the CPU with
    zeroed weights (cheaper for small nets made of many modules). Both give the same summary.
    """
    with torch.device("meta"):
        model = build_model(spec, size, init_weights=False)
    # mult-adds estimated from the plan: a stage's parameters times its output positions
    macs = batch_size * sum(p.params * p.out_size[0] * p.out_size[1] for p in plans or ())
    cpu_s = macs / _CPU_MACS_PER_S + sum(p.params for p in plans or ()) / _CPU_ZEROS_PER_S
    if cpu_s > _META_S_PER_MODULE * sum(1 for _ in model.modules()):
        for module in model.modules():
            if isinstance(module, _SHAPE_PRESERVING):
                # on meta these run Python decompositions (~3 ms per BatchNorm) only to return the
                # input's shape; passing the input through gives torchinfo the same rows and counts
                module.forward = _pass_through
        return model.eval(), "meta"
    model = model.to_empty(device="cpu")
    with torch.no_grad():
        for tensor in itertools.chain(model.parameters(), model.buffers()):
            tensor.zero_()
        for module in model.modules():
            if isinstance(module, nn.BatchNorm2d):
                module.running_var.fill_(1.0)
    return model.eval(), "cpu"


# --------------------------------------------------------------------------------------------- gradients
@dataclass(frozen=True)
class LayerGradient:
    depth: int          # execution order of conv and linear layers, from 1
    name: str
    type: str
    stage: str
    block: str
    grad_norm: float    # norm of the loss gradient w.r.t. the layer's weight


@dataclass(frozen=True)
class BlockGradient:
    index: int          # execution order of blocks, from 1
    name: str
    stage: str
    grad_norm: float    # norm of the loss gradient w.r.t. the block's output


@dataclass(frozen=True)
class GradientNorms:
    layers: tuple[LayerGradient, ...]
    blocks: tuple[BlockGradient, ...]
    loss: float

    def first_last_ratio(self, layer_type: str = "Conv2d") -> float:
        """First layer's weight-gradient norm over the last one's, among layers of ``layer_type``."""
        norms = [r.grad_norm for r in self.layers if r.type == layer_type]
        return norms[0] / norms[-1] if norms and norms[-1] > 0 else math.inf

    def to_dict(self) -> dict:
        return {"loss": self.loss, "records": [asdict(r) for r in self.layers],
                "blocks": [asdict(b) for b in self.blocks]}

    @classmethod
    def from_dict(cls, values: dict) -> GradientNorms:
        """Back from :meth:`to_dict` (a measurement made in a worker and stored as its result)."""
        return cls(tuple(LayerGradient(**r) for r in values["records"]),
                   tuple(BlockGradient(**b) for b in values["blocks"]), float(values["loss"]))


def _block_modules(model: nn.Module) -> list[tuple[str, nn.Module]]:
    """The blocks of a network: the children of every stage and each stem part; for any other
    module, its top-level children."""
    blocks = []
    for top_name, top in model.named_children():
        if top_name == "head":
            continue
        children = list(top.named_children()) if top_name.startswith("stage") or top_name == "stem" else []
        if not children:
            children = [("", top)]
        blocks += [(f"{top_name}.{name}" if name else top_name, module) for name, module in children]
    return blocks


def gradient_norms(model: nn.Module, inputs: torch.Tensor, targets: torch.Tensor,
                   loss_fn: Callable[[torch.Tensor, torch.Tensor], torch.Tensor] = F.cross_entropy) -> GradientNorms:
    """One forward and backward pass; per conv/linear layer (in execution order) the norm of its weight
    gradient, and per block the norm of the gradient with respect to the block's output.

    Uses ``torch.autograd.grad``, so the parameters' ``.grad`` stay as they were, and restores the
    norm layers' running statistics, so calling it has no side effect on the model. Runs in whatever
    mode the model is in (train mode: BatchNorm uses batch statistics).
    """
    layer_order: list[tuple[str, nn.Module]] = []
    seen: set[int] = set()
    block_outputs: list[tuple[str, torch.Tensor]] = []
    named = dict(model.named_modules())
    weighted = {id(m): n for n, m in named.items() if isinstance(m, (nn.Conv2d, nn.Linear))}

    def on_layer(module, _inputs, _output):
        if id(module) not in seen:
            seen.add(id(module))
            layer_order.append((weighted[id(module)], module))

    def on_block(name):
        return lambda _module, _inputs, output: block_outputs.append((name, output))

    blocks = _block_modules(model)
    handles = [named[n].register_forward_hook(on_layer) for n in weighted.values()]
    handles += [module.register_forward_hook(on_block(name)) for name, module in blocks]
    buffers = {name: b.detach().clone() for name, b in model.named_buffers()}
    try:
        with torch.enable_grad():
            loss = loss_fn(model(inputs), targets)
            tensors = [m.weight for _, m in layer_order] + [out for _, out in block_outputs]
            grads = torch.autograd.grad(loss, tensors, allow_unused=True)
    finally:
        for handle in handles:
            handle.remove()
        with torch.no_grad():
            for name, b in model.named_buffers():
                b.copy_(buffers[name])

    def norm(g):
        return float(g.detach().float().norm()) if g is not None else 0.0

    block_of = [(name + ".", name) for name, _ in blocks]
    layers = []
    for depth, ((name, module), g) in enumerate(zip(layer_order, grads), start=1):
        block = next((b for prefix, b in block_of if name.startswith(prefix)), name.split(".")[0])
        layers.append(LayerGradient(depth, name, type(module).__name__, name.split(".")[0], block, norm(g)))
    block_grads = grads[len(layer_order):]
    block_records = tuple(BlockGradient(i, name, name.split(".")[0], norm(g))
                          for i, ((name, _), g) in enumerate(zip(block_outputs, block_grads), start=1))
    return GradientNorms(tuple(layers), block_records, float(loss.detach()))


@functools.lru_cache(maxsize=32)
def gradient_profile(spec: NetSpec, batch_size: int = 64, seed: int = 0) -> GradientNorms:
    """Gradient norms of ``spec`` at initialisation, in train mode, on a random normal batch with
    random labels (seeded: the same seed gives the same weights, inputs and labels)."""
    torch.manual_seed(seed)
    model = build_model(spec).train()
    generator = torch.Generator().manual_seed(seed + 1)
    inputs = torch.randn(batch_size, spec.in_channels, spec.input_size, spec.input_size, generator=generator)
    targets = torch.randint(0, spec.num_classes, (batch_size,), generator=generator)
    return gradient_norms(model, inputs, targets)


def depth_sweep(depths: Iterable[int], batch_size: int = 32, seed: int = 0, in_channels: int = 3,
                norm: str = "batch", progress: Callable[[float, str], None] | None = None) -> list[dict]:
    """First-conv / last-conv gradient-norm ratio against depth for He et al.'s CIFAR nets with and
    without skips. Depths are 6n+2. ``progress(fraction, message)`` is called after each network."""
    from dataclasses import replace

    depths = list(depths)
    results, jobs = [], [(d, skip) for d in depths for skip in (True, False)]
    for i, (depth, skip) in enumerate(jobs, start=1):
        if (depth - 2) % 6 or depth < 8:
            raise ValueError(f"depth must be 6n+2 with n >= 1, got {depth}")
        spec = replace(cifar_resnet(depth, skip=skip), in_channels=in_channels, norm=norm)
        profile = gradient_profile(spec, batch_size, seed)
        results.append({"depth": depth, "skip": skip, "ratio": profile.first_last_ratio(),
                        "first": profile.layers[0].grad_norm, "last_conv": [
                            r.grad_norm for r in profile.layers if r.type == "Conv2d"][-1]})
        if progress is not None:
            progress(i / len(jobs), f"{spec.name}: ratio {results[-1]['ratio']:.3g}")
    return results


def plain_twin(spec: NetSpec) -> NetSpec:
    """The same network with every residual skip removed (shortcut convs go with them).

    Dense and Inception stages keep their concatenations: concatenation is what those stages are,
    not a skip added to a plain path, so removing it would make a different network, not a twin.
    """
    return spec.without_skips()
