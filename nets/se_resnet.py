"""SE-ResNet-20 for CIFAR: ResNet-20 with a squeeze-and-excitation unit on the residual branch
of every block.

The reduction ratio defaults to 4, not the paper's 16: at the CIFAR widths of 16, 32 and 64
channels, r = 16 would squeeze the first stage through a single unit (1, 2, 4 hidden units);
r = 4 gives 4, 8, 16. The shortcuts are option A, as in ResNet-20, so that the SE units are the
only difference from it.

Initialization: as CifarResNet (convs kaiming_normal_ fan_out relu, BN 1/0); the SE and final
Linear layers PyTorch's default weight and bias 0.
"""
from __future__ import annotations

import minidl.functional as F
import minidl.nn as nn

from .common import (SHORTCUTS, Classifier, ConvNet, check_choice, check_positive_int,
                     global_avg_pool, init_weights)
from .resnet import BasicBlock, cifar_resnet_features


class SqueezeExcitation(nn.Module):
    """Channel attention: s = sigmoid(W2 relu(W1 avgpool(x))), y = x * s per channel, with
    W1: C -> max(1, C // reduction), W2: back to C.

    Shapes: (N, C, H, W) -> (N, C, H, W).

    Reference: Hu et al., Squeeze-and-Excitation Networks, CVPR 2018, Sec. 3 and Fig. 3.
    """

    def __init__(self, channels, reduction=4):
        super().__init__()
        hidden = max(1, channels // reduction)
        self.fc1 = nn.Linear(channels, hidden)
        self.fc2 = nn.Linear(hidden, channels)

    def forward(self, x):
        N, C = x.shape[:2]
        s = F.sigmoid(self.fc2(F.relu(self.fc1(global_avg_pool(x)))))   # (N, C)
        return x * s.reshape(N, C, 1, 1)


class SEBasicBlock(BasicBlock):
    """BasicBlock whose residual branch is rescaled by a SqueezeExcitation unit before the
    addition: y = relu(se(residual(x)) + shortcut(x)).

    Shapes: (N, in_channels, H, W) -> (N, out_channels, H / stride, W / stride).
    """

    def __init__(self, in_channels, out_channels, stride=1, shortcut="A", reduction=4):
        super().__init__(in_channels, out_channels, stride, shortcut)
        self.se = SqueezeExcitation(out_channels, reduction)

    def residual(self, x):
        return self.se(super().residual(x))


class SEResNet(ConvNet):
    """SE-ResNet-(6n+2) for CIFAR: CifarResNet with SEBasicBlocks.

    Args:
        depth: 6n+2 (20).
        num_classes: output classes.
        reduction: SE reduction ratio r (4; see the module docstring).
        shortcut: 'A' (default) or 'B', as in CifarResNet.
        width: channels of the first stage (16).
        in_channels: input image channels.

    Shapes: (N, in_channels, H, W) -> (N, num_classes).
    Parameters (10 classes): SE-ResNet-20 0.28M.

    Reference: Hu et al., Squeeze-and-Excitation Networks, CVPR 2018; He et al. 2016 (the
    ResNet-20 body).
    """

    def __init__(self, depth=20, num_classes=10, reduction=4, shortcut="A", width=16,
                 in_channels=3):
        name = type(self).__name__
        super().__init__(name, num_classes, in_channels)
        check_positive_int(name, "reduction", reduction)
        check_choice(name, "shortcut", shortcut, SHORTCUTS[:2])
        self.features = cifar_resnet_features(
            name, depth, width, in_channels,
            lambda i, o, s: SEBasicBlock(i, o, s, shortcut, reduction))
        self.classifier = Classifier(4 * width, num_classes)
        init_weights(self)
