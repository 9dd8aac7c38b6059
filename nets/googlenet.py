"""A GoogLeNet-style Inception network for CIFAR: the nine Inception modules of GoogLeNet
(3a-5b, the paper's channel table), each four parallel branches (1x1; 1x1-3x3; 1x1-5x5;
3x3 max-pool-1x1) concatenated on the channel axis.

Changes from the ImageNet original, for 32x32 images: the stem is one 3x3 conv (192 channels)
instead of the 7x7/2 conv, pools and 3x3 convs; every conv is conv-BN-ReLU (BN-Inception style,
so that no auxiliary classifiers are needed to train it; they are left out).

Initialization: convs kaiming_normal_ fan_out relu, BN weight 1 bias 0, Linear PyTorch's
default weight and bias 0.
"""
from __future__ import annotations

import minidl.functional as F
import minidl.nn as nn

from .common import (Classifier, ConvBNReLU, ConvNet, check_positive_int, check_rate,
                     init_weights)

# (1x1, 3x3 reduce, 3x3, 5x5 reduce, 5x5, pool proj) of each module; "M": 3x3/2 max-pool
# (Szegedy et al. 2015, Table 1)
CONFIG = [
    ("3a", (64, 96, 128, 16, 32, 32)),
    ("3b", (128, 128, 192, 32, 96, 64)),
    ("pool3", "M"),
    ("4a", (192, 96, 208, 16, 48, 64)),
    ("4b", (160, 112, 224, 24, 64, 64)),
    ("4c", (128, 128, 256, 24, 64, 64)),
    ("4d", (112, 144, 288, 32, 64, 64)),
    ("4e", (256, 160, 320, 32, 128, 128)),
    ("pool4", "M"),
    ("5a", (256, 160, 320, 32, 128, 128)),
    ("5b", (384, 192, 384, 48, 128, 128)),
]


class Inception(nn.Module):
    """Four parallel branches concatenated on the channel axis: 1x1 conv; 1x1 reduce -> 3x3
    conv; 1x1 reduce -> 5x5 conv; 3x3 stride-1 max-pool -> 1x1 projection.

    Shapes: (N, in_channels, H, W) -> (N, c1 + c3 + c5 + pool_proj, H, W).

    Reference: Szegedy et al., Going Deeper with Convolutions, CVPR 2015, Fig. 2(b).
    """

    def __init__(self, in_channels, c1, c3_reduce, c3, c5_reduce, c5, pool_proj):
        super().__init__()
        self.branch1 = ConvBNReLU(in_channels, c1, 1)
        self.branch3 = nn.Sequential(ConvBNReLU(in_channels, c3_reduce, 1),
                                     ConvBNReLU(c3_reduce, c3, 3))
        self.branch5 = nn.Sequential(ConvBNReLU(in_channels, c5_reduce, 1),
                                     ConvBNReLU(c5_reduce, c5, 5))
        self.branch_pool = nn.Sequential(nn.MaxPool2d(3, stride=1, padding=1),
                                         ConvBNReLU(in_channels, pool_proj, 1))
        self.out_channels = c1 + c3 + c5 + pool_proj

    def forward(self, x):
        branches = (self.branch1, self.branch3, self.branch5, self.branch_pool)
        return F.cat([b(x) for b in branches], dim=1)


class GoogLeNet(ConvNet):
    """GoogLeNet-style CIFAR network: 3x3 conv stem, Inception 3a-3b, max-pool, 4a-4e,
    max-pool, 5a-5b, global average pool, dropout, Linear.

    Args:
        num_classes: output classes.
        width: channels of module 3a's 1x1 branch (64); every channel count in the table (and
            the stem's 192) scales by width / 64, rounded down, at least 1.
        drop_rate: dropout before the Linear layer (0.4, as in the paper).
        in_channels: input image channels.

    Shapes: (N, in_channels, H, W) -> (N, num_classes).
    Parameters (10 classes): 5.9M.

    Reference: Szegedy et al., Going Deeper with Convolutions, CVPR 2015, Table 1.
    """

    def __init__(self, num_classes=10, width=64, drop_rate=0.4, in_channels=3):
        name = type(self).__name__
        super().__init__(name, num_classes, in_channels)
        check_positive_int(name, "width", width)
        drop_rate = check_rate(name, "drop_rate", drop_rate)

        def scale(c):
            return max(1, c * width // 64)

        channels = scale(192)
        self.features = nn.Sequential()
        self.features.add_module("stem", ConvBNReLU(in_channels, channels, 3))
        for label, spec in CONFIG:
            if spec == "M":
                module = nn.MaxPool2d(3, stride=2, padding=1)
            else:
                module = Inception(channels, *(scale(c) for c in spec))
                channels = module.out_channels
            self.features.add_module(label, module)
        self.classifier = Classifier(channels, num_classes, drop_rate)
        init_weights(self)
