"""Wide ResNets (wrn16_4, wrn16_8, wrn28_10, wrn40_4) and MobileNetV2: parameter counts against
the papers and a layer-by-layer formula, strides and output shapes, where the residual is added
(by behaviour: with the branch zeroed a block must return exactly its shortcut), initialization,
train/eval, whole-network float64 gradchecks, forward equality with a torch model of the same
architecture built here (skipped without torch), and a training step on every device."""
import math

import numpy as np
import pytest

import minidl
import minidl.functional as F
import minidl.nn as nn
import nets
from nets.mobilenet import CIFAR_SETTINGS, IMAGENET_SETTINGS
from tests.test_nets_gradcheck import gradcheck_network

WRN = {"wrn16_4": (16, 4), "wrn16_8": (16, 8), "wrn28_10": (28, 10), "wrn40_4": (40, 4)}
# Sandler et al. 2018, Table 2: (t, c, n, s) per bottleneck stage, written out independently
PAPER_TABLE = [(1, 16, 1, 1), (6, 24, 2, 2), (6, 32, 3, 2), (6, 64, 4, 2), (6, 96, 3, 1),
               (6, 160, 3, 2), (6, 320, 1, 1)]
TINY_WRN = dict(depth=10, widen_factor=2, width=2)
TINY_MBV2 = dict(width_mult=0.125, round_nearest=1, settings=[[1, 16, 1, 1], [6, 24, 2, 2],
                                                               [6, 32, 2, 1]])


