"""MobileNetV2: a stem conv, a stack of inverted residual blocks, a 1x1 conv to 1280 channels,
global average pooling, dropout and a Linear layer.

An inverted residual block expands its input t times with a 1x1 conv, filters each channel
with a 3x3 depthwise conv (groups = channels), and projects back with a linear 1x1 conv (no
activation: the narrow output is the bottleneck). Every conv is followed by BatchNorm; ReLU6
follows the expansion and the depthwise conv. The block adds its input when stride is 1 and
the widths match.

CIFAR variant (``stem='cifar'``, the default): the paper's five halvings take 224x224 to 7x7;
on 32x32 images they would leave 1x1. Two are removed, as is common for CIFAR: the stem conv
has stride 1 (paper: 2) and the first block of the 24-channel stage has stride 1 (paper: 2), so
32x32 inputs reach 4x4 before pooling (the strides left are those of the 32-, 64- and
160-channel stages). ``stem='imagenet'`` keeps the paper's strides (H/32).

Initialization (torchvision's reference model; the paper states none): convs kaiming_normal_
fan_out, BN weight 1 bias 0, Linear N(0, 0.01^2) weight and bias 0.
"""
from __future__ import annotations

from collections import OrderedDict

import minidl.nn as nn

from .common import (STEMS, Classifier, ConvBNReLU, ConvNet, check_choice, check_int_list,
                     check_positive_int, check_rate, init_weights)

# (t, c, n, s): expansion, output channels, blocks, stride of the first block (paper, Table 2)
IMAGENET_SETTINGS = ((1, 16, 1, 1), (6, 24, 2, 2), (6, 32, 3, 2), (6, 64, 4, 2),
                     (6, 96, 3, 1), (6, 160, 3, 2), (6, 320, 1, 1))
# the same with the 24-channel stage at stride 1 (see the module docstring)
CIFAR_SETTINGS = ((1, 16, 1, 1), (6, 24, 2, 1), (6, 32, 3, 2), (6, 64, 4, 2),
                  (6, 96, 3, 1), (6, 160, 3, 2), (6, 320, 1, 1))


