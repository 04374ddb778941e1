"""Named networks, each an exact NetSpec: torchvision's, the d2l.ai book's, our source articles', and
He et al.'s CIFAR-10 nets. Tests check every parameter count against a reference."""

from __future__ import annotations

from pathlib import Path

from .fields import SpecError
from .spec import HeadSpec, NetSpec
from .stages import STAGE_TYPES, DenseSpec, InceptionSpec, PlainSpec, ResidualSpec

__all__ = ["PRESETS", "cifar_resnet", "load_spec", "register_preset"]

PRESETS: dict[str, NetSpec] = {}


def register_preset(name: str, spec: NetSpec) -> NetSpec:
    if name in PRESETS:
        raise ValueError(f"preset {name!r} is already registered")
    PRESETS[name] = spec
    return spec


def load_spec(name_or_path: str) -> NetSpec:
    """A preset name, or the path of a JSON spec file (the command line's ``SPEC`` argument)."""
    if name_or_path in PRESETS:
        return PRESETS[name_or_path]
    path = Path(name_or_path)
    if path.suffix.lower() == ".json" or path.exists():
        try:
            text = path.read_text(encoding="utf-8")
        except OSError as error:
            raise SpecError(f"{name_or_path}: cannot read the spec file ({error.strerror})") from None
        except UnicodeDecodeError:
            raise SpecError(f"{name_or_path}: the spec file is not UTF-8 text") from None
        return NetSpec.from_json(text)
    raise SpecError(f"unknown preset {name_or_path!r} and no such file (presets: {', '.join(PRESETS)})")


# 7x7/2 conv + norm + act, then a 3x3/2 max-pool: the ImageNet stem of ResNet and DenseNet
def imagenet_stem(bias: bool = False, ceil: bool = False, padding: int = 1) -> PlainSpec:
    return PlainSpec(channels=64, kernel_size=7, stride=2, padding=3, conv_bias=bias, pool="max",
                     pool_kernel=3, pool_stride=2, pool_padding=padding, pool_ceil_mode=ceil)


def _resnet_stages(block: str, counts: tuple[int, ...], **kw) -> tuple[ResidualSpec, ...]:
    widths = (64, 128, 256, 512)
    return tuple(ResidualSpec(blocks=n, channels=c, block=block, stride=1 if i == 0 else 2, **kw)
                 for i, (n, c) in enumerate(zip(counts, widths)))


def torchvision_resnet(name: str, block: str, counts: tuple[int, ...]) -> NetSpec:
    return NetSpec(name=name, in_channels=3, num_classes=1000, input_size=224, init="kaiming_normal",
                   stem=(imagenet_stem(),), stages=_resnet_stages(block, counts), head=HeadSpec())


for _name, _block, _counts in (("resnet18", "basic", (2, 2, 2, 2)), ("resnet34", "basic", (3, 4, 6, 3)),
                               ("resnet50", "bottleneck", (3, 4, 6, 3))):
    register_preset(_name, torchvision_resnet(_name, _block, _counts))


def _dense_stages(counts: tuple[int, ...], growth: int, **kw) -> tuple[DenseSpec, ...]:
    last = len(counts) - 1
    return tuple(DenseSpec(layers=n, growth_rate=growth, transition=i < last, **kw) for i, n in enumerate(counts))


register_preset("densenet121", NetSpec(
    name="densenet121", in_channels=3, num_classes=1000, input_size=224, init="kaiming_normal",
    stem=(imagenet_stem(),), stages=_dense_stages((6, 12, 24, 16), 32, bottleneck=True, bn_size=4),
    head=HeadSpec(norm_activation=True)))


# GoogLeNet's nine Inception modules: (1x1, 3x3 reduce, 3x3, 5x5 reduce, 5x5, pool projection)
GOOGLENET_MODULES = (
    (64, 96, 128, 16, 32, 32), (128, 128, 192, 32, 96, 64),                         # 3a, 3b
    (192, 96, 208, 16, 48, 64), (160, 112, 224, 24, 64, 64), (128, 128, 256, 24, 64, 64),
    (112, 144, 288, 32, 64, 64), (256, 160, 320, 32, 128, 128),                     # 4a .. 4e
    (256, 160, 320, 32, 128, 128), (384, 192, 384, 48, 128, 128),                   # 5a, 5b
)


