"""The model zoo: registry, parameter counts against the papers, output shapes of every model
at full size, building blocks, initialization, train/eval behaviour. The whole-network
gradchecks are in test_nets_gradcheck.py."""
import math

import numpy as np
import pytest

import minidl
import minidl.nn as nn
import nets
from nets.common import ShortcutA
from nets.densenet import DenseBlock

REQUIRED = ["resnet20", "resnet32", "resnet44", "resnet56", "resnet110", "resnet1202",
            "plain20", "plain32", "plain44", "plain56", "plain110", "preact_resnet110",
            "preact_resnet164", "resnet18", "resnet34", "resnet50", "densenet40",
            "densenet_bc_100", "densenet121", "vgg11_bn", "vgg16_bn", "alexnet", "googlenet",
            "resnext29", "se_resnet20", "wrn16_4", "wrn16_8", "wrn28_10", "wrn40_4",
            "mobilenetv2", "vit", "vit_tiny"]


def count(name, **options):
    return nets.get_model(name, **options).num_parameters()


# ---------------------------------------------------------------------------------------------
# registry

def test_list_models_has_every_required_name():
    assert nets.list_models() == sorted(REQUIRED)


def test_unknown_name_lists_the_known_names():
    with pytest.raises(ValueError) as err:
        nets.get_model("resnet21")
    assert "resnet21" in str(err.value)
    assert all(name in str(err.value) for name in REQUIRED)


def test_unknown_option_is_a_type_error_naming_the_valid_ones():
    with pytest.raises(TypeError) as err:
        nets.get_model("densenet40", growth=12)
    msg = str(err.value)
    assert "growth" in msg and "growth_rate" in msg and "drop_rate" in msg


@pytest.mark.parametrize("name, options", [
    ("resnet20", dict(depth=21)),
    ("resnet20", dict(shortcut="C")),
    ("resnet20", dict(width=0)),
    ("preact_resnet164", dict(depth=170)),            # 6n+2, but bottlenecks need 9n+2
    ("resnet18", dict(stem="tiny")),
    ("resnet18", dict(layers=())),
    ("densenet40", dict(depth=41)),
    ("densenet_bc_100", dict(compression=1.5)),
    ("densenet121", dict(drop_rate=1.0)),
    ("vgg16_bn", dict(depth=17)),
    ("resnext29", dict(cardinality=0)),
    ("se_resnet20", dict(shortcut="none")),
    ("alexnet", dict(num_classes=0)),
])
def test_bad_option_values_are_value_errors(name, options):
    with pytest.raises(ValueError, match=r"'\w+'"):
        nets.get_model(name, **options)


def test_options_override_the_defaults_of_a_name():
    assert nets.model_options("resnet56")["depth"] == 56
    assert nets.model_options("resnet56")["shortcut"] == "A"
    assert count("resnet56", depth=20) == count("resnet20")


def test_wrong_input_channels_raise_a_clear_error():
    model = nets.get_model("resnet20", in_channels=1)
    with pytest.raises(ValueError, match=r"\(N, 1, H, W\)"):
        model(minidl.randn(2, 3, 8, 8))
    with pytest.raises(ValueError, match="image_size"):
        nets.get_model("alexnet")(minidl.randn(2, 3, 16, 16))


# ---------------------------------------------------------------------------------------------
# parameter counts

@pytest.mark.parametrize("name, options, millions, digits", [
    ("resnet20", {}, 0.27, 2),            # He et al. 2016, Table 6 (option A)
    ("resnet32", {}, 0.46, 2),
    ("resnet44", {}, 0.66, 2),
    ("resnet56", {}, 0.85, 2),
    ("resnet110", {}, 1.7, 1),
    ("resnet1202", {}, 19.4, 1),
    ("preact_resnet110", {}, 1.7, 1),     # He et al., Identity Mappings, Table 3
    ("preact_resnet164", {}, 1.7, 1),
    ("densenet40", {}, 1.0, 1),           # Huang et al. 2017, Table 2
    ("densenet_bc_100", {}, 0.8, 1),
    ("resnet18", {}, 11.2, 1),            # the usual CIFAR ResNet-18
    ("resnext29", dict(bottleneck_width=64), 34.4, 1),   # Xie et al. 2017, Table 7 (8x64d)
])
def test_parameter_counts_match_the_papers(name, options, millions, digits):
    assert round(count(name, **options) / 1e6, digits) == millions


