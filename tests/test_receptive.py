"""Receptive fields against values worked out by hand (r' = r + (k-1)j, j' = js, c' = c + ((k-1)/2 - p)j;
where paths merge, the union of their windows)."""

import pytest

from archs import PRESETS, NetSpec, PlainSpec, ResidualSpec, summarize
from archs.receptive import Axis, Field, receptive_fields


def stage_fields(name, size=None):
    return [(s.name, s.size[0], s.jump[0], s.start[0]) for s in receptive_fields(PRESETS[name], size).stages]


def test_one_axis_arithmetic():
    # 3x3/2 pad 1, then 3x3/1 pad 1, from single pixels
    a = Axis(1, 1, 0).through(3, 2, 1)
    assert (a.size, a.jump, a.start) == (3, 2, 0)
    b = a.through(3, 1, 1)
    assert (b.size, b.jump, b.start) == (7, 2, 0)
    # a 2x2/2 average pool without padding moves the first window's centre by half a jump
    c = b.through(2, 2, 0)
    assert (c.size, c.jump, c.start) == (9, 4, 1)
    # dilation 2 makes a 3x3 kernel span 5 units
    assert Axis(1, 1, 0).through(3, 1, 2, dilation=2).size == 5
    # union of two windows centred differently: [-1, 1] and [2, 6] -> [-1, 6]
    u = Axis.union([Axis(3, 1, 0), Axis(5, 2, 4)])
    assert (u.size, u.jump, u.start) == (8, 2, 2.5)
    # a global pool over 4 units 8 pixels apart, each seeing 11 pixels: [-5, 29]
    g = Axis(11, 8, 0).over(4)
    assert (g.size, g.low, g.high) == (35, -5, 29)
    assert Field.pixel().through(7, 2, 3).size == (7, 7)


def test_resnet18_by_hand():
    """7x7/2 conv: r 7, j 2. 3x3/2 max-pool (pad 1): r 7 + 2*2 = 11, j 4. Every 3x3 conv then adds 2j: stage 1
    (four convs at j 4) 11 + 32 = 43; each later stage's first conv strides, so stage k adds 2j + 6(2j) with
    j the new jump: stage 2 43 + 16 + 40 = 99 (j 8), stage 3 99 + 32 + 80 = 211 (j 16), stage 4 211 + 64 + 160
    = 435 (j 32). The classifier sees the union over the 7x7 map: [-217, 6*32 + 217] = 627 pixels."""
    assert stage_fields("resnet18") == [("stem", 11, 4, 0), ("stage1", 43, 4, 0), ("stage2", 99, 8, 0),
                                        ("stage3", 211, 16, 0), ("stage4", 435, 32, 0), ("head", 627, 224, 96)]
    rf = receptive_fields(PRESETS["resnet18"])
    assert rf.get("stem.0.layer1.conv").size == (7, 7) and rf.get("stem.0.layer1.conv").jump == (2, 2)
    # inside stage 2's first block: the strided conv, the second conv, and the 1x1/2 projection shortcut
    assert rf.get("stage2.block1.branch.conv1").size == (51, 51)
    assert rf.get("stage2.block1.branch.conv2").size == (67, 67)
    assert rf.get("stage2.block1.shortcut.conv").size == (43, 43)
    assert rf.get("stage2.block1").size == (67, 67) and rf.get("stage2.block1").output_size == (28, 28)
    assert rf.get("head").output_size == () and rf.covers_input(rf.get("stage4"))
    assert not rf.covers_input(rf.get("stage3"))


def test_cifar_resnet20_zero_pad_shortcut_subsamples():
    """3x3 stem: 3. Stage 1, six 3x3 convs at j 1: 15. Stage 2's shortcut takes every other pixel
    (x[:, :, ::2, ::2]): the same 15-pixel windows, 2 apart. Its first conv strides: 15 + 2 = 17, then
    five more at j 2: 37."""
    assert stage_fields("cifar-resnet20")[:4] == [("stem", 3, 1, 0), ("stage1", 15, 1, 0), ("stage2", 37, 2, 0),
                                                 ("stage3", 81, 4, 0)]
    shortcut = receptive_fields(PRESETS["cifar-resnet20"]).get("stage2.block1.shortcut")
    assert (shortcut.type, shortcut.size, shortcut.jump) == ("ZeroPadShortcut", (15, 15), (2, 2))


def test_googlenet_by_hand():
    """torchvision's GoogLeNet. Stem: 7x7/2 pad 3 -> 7 (j 2); 3x3/2 max-pool, no padding -> 11 (j 4, centre
    moves (3-1)/2 * 2 = 2); 1x1; 3x3 -> 19; 3x3/2 pool -> 27 (j 8, centre 2 + 4 = 6). An Inception module's
    widest branch is a 3x3 conv (torchvision's "5x5" is 3x3; the pool branch's 3x3 pool too): +2j each.
    3a 43, 3b 59, pool -> 75 (j 16, centre 14); 4a-4e +32 each -> 235; 2x2/2 pool -> 251 (j 32, centre 22);
    5a 315, 5b 379."""
    assert stage_fields("googlenet")[:10] == [
        ("stem", 27, 8, 6), ("stage1", 43, 8, 6), ("stage2", 75, 16, 14), ("stage3", 107, 16, 14),
        ("stage4", 139, 16, 14), ("stage5", 171, 16, 14), ("stage6", 203, 16, 14), ("stage7", 251, 32, 22),
        ("stage8", 315, 32, 22), ("stage9", 379, 32, 22)]
    rf = receptive_fields(PRESETS["googlenet"])
    module = "stage1.module1.branches"
    assert [rf.get(f"{module}.{b}").size[0] for b in ("b1x1", "b3x3", "b5x5", "pool")] == [27, 43, 43, 43]
    assert rf.get(module).size == (43, 43)           # the branches together, as concatenated