def wrn_count(depth, k, num_classes=10, width=16, in_channels=3):
    """WRN-d-k parameters layer by layer: 3x3 convs (no bias), BN (2 per channel), a 1x1 conv
    where the width changes, final BN, Linear."""
    total, c_in = 9 * in_channels * width, width
    for g in range(3):
        c = width * k * 2 ** g
        for _ in range((depth - 4) // 6):
            total += 2 * c_in + 9 * c_in * c + 2 * c + 9 * c * c + (c_in * c if c_in != c else 0)
            c_in = c
    return total + 2 * c_in + c_in * num_classes + num_classes


def mobilenetv2_count(table, num_classes, in_channels=3):
    """MobileNetV2 (width 1) parameters: stem conv-BN, per block the 1x1 expansion (absent for
    t = 1), 3x3 depthwise and 1x1 projection, each with BN; 1x1 conv-BN to 1280; Linear."""
    total, c_in = 9 * in_channels * 32 + 2 * 32, 32
    for t, c, n, _ in table:
        for _ in range(n):
            h = c_in * t
            total += (c_in * h + 2 * h if t != 1 else 0) + 9 * h + 2 * h + h * c + 2 * c
            c_in = c
    return total + c_in * 1280 + 2 * 1280 + 1280 * num_classes + num_classes


def blocks(model):
    return [b for name, stage in model.features.named_children() if name.startswith("stage")
            for b in stage]


# ---------------------------------------------------------------------------------------------
# parameter counts and shapes

@pytest.mark.parametrize("name, millions", [
    ("wrn16_4", 2.7), ("wrn16_8", 11.0), ("wrn28_10", 36.5), ("wrn40_4", 8.9)])
def test_wrn_parameter_counts_match_the_paper_and_the_formula(name, millions):
    # to 0.1M: Zagoruyko & Komodakis 2016, Table 4 (WRN-40-4 8.9M, WRN-16-8 11.0M, WRN-28-10
    # 36.5M); WRN-16-4's 2.7M is the layer-by-layer count of wrn_count
    n = nets.get_model(name).num_parameters()
    assert n == wrn_count(*WRN[name])
    assert round(n / 1e6, 1) == millions


def test_mobilenetv2_parameter_counts():
    assert nets.get_model("mobilenetv2").num_parameters() == mobilenetv2_count(
        PAPER_TABLE, 10) == 2_236_682
    # the paper's ImageNet model: 3,504,872 is torchvision's count of the same network (the
    # paper lists 3.4M)
    big = nets.get_model("mobilenetv2", num_classes=1000, stem="imagenet")
    assert big.num_parameters() == mobilenetv2_count(PAPER_TABLE, 1000) == 3_504_872


def test_mobilenetv2_tables_and_width_multiplier():
    assert [tuple(r) for r in IMAGENET_SETTINGS] == PAPER_TABLE
    changed = [i for i, (a, b) in enumerate(zip(CIFAR_SETTINGS, PAPER_TABLE)) if a != b]
    assert changed == [1] and CIFAR_SETTINGS[1] == (6, 24, 2, 1)
    for mult, stem, outs, last in ((0.5, 16, [8, 16, 16, 32, 48, 80, 160], 1280),
                                   (1.4, 48, [24, 32, 48, 88, 136, 224, 448], 1792)):
        model = nets.get_model("mobilenetv2", width_mult=mult)
        stages = [s for n, s in model.features.named_children() if n.startswith("stage")]
        assert model.features.stem.conv.weight.shape[0] == stem
        assert [s[-1].project.conv.weight.shape[0] for s in stages] == outs
        assert model.features.head.conv.weight.shape[0] == last == model.classifier.fc.in_features


@pytest.mark.parametrize("name", ["wrn16_4", "mobilenetv2"])
def test_full_size_output_shape(name):
    with minidl.no_grad():
        assert nets.get_model(name)(minidl.randn(2, 3, 32, 32)).shape == (2, 10)


@pytest.mark.parametrize("name, options, size, shape", [
    ("wrn16_4", dict(widen_factor=2, width=4), 32, (2, 32, 8, 8)),
    ("mobilenetv2", dict(width_mult=0.25), 32, (2, 1280, 4, 4)),       # CIFAR strides: 32 -> 4
    ("mobilenetv2", dict(width_mult=0.25, stem="imagenet"), 64, (2, 1280, 2, 2)),    # H/32
])
def test_feature_map_sizes(name, options, size, shape):
    model = nets.get_model(name, **options)
    with minidl.no_grad():
        assert model.features(minidl.randn(2, 3, size, size)).shape == shape


@pytest.mark.parametrize("stem, stem_stride, table", [("cifar", 1, CIFAR_SETTINGS),
                                                       ("imagenet", 2, PAPER_TABLE)])
def test_mobilenetv2_strides_follow_the_table(stem, stem_stride, table):
    model = nets.get_model("mobilenetv2", width_mult=0.25, stem=stem)
    assert model.features.stem.conv.stride == (stem_stride, stem_stride)
    expected = [s if j == 0 else 1 for _, _, n, s in table for j in range(n)]
    assert [b.depthwise.conv.stride[0] for b in blocks(model)] == expected


@pytest.mark.parametrize("name, options", [
    ("wrn16_4", dict(depth=15)), ("wrn16_4", dict(widen_factor=0)),
    ("wrn28_10", dict(drop_rate=1.0)), ("mobilenetv2", dict(width_mult=0)),
    ("mobilenetv2", dict(stem="tiny")), ("mobilenetv2", dict(settings=[[6, 24, 2]])),
    ("mobilenetv2", dict(settings=[])), ("mobilenetv2", dict(round_nearest=0)),
])
def test_bad_options_are_value_errors(name, options):
    with pytest.raises(ValueError, match=r"'\w+'"):
        nets.get_model(name, **options)


# ---------------------------------------------------------------------------------------------
# blocks: where the residual is added, depthwise convs, linear bottlenecks

def in_channels(block):
    if hasattr(block, "conv1"):                                        # WideBasicBlock
        return block.conv1.weight.shape[1]
    first = block.depthwise if isinstance(block.expand, nn.Identity) else block.expand
    return first.conv.weight.shape[1] * first.conv.groups


def zero_branch_output(model, name, block):
    """Zero the last layer of a block's branch, so that the block returns its shortcut only."""
    with minidl.no_grad():
        if name.startswith("wrn"):
            block.conv2.weight.data[...] = 0
        else:
            block.project.bn.weight.data[...] = 0
            block.project.bn.bias.data[...] = 0


@pytest.mark.parametrize("name, options, expected", [
    # identity shortcut except where the width changes (each group's first block; k = 1 keeps
    # group 1's width)
    ("wrn16_4", dict(width=2), ["conv", "id"] * 3),
    ("wrn16_4", dict(widen_factor=1, width=2), ["id", "id", "conv", "id", "conv", "id"]),
    # MobileNetV2 adds the input when stride 1 and in == out: 10 of 17 blocks of Table 2
    ("mobilenetv2", dict(width_mult=0.5, round_nearest=1),
     ["no", "no", "id", "no", "id", "id", "no", "id", "id", "id", "no", "id", "id", "no", "id",
      "id", "no"]),
])
def test_the_residual_is_added_exactly_where_the_paper_says(name, options, expected):
    model = nets.get_model(name, **options).double()
    kinds = []
    for block in blocks(model):
        x = minidl.randn(4, in_channels(block), 8, 8, dtype=np.float64)
        with minidl.no_grad():
            y_full = block(x).numpy()
            zero_branch_output(model, name, block)
            y = block(x).numpy()
        if y.shape == x.shape and np.array_equal(y, x.numpy()):
            kinds.append("id")
            assert not np.allclose(y_full, y)          # the branch does add something
        elif not y.any():
            kinds.append("no")
        else:                                           # a projection of relu(bn(x))
            a = F.relu(F.batch_norm(x, None, None, training=True))
            stride = block.conv1.stride
            np.testing.assert_allclose(y, F.conv2d(a, block.shortcut.weight, stride=stride)
                                       .numpy(), rtol=1e-12, atol=1e-12)
            kinds.append("conv")
    assert kinds == expected


def test_inverted_residual_layers():
    model = nets.get_model("mobilenetv2", width_mult=0.5)
    for block, (t, c_out) in zip(blocks(model), [(t, c) for t, c, n, _ in CIFAR_SETTINGS
                                                 for _ in range(n)]):
        dw = block.depthwise.conv
        assert dw.groups == dw.weight.shape[0] and dw.weight.shape[1:] == (1, 3, 3)
        if t == 1:
            assert isinstance(block.expand, nn.Identity)
        else:
            expand = block.expand.conv.weight.shape
            assert expand[0] == t * expand[1] == dw.weight.shape[0] and expand[2:] == (1, 1)
    # the projection is linear: no ReLU after it, so a block's output has negative values;
    # the other convs are followed by ReLU6
    block = blocks(model)[0]
    with minidl.no_grad():
        assert (block(minidl.randn(2, 16, 6, 6)).numpy() < 0).any()
        model.eval()                          # BN with the initial statistics: ~identity
        for layer, c in ((block.depthwise, 16), (model.features.head, 160)):
            y = layer(100.0 * minidl.randn(2, c, 4, 4)).numpy()
            assert y.min() == 0.0 and y.max() == 6.0


def test_wrn_dropout_sits_between_the_two_convs():
    block = nets.get_model("wrn16_4", width=1, drop_rate=0.5).features.stage2[1]
    x = minidl.randn(2, 8, 6, 6)
    with minidl.no_grad():
        minidl.manual_seed(5)
        y = block(x).numpy()
        minidl.manual_seed(5)
        h = F.dropout(block.act2(block.conv1(block.preact(x))), 0.5, training=True)
        np.testing.assert_allclose(y, (x + block.conv2(h)).numpy(), rtol=1e-5, atol=1e-6)


def test_initialization_follows_the_reference_code():
    wrn = nets.get_model("wrn40_4")
    conv = wrn.features.stage3[1].conv1.weight.numpy()                 # (256, 256, 3, 3)
    assert abs(conv.std() / math.sqrt(2.0 / (256 * 9)) - 1) < 0.02
    mb = nets.get_model("mobilenetv2")
    dw = mb.features.stage6[1].depthwise.conv.weight.numpy()           # (960, 1, 3, 3)
    assert abs(dw.std() / math.sqrt(2.0 / (960 * 9)) - 1) < 0.05      # fan_out as torchvision
    assert abs(mb.classifier.fc.weight.numpy().std() / 0.01 - 1) < 0.05
    for model in (wrn, mb):
        assert (model.classifier.fc.bias.numpy() == 0).all()
        for m in model.modules():
            if isinstance(m, nn.BatchNorm2d):
                assert (m.weight.numpy() == 1).all() and (m.bias.numpy() == 0).all()


# ---------------------------------------------------------------------------------------------
# train / eval

@pytest.mark.parametrize("name, options", [("wrn16_4", TINY_WRN), ("mobilenetv2", TINY_MBV2)])
def test_train_and_eval_differ_only_where_bn_and_dropout_say(name, options):
    minidl.manual_seed(0)
    plain = nets.get_model(name, num_classes=4, **dict(options, drop_rate=0.0))
    dropped = nets.get_model(name, num_classes=4, **dict(options, drop_rate=0.5))
    x = minidl.randn(4, 3, 8, 8)
    with minidl.no_grad():
        y = plain(x).numpy()
        np.testing.assert_array_equal(plain(x).numpy(), y)        # no dropout: deterministic
        assert not np.allclose(plain(x[:2]).numpy(), y[:2], atol=1e-4)     # batch statistics
        dropped.load_state_dict(plain.state_dict())
        t1, t2 = dropped(x).numpy(), dropped(x).numpy()
        assert not np.allclose(t1, t2)                              # dropout draws masks
        dropped.load_state_dict(plain.state_dict())     # (its BN statistics saw the masks)
        plain.eval()
        dropped.eval()
        e = plain(x).numpy()
        np.testing.assert_array_equal(dropped(x).numpy(), e)       # eval: dropout is identity
        np.testing.assert_allclose(plain(x[:2]).numpy(), e[:2], rtol=1e-5, atol=1e-6)


# ---------------------------------------------------------------------------------------------
# whole-network gradchecks (float64, training mode, batch 2, input and every parameter)

@pytest.mark.parametrize("name, options, size, full", [
    # full Jacobian: ~350 parameters, identity and 1x1 shortcuts, both strides
    ("wrn16_4", dict(depth=10, widen_factor=1, width=1, in_channels=1), 6, True),
    # every block of Table 2 with the paper's strides, dropout active
    ("mobilenetv2", dict(width_mult=0.125, round_nearest=1, stem="imagenet"), 32, False),
])
def test_whole_network_gradcheck(name, options, size, full):
    model = nets.get_model(name, num_classes=3, **options)
    assert gradcheck_network(model, minidl.randn(2, model.in_channels, size, size), full)


# ---------------------------------------------------------------------------------------------
# the same architecture in torch, weights copied: same outputs

def torch_wrn(torch, depth, k, num_classes=10):
    tnn = torch.nn

    class Block(tnn.Module):
        def __init__(self, c_in, c_out, stride):
            super().__init__()
            self.bn1, self.conv1 = tnn.BatchNorm2d(c_in), tnn.Conv2d(c_in, c_out, 3, stride, 1,
                                                                     bias=False)
            self.bn2, self.conv2 = tnn.BatchNorm2d(c_out), tnn.Conv2d(c_out, c_out, 3, 1, 1,
                                                                      bias=False)
            self.proj = tnn.Conv2d(c_in, c_out, 1, stride, bias=False) if c_in != c_out else None

        def forward(self, x):
            a = torch.relu(self.bn1(x))
            y = self.conv2(torch.relu(self.bn2(self.conv1(a))))
            return y + (x if self.proj is None else self.proj(a))

    layers, c_in = [tnn.Conv2d(3, 16, 3, 1, 1, bias=False)], 16
    for g, stride in enumerate((1, 2, 2)):
        for j in range((depth - 4) // 6):
            layers.append(Block(c_in, 16 * k * 2 ** g, stride if j == 0 else 1))
            c_in = 16 * k * 2 ** g
    return tnn.Sequential(*layers, tnn.BatchNorm2d(c_in), tnn.ReLU(), tnn.AdaptiveAvgPool2d(1),
                          tnn.Flatten(), tnn.Linear(c_in, num_classes))


def torch_mobilenetv2(torch, stem_stride, table, num_classes=10):
    tnn = torch.nn

    def cbr(c_in, c_out, k=1, stride=1, groups=1, act=True):
        layers = [tnn.Conv2d(c_in, c_out, k, stride, k // 2, groups=groups, bias=False),
                  tnn.BatchNorm2d(c_out)]
        return layers + [tnn.ReLU6()] if act else layers

    class Block(tnn.Module):
        def __init__(self, c_in, c_out, stride, t):
            super().__init__()
            h = c_in * t
            self.body = tnn.Sequential(*(cbr(c_in, h) if t != 1 else []),
                                       *cbr(h, h, 3, stride, h), *cbr(h, c_out, act=False))
            self.add = stride == 1 and c_in == c_out

        def forward(self, x):
            return x + self.body(x) if self.add else self.body(x)

    layers, c_in = cbr(3, 32, 3, stem_stride), 32
    for t, c, n, s in table:
        for j in range(n):
            layers.append(Block(c_in, c, s if j == 0 else 1, t))
            c_in = c
    return tnn.Sequential(*layers, *cbr(c_in, 1280), tnn.AdaptiveAvgPool2d(1), tnn.Flatten(),
                          tnn.Dropout(0.2), tnn.Linear(1280, num_classes))


def copy_into_torch(torch, ours, theirs):
    """Randomize our BN affine parameters and running statistics, then copy every tensor in
    order into the torch model (shapes must agree one to one)."""
    rng = np.random.default_rng(0)
    for m in ours.modules():
        if isinstance(m, nn.BatchNorm2d):
            for t, lo, hi in ((m.weight, 0.5, 1.5), (m.bias, -0.2, 0.2),
                              (m.running_mean, -0.2, 0.2), (m.running_var, 0.5, 1.5)):
                t.data[...] = rng.uniform(lo, hi, t.shape)
    src = [v for k, v in ours.state_dict().items() if not k.endswith("num_batches_tracked")]
    dst = [v for k, v in theirs.state_dict().items() if not k.endswith("num_batches_tracked")]
    assert [tuple(v.shape) for v in src] == [tuple(v.shape) for v in dst]
    with torch.no_grad():
        for v, tv in zip(src, dst):
            tv.copy_(torch.from_numpy(v.numpy()))


@pytest.mark.parametrize("name, options", [
    ("wrn16_4", {}), ("wrn16_8", dict(depth=10, drop_rate=0.3)),
    ("mobilenetv2", {}), ("mobilenetv2", dict(stem="imagenet")),
])
def test_forward_matches_the_same_architecture_in_torch(name, options):
    torch = pytest.importorskip("torch")
    ours = nets.get_model(name, **options).double()
    if name.startswith("wrn"):
        theirs = torch_wrn(torch, options.get("depth", WRN[name][0]), WRN[name][1])
    else:
        imagenet = options.get("stem") == "imagenet"
        theirs = torch_mobilenetv2(torch, 2 if imagenet else 1,
                                   PAPER_TABLE if imagenet else CIFAR_SETTINGS)
    theirs = theirs.double()
    copy_into_torch(torch, ours, theirs)
    x = np.random.default_rng(1).standard_normal((2, 3, 32, 32))
    ours.eval()
    theirs.eval()
    with minidl.no_grad(), torch.no_grad():
        y = ours(minidl.tensor(x)).numpy()
        np.testing.assert_allclose(y, theirs(torch.from_numpy(x)).numpy(), rtol=1e-9,
                                   atol=1e-9 * np.abs(y).max())
        if "drop_rate" not in options and name.startswith("wrn"):      # batch statistics
            ours.train()
            theirs.train()
            y = ours(minidl.tensor(x)).numpy()
            np.testing.assert_allclose(y, theirs(torch.from_numpy(x)).numpy(), rtol=1e-9,
                                       atol=1e-9 * np.abs(y).max())


# ---------------------------------------------------------------------------------------------
# devices

@pytest.mark.parametrize("name, options", [("wrn16_4", TINY_WRN), ("mobilenetv2", TINY_MBV2)])
def test_training_steps_on_device(device, name, options):
    """float64: one SGD step on ``device`` matches the CPU step; a few more lower the loss."""
    minidl.manual_seed(0)
    ref = nets.get_model(name, num_classes=4, **dict(options, drop_rate=0.0)).double()
    model = nets.get_model(name, num_classes=4, **dict(options, drop_rate=0.0)).double()
    model.load_state_dict(ref.state_dict())
    rng = np.random.default_rng(0)
    x = minidl.tensor(rng.standard_normal((8, 3, 8, 8)))
    t = minidl.tensor(rng.integers(0, 4, 8))
    losses = []
    for m, dev in ((ref, "cpu"), (model, device)):
        m.to(dev)
        opt = minidl.optim.SGD(m.parameters(), lr=0.05, momentum=0.9)
        for _ in range(4 if m is model else 1):
            loss = F.cross_entropy(m(x.to(dev)), t.to(dev))
            opt.zero_grad()
            loss.backward()
            opt.step()
            losses.append(loss.item())
    assert abs(losses[1] - losses[0]) <= 1e-12 * max(1.0, abs(losses[0]))
    assert losses[-1] < losses[1]
    assert all(p.grad is not None and np.abs(p.grad.numpy()).sum() > 0
               for p in model.parameters())