@pytest.mark.parametrize("name, options, expected", [
    # option A: 3x3 convs, BN (2 per channel) and the Linear layer only (checked by hand)
    ("resnet20", {}, 269_722),
    # option B adds two 1x1 projections with BN: (16*32 + 64) + (32*64 + 128)
    ("resnet20", dict(shortcut="B"), 272_474),
    ("plain20", {}, 269_722),                                  # same layers, no shortcuts
    ("resnet18", {}, 11_173_962),
    ("densenet_bc_100", {}, 769_162),
    # torchvision's ImageNet models (1000 classes, 7x7 stem)
    ("resnet18", dict(stem="imagenet", num_classes=1000), 11_689_512),
    ("resnet50", dict(stem="imagenet", num_classes=1000), 25_557_032),
    ("densenet121", dict(stem="imagenet", num_classes=1000), 7_978_856),
])
def test_exact_parameter_counts(name, options, expected):
    assert count(name, **options) == expected


def test_se_resnet20_adds_only_the_se_units():
    # per block of width C with reduction 4: (C*C/4 + C/4) + (C/4*C + C), 3 blocks per width
    se = sum(3 * (2 * c * (c // 4) + c // 4 + c) for c in (16, 32, 64))
    assert count("se_resnet20") == count("resnet20") + se


# ---------------------------------------------------------------------------------------------
# every model at full size

@pytest.mark.parametrize("name", REQUIRED)
def test_full_size_output_shape_on_32x32(name):
    model = nets.get_model(name, num_classes=7)
    with minidl.no_grad():       # training mode: BN normalizes with batch statistics
        y = model(minidl.randn(2, 3, 32, 32))
    assert y.shape == (2, 7)
    assert y.dtype == np.float32
    assert np.isfinite(y.numpy()).all()


@pytest.mark.parametrize("name, options", [
    ("resnet18", dict(stem="imagenet", width=8)),
    ("densenet121", dict(stem="imagenet", growth_rate=4)),
])
def test_imagenet_stem(name, options):
    model = nets.get_model(name, num_classes=5, **options)
    with minidl.no_grad():
        assert model(minidl.randn(2, 3, 32, 32)).shape == (2, 5)
        assert model.features.stem(minidl.randn(2, 3, 32, 32)).shape[2:] == (8, 8)


def test_backward_reaches_every_parameter():
    model = nets.get_model("densenet_bc_100", depth=16, growth_rate=4, drop_rate=0.2)
    x = minidl.randn(2, 3, 8, 8, requires_grad=True)
    minidl.functional.cross_entropy(model(x), minidl.tensor([1, 2])).backward()
    assert x.grad is not None
    for name, p in model.named_parameters():
        assert p.grad is not None and p.grad.shape == p.shape, name


# ---------------------------------------------------------------------------------------------
# building blocks

def test_option_a_shortcut_subsamples_and_zero_pads_channels():
    x = minidl.randn(2, 4, 6, 6)
    y = ShortcutA(4, 8, stride=2)(x).numpy()
    assert y.shape == (2, 8, 3, 3)
    np.testing.assert_array_equal(y[:, :4], x.numpy()[:, :, ::2, ::2])
    assert not y[:, 4:].any()
    assert ShortcutA(4, 8, stride=2).num_parameters() == 0


def test_plain_blocks_have_no_shortcut_and_option_b_projects_only_on_shape_change():
    plain = nets.get_model("plain20")
    assert all(b.shortcut is None for s in ("stage1", "stage2", "stage3")
               for b in getattr(plain.features, s))
    model_b = nets.get_model("resnet20", shortcut="B")
    shortcuts = [type(b.shortcut).__name__ for s in ("stage1", "stage2", "stage3")
                 for b in getattr(model_b.features, s)]
    assert shortcuts == ["Identity"] * 3 + ["Sequential", "Identity", "Identity"] * 2


def test_dense_block_concatenates_its_input_and_every_layer():
    block = DenseBlock(3, in_channels=5, growth_rate=4, bottleneck=True)
    x = minidl.randn(2, 5, 6, 6)
    y = block(x)
    assert y.shape == (2, 5 + 3 * 4, 6, 6)
    np.testing.assert_array_equal(y.numpy()[:, :5], x.numpy())       # the input passes as is
    # layer i sees all earlier maps: its BN/1x1 conv take 5 + 4 i channels
    assert [layer.conv1.weight.shape[1] for layer in block.layers] == [5, 9, 13]
    assert [layer.conv1.weight.shape[0] for layer in block.layers] == [16, 16, 16]   # 4k


def test_densenet_compression_halves_channels_at_transitions():
    model = nets.get_model("densenet_bc_100")
    t1 = model.features.transition1.conv.weight.shape
    assert t1[:2] == ((24 + 16 * 12) // 2, 24 + 16 * 12)
    assert model.features.transition1.conv.weight.shape[2:] == (1, 1)
    assert nets.get_model("densenet40").features.transition1.conv.weight.shape[:2] == (160, 160)


def test_resnext_uses_grouped_convs():
    model = nets.get_model("resnext29")
    conv = model.features.stage1[0].conv2.conv
    assert conv.groups == 8 and conv.weight.shape == (128, 16, 3, 3)
    assert model.features.stage3[2].conv3.conv.weight.shape[0] == 1024


def test_initialization_follows_he_et_al():
    model = nets.get_model("resnet56")
    conv = model.features.stage3[1].conv1.conv.weight.numpy()          # (64, 64, 3, 3)
    std = math.sqrt(2.0 / (64 * 9))                                    # fan_out, relu gain
    assert abs(conv.std() / std - 1) < 0.05 and abs(conv.mean()) < 0.05 * std
    for m in model.modules():
        if isinstance(m, nn.BatchNorm2d):
            assert (m.weight.numpy() == 1).all() and (m.bias.numpy() == 0).all()
    assert (model.classifier.fc.bias.numpy() == 0).all()
    assert abs(nets.get_model("vgg11_bn").classifier[3].weight.numpy().std() - 0.01) < 0.001


def test_seeded_construction_is_reproducible():
    minidl.manual_seed(3)
    a = nets.get_model("se_resnet20").state_dict()
    minidl.manual_seed(3)
    b = nets.get_model("se_resnet20").state_dict()
    assert all(np.array_equal(a[k].numpy(), b[k].numpy()) for k in a)


# ---------------------------------------------------------------------------------------------
# train / eval

TINY = {"resnet20": dict(depth=8, width=4),
        "densenet_bc_100": dict(depth=16, growth_rate=4, drop_rate=0.3),
        "vgg11_bn": dict(width=2, drop_rate=0.3), "googlenet": dict(width=8, drop_rate=0.3),
        "alexnet": dict(width=4, image_size=16, drop_rate=0.3)}


@pytest.mark.parametrize("name", sorted(TINY))
def test_eval_is_deterministic_and_independent_of_the_batch(name):
    model = nets.get_model(name, num_classes=4, **TINY[name])
    size = 32 if name == "vgg11_bn" else 16
    x = minidl.randn(4, 3, size, size)
    with minidl.no_grad():
        for _ in range(2):
            model(x)                      # give BN running statistics something to hold
        model.eval()
        y1, y2 = model(x).numpy(), model(x).numpy()
        y_half = model(x[:2]).numpy()
    np.testing.assert_array_equal(y1, y2)
    np.testing.assert_allclose(y_half, y1[:2], rtol=1e-5, atol=1e-6)


def test_train_mode_uses_batch_statistics_and_updates_running_stats():
    model = nets.get_model("resnet20", num_classes=4, depth=8, width=4)
    x = minidl.randn(4, 3, 16, 16)
    bn = model.features.stem.bn
    before = bn.running_mean.numpy().copy()
    with minidl.no_grad():
        y_full = model(x).numpy()
        y_half = model(x[:2]).numpy()
    # in training mode a sample's output depends on the rest of its batch
    assert not np.allclose(y_half, y_full[:2], atol=1e-4)
    assert not np.array_equal(bn.running_mean.numpy(), before)
    model.eval()
    frozen = bn.running_mean.numpy().copy()
    with minidl.no_grad():
        model(x)
    np.testing.assert_array_equal(bn.running_mean.numpy(), frozen)


def test_dropout_acts_only_in_training_mode():
    model = nets.get_model("densenet_bc_100", num_classes=4, depth=16, growth_rate=4,
                           drop_rate=0.5)
    x = minidl.randn(2, 3, 8, 8)
    model.eval()
    with minidl.no_grad():
        e1, e2 = model(x).numpy(), model(x).numpy()
        model.train()
        t1, t2 = model(x).numpy(), model(x).numpy()
    np.testing.assert_array_equal(e1, e2)
    assert not np.allclose(t1, t2)


def test_without_dropout_train_mode_is_deterministic():
    model = nets.get_model("densenet40", num_classes=4, depth=10, growth_rate=4)
    x = minidl.randn(2, 3, 8, 8)
    with minidl.no_grad():
        np.testing.assert_array_equal(model(x).numpy(), model(x).numpy())


def test_nets_cli_help_and_bad_argument(capsys):
    from nets.__main__ import main
    for argv, code in ((["--help"], 0), (["x"], 2), (["0"], 2)):
        with pytest.raises(SystemExit) as exc:
            main(argv)
        assert exc.value.code == code
    assert "num_classes must be a positive integer" in capsys.readouterr().err


def test_nets_cli_counts_macs(capsys, monkeypatch):
    from nets.__main__ import main
    monkeypatch.setattr(nets, "list_models", lambda: ["resnet20", "resnet56"])
    main(["--macs"])
    lines = capsys.readouterr().out.splitlines()
    assert "MACs/image" in lines[0]
    assert lines[1].split()[:2] == ["resnet20", "269,722"] and "40,551,050" in lines[1]
    assert lines[2].split()[:2] == ["resnet56", "853,018"] and "125,485,706" in lines[2]
