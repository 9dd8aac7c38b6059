"""ResNet-18/34/50: the ImageNet ResNets (four stages of 64-512 channels) with a CIFAR stem
(3x3 conv, no max-pool; the default) or the ImageNet stem (7x7 stride-2 conv + 3x3 stride-2
max-pool).

Initialization (torchvision): convs kaiming_normal_ fan_out relu, BN weight 1 bias 0, Linear
with PyTorch's default weight and bias 0.
"""
from __future__ import annotations

from collections import OrderedDict

import minidl.nn as nn

from .common import (STEMS, Classifier, ConvBNReLU, ConvNet, check_choice, check_int_list,
                     check_positive_int, imagenet_stem, init_weights)
from .resnet import BasicBlock, Bottleneck, make_stages

def make_stem(model, stem, in_channels, out_channels):
    """'cifar': 3x3 conv-BN-ReLU (H, W kept); 'imagenet': 7x7/2 conv-BN-ReLU + 3x3/2 max-pool
    (H/4, W/4)."""
    check_choice(model, "stem", stem, STEMS)
    if stem == "cifar":
        return ConvBNReLU(in_channels, out_channels, 3)
    return imagenet_stem(in_channels, out_channels)


class ResNet(ConvNet):
    """ResNet with four stages (w, 2w, 4w, 8w channels; x4 with bottlenecks), strides 1, 2, 2,
    2, projection (option B) shortcuts, global average pool and Linear.

    Args:
        layers: blocks per stage, (2, 2, 2, 2) for ResNet-18, (3, 4, 6, 3) for -34 and -50.
        bottleneck: Bottleneck blocks (ResNet-50) instead of BasicBlocks.
        num_classes: output classes.
        width: channels of the stem and first stage (64).
        stem: 'cifar' (3x3 conv, no max-pool) or 'imagenet' (7x7/2 conv + 3x3/2 max-pool).
        in_channels: input image channels.

    Shapes: (N, in_channels, H, W) -> (N, num_classes).
    Parameters (CIFAR stem, 10 classes): ResNet-18 11.2M, ResNet-34 21.3M, ResNet-50 23.5M.

    Reference: He et al., Deep Residual Learning for Image Recognition, CVPR 2016, Table 1.
    """

    def __init__(self, layers=(2, 2, 2, 2), bottleneck=False, num_classes=10, width=64,
                 stem="cifar", in_channels=3):
        name = type(self).__name__
        super().__init__(name, num_classes, in_channels)
        layers = check_int_list(name, "layers", layers)
        check_positive_int(name, "width", width)
        expansion = 4 if bottleneck else 1
        widths = tuple(expansion * width * 2 ** i for i in range(len(layers)))
        strides = (1,) + (2,) * (len(layers) - 1)
        if bottleneck:
            def block(i, o, s):
                return Bottleneck(i, o // 4, o, s)
        else:
            def block(i, o, s):
                return BasicBlock(i, o, s, shortcut="B")
        stages = make_stages(block, width, widths, layers, strides)
        self.features = nn.Sequential(OrderedDict(
            [("stem", make_stem(name, stem, in_channels, width))] + stages))
        self.classifier = Classifier(widths[-1], num_classes)
        init_weights(self)
