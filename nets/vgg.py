"""VGG with batch normalization, CIFAR-sized: 3x3 conv-BN-ReLU stacks with 2x2 max-pools (five
of them take 32x32 to 1x1) and three fully connected layers of width 512 instead of 4096.

Initialization (torchvision's VGG): convs kaiming_normal_ fan_out relu, BN weight 1 bias 0,
Linear weights N(0, 0.01^2) and biases 0. The conv biases are left out: the BatchNorm right
after each conv has its own bias.
"""
from __future__ import annotations

import minidl.nn as nn

from .common import (Classifier, ConvBNReLU, ConvNet, check_choice, check_positive_int,
                     check_rate, dropout, init_weights)

# output channels of each conv (in units of the base width 64); "M" is a 2x2 max-pool
CONFIGS = {
    11: [1, "M", 2, "M", 4, 4, "M", 8, 8, "M", 8, 8, "M"],
    13: [1, 1, "M", 2, 2, "M", 4, 4, "M", 8, 8, "M", 8, 8, "M"],
    16: [1, 1, "M", 2, 2, "M", 4, 4, 4, "M", 8, 8, 8, "M", 8, 8, 8, "M"],
    19: [1, 1, "M", 2, 2, "M", 4, 4, 4, 4, "M", 8, 8, 8, 8, "M", 8, 8, 8, 8, "M"],
}


class VGG(ConvNet):
    """VGG-11/13/16/19 with BN for CIFAR: conv stacks of w, 2w, 4w, 8w, 8w channels, each
    closed by a 2x2 max-pool, then global average pool (1x1 already at 32x32 input) and
    Dropout-Linear(8w, 8w)-ReLU-Dropout-Linear(8w, 8w)-ReLU-Linear(8w, num_classes).

    Args:
        depth: 11, 13, 16 or 19 weight layers (8-16 convs + 3 Linear).
        num_classes: output classes.
        width: channels of the first conv (64).
        drop_rate: dropout before the two hidden Linear layers (0.5).
        in_channels: input image channels.

    Shapes: (N, in_channels, H, W) -> (N, num_classes); H, W >= 32 (five 2x2 pools).
    Parameters (10 classes): VGG-11-BN 9.8M, VGG-16-BN 15.2M.

    Reference: Simonyan & Zisserman, Very Deep Convolutional Networks for Large-Scale Image
    Recognition, ICLR 2015, Table 1 (configurations A and D); Ioffe & Szegedy, Batch
    Normalization, ICML 2015.
    """

    def __init__(self, depth=16, num_classes=10, width=64, drop_rate=0.5, in_channels=3):
        name = type(self).__name__
        super().__init__(name, num_classes, in_channels)
        check_choice(name, "depth", depth, tuple(CONFIGS))
        check_positive_int(name, "width", width)
        drop_rate = check_rate(name, "drop_rate", drop_rate)
        layers, channels = [], in_channels
        for v in CONFIGS[depth]:
            if v == "M":
                layers.append(nn.MaxPool2d(2, 2))
            else:
                layers.append(ConvBNReLU(channels, v * width, 3))
                channels = v * width
        self.features = nn.Sequential(*layers)
        self.classifier = nn.Sequential(
            Classifier(channels, channels, drop_rate), nn.ReLU(),
            dropout(drop_rate),
            nn.Linear(channels, channels), nn.ReLU(),
            nn.Linear(channels, num_classes))
        init_weights(self, linear_std=0.01)
