"""Wide ResNets for CIFAR (WRN-d-k): pre-activation ResNets with few, wide layers.

WRN-d-k has a 3x3 stem conv (16 channels), three groups of (d - 4) / 6 pre-activation basic
blocks B(3,3) of widths 16k, 32k, 64k (at 32x32, 16x16, 8x8), a final BN-ReLU, global average
pooling and a Linear layer. Where a block changes the shape (the first block of each group, and
of group 1 only when k > 1) its shortcut is a bare 1x1 conv on the pre-activated input; every
other shortcut is the identity. ``drop_rate`` puts dropout between the two convs of a block.

Initialization (the authors' Torch code, after fb.resnet.torch): convs kaiming_normal_ fan_out
relu, BN weight 1 bias 0, Linear with PyTorch's default weight and bias 0 (``init_weights``).
"""
from __future__ import annotations

from .common import (BNReLU, ConvNet, check_positive_int, check_rate, conv3x3, dropout,
                     make_shortcut)
from .resnet import PreActResidualBlock, build_preact_trunk


class WideBasicBlock(PreActResidualBlock):
    """Wide pre-activation block B(3,3): BN-ReLU-3x3 conv-BN-ReLU-(dropout)-3x3 conv plus a
    shortcut (identity, or a 1x1 conv where the shape changes).

    Args:
        in_channels, out_channels: block input and output widths.
        stride: stride of the first conv (2 halves H and W).
        drop_rate: dropout probability between the two convs (0: none).

    Shapes: (N, in_channels, H, W) -> (N, out_channels, H / stride, W / stride).

    Reference: Zagoruyko and Komodakis, Wide Residual Networks, BMVC 2016, Sec. 2, Fig. 1(c)
    and 1(d) (with dropout).
    """

    def __init__(self, in_channels, out_channels, stride=1, drop_rate=0.0):
        super().__init__()
        self.preact = BNReLU(in_channels)
        self.conv1 = conv3x3(in_channels, out_channels, stride)
        self.act2 = BNReLU(out_channels)
        self.dropout = dropout(drop_rate)
        self.conv2 = conv3x3(out_channels, out_channels)
        # a bare 1x1 conv on the pre-activated input where the shape changes, else identity
        self.shortcut = make_shortcut("B", in_channels, out_channels, stride, bn=False)

    def residual(self, a):
        return self.conv2(self.dropout(self.act2(self.conv1(a))))


def wrn_blocks_per_group(model, depth):
    """n, the blocks per group of WRN-d-k, from depth = 6n + 4 (the paper's and its code's
    convention: 3 groups of n two-conv blocks); ValueError for any other depth."""
    check_positive_int(model, "depth", depth)
    if depth < 10 or (depth - 4) % 6:
        raise ValueError(f"{model}: 'depth' must be 6n+4 for some n >= 1 (10, 16, 22, 28, "
                         f"...), got {depth}")
    return (depth - 4) // 6


class WideResNet(ConvNet):
    """WRN-d-k for CIFAR: 3x3 conv (w channels), three groups of (d - 4) / 6 WideBasicBlocks
    (widths w k, 2 w k, 4 w k; strides 1, 2, 2), BN-ReLU, global average pool, Linear.

    Args:
        depth: d = 6n+4 (16, 22, 28, 40).
        num_classes: output classes.
        widen_factor: k, the width multiplier of the groups (1 gives a pre-act ResNet).
        drop_rate: dropout between the two convs of every block (0.3 in the paper's dropout
            runs; 0 by default).
        width: stem channels w (16 in the paper); the groups are w k, 2 w k, 4 w k wide.
        in_channels: input image channels.

    Shapes: (N, in_channels, H, W) -> (N, num_classes).
    Parameters (10 classes): WRN-16-4 2,748,890 (2.7M), WRN-16-8 10,961,370 (11.0M),
    WRN-28-10 36,479,194 (36.5M), WRN-40-4 8,949,210 (8.9M).

    Reference: Zagoruyko and Komodakis, Wide Residual Networks, BMVC 2016, Table 1 (structure)
    and Table 4 (parameter counts).
    """

    def __init__(self, depth=28, num_classes=10, widen_factor=10, drop_rate=0.0, width=16,
                 in_channels=3):
        name = type(self).__name__
        super().__init__(name, num_classes, in_channels)
        n = wrn_blocks_per_group(name, depth)
        check_positive_int(name, "widen_factor", widen_factor)
        check_positive_int(name, "width", width)
        drop_rate = check_rate(name, "drop_rate", drop_rate)
        widths = tuple(width * widen_factor * m for m in (1, 2, 4))
        build_preact_trunk(self, lambda i, o, s: WideBasicBlock(i, o, s, drop_rate),
                           in_channels, width, widths, n, num_classes)