def googlenet_stages(kernel5: int, bias: bool, norm: bool, pools: dict[int, dict]) -> tuple[InceptionSpec, ...]:
    stages = []
    for i, (b1, r3, b3, r5, b5, pp) in enumerate(GOOGLENET_MODULES):
        stages.append(InceptionSpec(modules=1, branch1x1=b1, branch3x3_reduce=r3, branch3x3=b3,
                                    branch5x5_reduce=r5, branch5x5=b5, branch5x5_kernel=kernel5,
                                    branch_pool_type="max", branch_pool_projection=pp, branch_norm=norm,
                                    branch_activation=True, conv_bias=bias, **pools.get(i, {})))
    return tuple(stages)


_tv_pool3 = dict(pool="max", pool_kernel=3, pool_stride=2, pool_padding=0, pool_ceil_mode=True)
register_preset("googlenet", NetSpec(
    name="googlenet", in_channels=3, num_classes=1000, input_size=224, norm_eps=1e-3, init="trunc_normal",
    stem=(PlainSpec(channels=64, kernel_size=7, stride=2, padding=3, **_tv_pool3),
          PlainSpec(channels=64, kernel_size=1, padding=0),
          PlainSpec(channels=192, kernel_size=3, padding=1, **_tv_pool3)),
    stages=googlenet_stages(3, bias=False, norm=True, pools={
        1: _tv_pool3, 6: dict(pool="max", pool_kernel=2, pool_stride=2, pool_padding=0, pool_ceil_mode=True)}),
    head=HeadSpec(dropout=0.2)))

# ----------------------------------------------------------------------------- d2l.ai (1 channel, 10 classes)
register_preset("d2l-resnet18", NetSpec(
    name="d2l-resnet18", in_channels=1, num_classes=10, input_size=96, init="xavier_uniform",
    stem=(imagenet_stem(bias=True),),
    stages=_resnet_stages("basic", (2, 2, 2, 2), shortcut="conv1x1_bias", conv_bias=True),
    head=HeadSpec()))

register_preset("d2l-densenet", NetSpec(
    name="d2l-densenet", in_channels=1, num_classes=10, input_size=96, init="xavier_uniform",
    stem=(imagenet_stem(bias=True),),
    stages=_dense_stages((4, 4, 4, 4), 32, bottleneck=False, conv_bias=True, compression=0.5),
    head=HeadSpec(norm_activation=True)))

_d2l_pool = dict(pool="max", pool_kernel=3, pool_stride=2, pool_padding=1)
register_preset("d2l-googlenet", NetSpec(
    name="d2l-googlenet", in_channels=1, num_classes=10, input_size=96, norm="none", init="xavier_uniform",
    stem=(PlainSpec(channels=64, kernel_size=7, stride=2, padding=3, conv_bias=True, **_d2l_pool),
          PlainSpec(channels=64, kernel_size=1, padding=0, conv_bias=True),
          PlainSpec(channels=192, kernel_size=3, padding=1, conv_bias=True, **_d2l_pool)),
    stages=googlenet_stages(5, bias=True, norm=False, pools={1: _d2l_pool, 6: _d2l_pool}),
    head=HeadSpec()))

# ----------------------------------------------------------------------------- our source articles
register_preset("seed000-resnet", NetSpec(
    name="seed000-resnet", in_channels=3, num_classes=10, input_size=96,
    stem=(PlainSpec(channels=64, kernel_size=7, stride=2, padding=0, conv_bias=True, norm=False,
                    activation=False, pool="max", pool_kernel=3, pool_stride=2, pool_padding=0),),
    stages=_resnet_stages("basic", (2, 2, 2, 2), shortcut="conv1x1_bias", activation_before_add=True),
    head=HeadSpec(pool="avg", pool_kernel=3)))

