"""ResNeXt-29 for CIFAR: three stages of three grouped-convolution bottleneck blocks.

Default 8x16d (cardinality 8, bottleneck width 16 per group): 5.6M parameters, against 34.4M for
the paper's smallest CIFAR model (8x64d), chosen so it trains on CIFAR in reasonable time while
keeping the aggregated (grouped 3x3) transform; 8x64d and 16x64d are options away
(``cardinality``, ``bottleneck_width``). The block outputs stay at the paper's 256, 512, 1024.

Initialization: convs kaiming_normal_ fan_out relu, BN weight 1 bias 0, Linear PyTorch's
default weight and bias 0 (as ResNet).
"""
from __future__ import annotations

from collections import OrderedDict

import minidl.nn as nn

from .common import Classifier, ConvBNReLU, ConvNet, check_positive_int, init_weights
from .resnet import Bottleneck, blocks_per_stage, make_stages


class ResNeXt(ConvNet):
    """ResNeXt for CIFAR: 3x3 conv (w channels), three stages of bottleneck blocks whose 3x3
    conv has ``cardinality`` groups (C x d channels in stage 1, doubling per stage; outputs 4w,
    8w, 16w at 32x32, 16x16, 8x8), projection shortcuts, global average pool, Linear.

    Args:
        depth: 9n+2 (29: n = 3 blocks per stage).
        num_classes: output classes.
        cardinality: C, the number of groups of the 3x3 convs (8).
        bottleneck_width: d, channels per group in the first stage (16).
        width: stem channels w (64); the stage outputs are 4w, 8w, 16w.
        in_channels: input image channels.

    Shapes: (N, in_channels, H, W) -> (N, num_classes).
    Parameters (10 classes): ResNeXt-29 8x16d 5.6M (8x64d 34.4M as in the paper).

    Reference: Xie et al., Aggregated Residual Transformations for Deep Neural Networks, CVPR
    2017, Sec. 5.3 and Table 7.
    """

    def __init__(self, depth=29, num_classes=10, cardinality=8, bottleneck_width=16, width=64,
                 in_channels=3):
        name = type(self).__name__
        super().__init__(name, num_classes, in_channels)
        n = blocks_per_stage(name, depth, 3)
        for arg, v in (("cardinality", cardinality), ("bottleneck_width", bottleneck_width),
                       ("width", width)):
            check_positive_int(name, arg, v)
        widths = (4 * width, 8 * width, 16 * width)
        mids = {o: cardinality * bottleneck_width * 2 ** i for i, o in enumerate(widths)}

        def block(i, o, s):
            return Bottleneck(i, mids[o], o, s, groups=cardinality)

        stages = make_stages(block, width, widths, (n, n, n), (1, 2, 2))
        self.features = nn.Sequential(OrderedDict(
            [("stem", ConvBNReLU(in_channels, width, 3))] + stages))
        self.classifier = Classifier(widths[-1], num_classes)
        init_weights(self)