def test_d2l_googlenet_has_a_real_5x5_branch():
    """d2l.ai's GoogLeNet: pools pad 1 (centres stay at 0) and the 5x5 branch is 5x5, +4j: 3a 27 + 32 = 59;
    3b +32 = 91; pool +16 = 107; 4a-4e +64 each = 427; pool +32 = 459; 5a, 5b +128 each = 715."""
    fields = stage_fields("d2l-googlenet")
    assert [f[1] for f in fields[:10]] == [27, 59, 107, 171, 235, 299, 363, 459, 587, 715]
    assert all(f[3] == 0 for f in fields[:10])


def test_seed002_inception_by_hand():
    """MNIST, 28x28. 5x5 conv, no padding: 5, centre 2; 2x2/2 pool: 6 (j 2, centre 2.5). Inception: the 5x5
    branch and the double 3x3 both add 4j = 8: 14. 5x5 conv: 14 + 8 = 22 (centre 2.5 + 2*2 = 6.5); pool: 24
    (j 4, centre 7.5). Inception: 24 + 16 = 40. The flatten head sees the 4x4 map: [7.5 - 19.5, 7.5 + 12 +
    19.5] = [-12, 39], 52 pixels, more than the 28-pixel image."""
    assert stage_fields("seed002-inception") == [("stem", 6, 2, 2.5), ("stage1", 14, 2, 2.5), ("stage2", 24, 4, 7.5),
                                                 ("stage3", 40, 4, 7.5), ("head", 52, 16, 13.5)]


def test_dense_net_by_hand():
    """d2l.ai's DenseNet: stem 11 (j 4). A dense layer's output is its input concatenated with a 3x3 conv of
    it, so four layers add 4 * 2j = 32: 43. The transition's 1x1 conv changes nothing; its 2x2/2 average pool
    adds j and moves the centre by j/2: 47 (j 8, centre 2). Stage 2: +64 -> 111, pool -> 119 (j 16, centre
    6). Stage 3: +128 -> 247, pool -> 263 (j 32, centre 14). Stage 4 has no transition: +256 -> 519."""
    assert stage_fields("d2l-densenet")[:5] == [("stem", 11, 4, 0), ("stage1", 47, 8, 2), ("stage2", 119, 16, 6),
                                               ("stage3", 263, 32, 14), ("stage4", 519, 32, 14)]
    rf = receptive_fields(PRESETS["d2l-densenet"])
    assert [rf.get(f"stage1.layer{i}").size[0] for i in (1, 2, 3, 4)] == [19, 27, 35, 43]
    # DenseNet-121, stage 1: six layers, each a 1x1 bottleneck then a 3x3: 11 + 6 * 8 = 59, pool -> 63
    assert stage_fields("densenet121")[1] == ("stage1", 63, 8, 2)


def test_fields_do_not_depend_on_input_size_until_the_head():
    at224, at64 = stage_fields("resnet18"), stage_fields("resnet18", 64)
    assert at224[:-1] == at64[:-1]
    assert at64[-1] == ("head", 435 + 32, 64, 16)          # a 2x2 map: [-217, 32 + 217]
    wide = receptive_fields(PRESETS["resnet18"], (224, 160)).get("head")
    assert wide.size == (627, 563) and wide.jump == (224, 160)


@pytest.mark.parametrize("name", list(PRESETS))
def test_every_module_of_every_preset_has_a_field_named_as_in_the_summary(name):
    rf = receptive_fields(PRESETS[name])
    assert [r.name for r in rf.layers] == [r.name for r in summarize(PRESETS[name]).rows]
    assert all(r.size[0] >= 1 and r.jump[0] >= 1 for r in rf.layers)
    assert rf.stages[-1].name == "head" and rf.to_dict()["stages"][0]["name"] == rf.stages[0].name


def test_cached_and_checked_like_the_plan():
    spec = PRESETS["cifar-resnet20"]
    assert receptive_fields(spec) is receptive_fields(spec)
    tiny = NetSpec(in_channels=1, input_size=8, stem=(PlainSpec(channels=4, kernel_size=11, padding=0),))
    with pytest.raises(ValueError, match="smaller than a 11x11 window"):
        receptive_fields(tiny)
    plain = NetSpec(in_channels=1, input_size=16, stages=(ResidualSpec(blocks=1, channels=4, stride=2),))
    # an empty stem sees one pixel; one block at stride 2: 1 + 2 + 2*2 = 7; the head over 8x8: [-3, 7*2 + 3]
    assert [s.size[0] for s in receptive_fields(plain).stages] == [1, 7, 21]