def make_divisible(value, divisor):
    """``value`` rounded to the nearest multiple of ``divisor`` (at least ``divisor``), one
    multiple higher if rounding lost more than 10% (the rule of the paper's reference code for
    width-multiplied channel counts)."""
    rounded = max(divisor, int(value + divisor / 2) // divisor * divisor)
    return rounded + divisor if rounded < 0.9 * value else rounded


class ConvBNReLU6(ConvBNReLU):
    """conv (no bias, 'same' padding) -> BatchNorm2d -> ReLU6: ``ConvBNReLU`` with ReLU6 fused
    into its batch norm (``nn.BatchNormReLU2d(max_value=6)``; same submodules and state_dict
    keys).

    Shapes: (N, in_channels, H, W) -> (N, out_channels, H / stride, W / stride).
    """

    def __init__(self, in_channels, out_channels, kernel_size=1, stride=1, groups=1):
        super().__init__(in_channels, out_channels, kernel_size, stride, groups=groups,
                         relu_max=6.0)

    def extra_repr(self):
        return "relu6"


class InvertedResidual(nn.Module):
    """1x1 expansion to t * in_channels (conv-BN-ReLU6; left out when t = 1) -> 3x3 depthwise
    conv (stride, groups = channels; conv-BN-ReLU6) -> 1x1 linear projection (conv-BN), plus
    the input when stride is 1 and in_channels == out_channels.

    Args:
        in_channels, out_channels: block input and output widths.
        stride: stride of the depthwise conv.
        expand_ratio: t, the expansion factor.

    Shapes: (N, in_channels, H, W) -> (N, out_channels, H / stride, W / stride).

    Reference: Sandler et al., MobileNetV2: Inverted Residuals and Linear Bottlenecks, CVPR
    2018, Table 1 and Fig. 4(d).
    """

    def __init__(self, in_channels, out_channels, stride=1, expand_ratio=6):
        super().__init__()
        hidden = in_channels * expand_ratio
        # t = 1 would be a square 1x1 conv; the paper's reference code leaves it out
        self.expand = (ConvBNReLU6(in_channels, hidden) if expand_ratio != 1
                       else nn.Identity())
        self.depthwise = ConvBNReLU6(hidden, hidden, 3, stride, groups=hidden)
        self.project = ConvBNReLU(hidden, out_channels, 1, relu=False)
        self.use_residual = stride == 1 and in_channels == out_channels

    def branch(self, x):
        return self.project(self.depthwise(self.expand(x)))

    def forward(self, x):
        y = self.branch(x)
        return x + y if self.use_residual else y

    def extra_repr(self):
        return "residual" if self.use_residual else ""


def check_settings(model, settings):
    """Rows (t, c, n, s) of four positive ints, as a tuple of tuples (ValueError else)."""
    if not isinstance(settings, (list, tuple)) or not settings:
        raise ValueError(f"{model}: 'settings' must be a non-empty list of (t, c, n, s) rows, "
                         f"got {settings!r}")
    rows = []
    for row in settings:
        row = check_int_list(model, "settings", row)
        if len(row) != 4:
            raise ValueError(f"{model}: 'settings' rows must be (t, c, n, s), got {row!r}")
        rows.append(row)
    return tuple(rows)


class MobileNetV2(ConvNet):
    """MobileNetV2: 3x3 conv-BN-ReLU6 (32 channels), inverted residual stages (one per row of
    ``settings``), 1x1 conv-BN-ReLU6 to 1280 channels, global average pool, dropout, Linear.

    Args:
        num_classes: output classes.
        width_mult: multiplies every width but the last conv's (which only grows, for
            width_mult > 1, as in the paper), rounded to multiples of ``round_nearest``.
        drop_rate: dropout before the Linear layer (0.2, as the reference code).
        stem: 'cifar' (stem stride 1 and CIFAR_SETTINGS: 32x32 -> 4x4; the default) or
            'imagenet' (stem stride 2 and the paper's IMAGENET_SETTINGS: H/32).
        settings: rows (t, c, n, s) of expansion, width, blocks and first stride, one stage
            each; None takes the table of ``stem``. Given rows are used as they are, and
            ``stem`` then picks only the stem stride.
        round_nearest: channel counts are multiples of this (8).
        in_channels: input image channels.

    Shapes: (N, in_channels, H, W) -> (N, num_classes).
    Parameters: 2,236,682 (10 classes); with stem='imagenet' and 1000 classes 3,504,872, the
    count of torchvision's model of the same network (the paper lists 3.4M).

    Reference: Sandler et al., MobileNetV2: Inverted Residuals and Linear Bottlenecks, CVPR
    2018, Table 2.
    """

    def __init__(self, num_classes=10, width_mult=1.0, drop_rate=0.2, stem="cifar",
                 settings=None, round_nearest=8, in_channels=3):
        name = type(self).__name__
        super().__init__(name, num_classes, in_channels)
        if isinstance(width_mult, bool) or not isinstance(width_mult, (int, float)) \
                or not width_mult > 0:
            raise ValueError(f"{name}: 'width_mult' must be a positive number, got "
                             f"{width_mult!r}")
        drop_rate = check_rate(name, "drop_rate", drop_rate)
        check_choice(name, "stem", stem, STEMS)
        check_positive_int(name, "round_nearest", round_nearest)
        if settings is None:
            settings = CIFAR_SETTINGS if stem == "cifar" else IMAGENET_SETTINGS
        settings = check_settings(name, settings)

        def channels(c):
            return make_divisible(c * width_mult, round_nearest)

        width = channels(32)
        layers = [("stem", ConvBNReLU6(in_channels, width, 3, 1 if stem == "cifar" else 2))]
        for i, (t, c, n, s) in enumerate(settings):
            blocks = []
            for j in range(n):
                blocks.append(InvertedResidual(width, channels(c), s if j == 0 else 1, t))
                width = channels(c)
            layers.append((f"stage{i + 1}", nn.Sequential(*blocks)))
        last = make_divisible(1280 * max(1.0, width_mult), round_nearest)
        layers.append(("head", ConvBNReLU6(width, last)))
        self.features = nn.Sequential(OrderedDict(layers))
        self.classifier = Classifier(last, num_classes, drop_rate)
        init_weights(self, linear_std=0.01)