_seed002_module = dict(modules=1, branch1x1=16, branch3x3_reduce=0, branch3x3=0, branch5x5_reduce=16,
                       branch5x5=24, branch5x5_kernel=5, double3x3_reduce=16, double3x3=24,
                       branch_pool_type="avg", branch_pool_projection=24, branch_norm=False,
                       branch_activation=False, conv_bias=True)
_conv5_pool_relu = dict(kernel_size=5, padding=0, conv_bias=True, norm=False, pool="max", pool_kernel=2,
                        pool_stride=2, activation_after_pool=True)
register_preset("seed002-inception", NetSpec(
    name="seed002-inception", in_channels=1, num_classes=10, input_size=28, norm="none",
    stem=(PlainSpec(channels=10, **_conv5_pool_relu),),
    stages=(InceptionSpec(**_seed002_module), PlainSpec(channels=20, **_conv5_pool_relu),
            InceptionSpec(**_seed002_module)),
    head=HeadSpec(pool="flatten")))

register_preset("seed004-resnet", NetSpec(
    name="seed004-resnet", in_channels=1, num_classes=10, input_size=32,
    stem=(PlainSpec(channels=16, kernel_size=3, padding=1),),
    stages=tuple(ResidualSpec(blocks=2, channels=c, stride=s, shortcut="conv3x3")
                 for c, s in ((16, 1), (32, 2), (64, 2))),
    head=HeadSpec()))


# ----------------------------------------------------------------------------- He et al.'s CIFAR-10 nets
def cifar_resnet(depth: int, skip: bool = True) -> NetSpec:
    """6n+2 layers: a 3x3 conv, three stages of n basic blocks at 16/32/64 channels, zero-pad shortcuts."""
    n = (depth - 2) // 6
    kind = "resnet" if skip else "plain"
    return NetSpec(
        name=f"cifar-{kind}{depth}", in_channels=3, num_classes=10, input_size=32, init="kaiming_normal",
        stem=(PlainSpec(channels=16, kernel_size=3, padding=1),),
        stages=tuple(ResidualSpec(blocks=n, channels=c, stride=s, shortcut="zero_pad", skip=skip)
                     for c, s in ((16, 1), (32, 2), (64, 2))),
        head=HeadSpec())


for _depth in (20, 32, 44, 56, 110):
    register_preset(f"cifar-resnet{_depth}", cifar_resnet(_depth))
for _depth in (20, 56, 110):
    register_preset(f"cifar-plain{_depth}", cifar_resnet(_depth, skip=False))


# ----------------------------------------------------------------------------- the project's speedrun nets
def speedrun_net(name: str) -> NetSpec:
    """The network the project trains fastest to 99 % on MNIST and 91 % on Fashion-MNIST on a 2-core CPU
    (benchmarks/bench_speedrun.py): conv 16 + max-pool (28 -> 14), conv 32 + max-pool (-> 7), conv 64, then a
    linear layer on the flattened 64 x 7 x 7 map. Chosen over residual and wider nets by time to accuracy:
    three conv layers are too few for skips to matter, and a residual net of the same widths took about
    twice as long to reach 99 % on MNIST in the measurements that chose it."""
    return NetSpec(name=name, in_channels=1, num_classes=10, input_size=28, init="kaiming_normal",
                   stem=(PlainSpec(channels=16, kernel_size=3, padding=1, pool="max"),),
                   stages=(PlainSpec(channels=32, kernel_size=3, padding=1, pool="max"),
                           PlainSpec(channels=64, kernel_size=3, padding=1)),
                   head=HeadSpec(pool="flatten"))


for _name in ("speedrun-mnist", "speedrun-fashion-mnist"):
    register_preset(_name, speedrun_net(_name))


# ----------------------------------------------------------------------------- brought by their stage files
def _register_reference_networks() -> None:
    """Each stage type's ``reference_networks()`` (its paper's network, say), in the registry's order."""
    for cls in STAGE_TYPES.values():
        for name, values in cls.reference_networks().items():
            register_preset(name, NetSpec(**{**values, "head": HeadSpec(**values.get("head", {}))}))


_register_reference_networks()
