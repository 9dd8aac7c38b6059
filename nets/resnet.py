"""CIFAR ResNets (6n+2 layers, shortcut options A and B), the matching plain networks, and the
pre-activation ResNets (ResNet-110 with basic blocks, ResNet-164 with bottlenecks).

The residual blocks defined here (BasicBlock, Bottleneck and their pre-activation versions) and
``make_stages`` are shared with ResNet-18/34/50, ResNeXt and SE-ResNet.

Initialization (He et al. 2016 / fb.resnet.torch): convs kaiming_normal_ fan_out relu, BN
weight 1 bias 0, final Linear with PyTorch's default weight and bias 0 (``init_weights``).
"""
from __future__ import annotations

from collections import OrderedDict

import minidl.functional as F
import minidl.nn as nn

from .common import (SHORTCUTS, BNReLU, Classifier, ConvBNReLU, ConvNet, check_choice,
                     check_positive_int, conv1x1, conv3x3, init_weights, make_shortcut)


# ---------------------------------------------------------------------------------------------
# blocks

class ResidualBlock(nn.Module):
    """Post-activation residual block: y = relu(residual(x) + shortcut(x)), or relu(residual(x))
    for a plain block (shortcut None). Subclasses build ``residual``."""

    def residual(self, x):
        raise NotImplementedError

    def forward(self, x):
        y = self.residual(x)
        if self.shortcut is not None:
            y = y + self.shortcut(x)
        return F.relu(y)


class BasicBlock(ResidualBlock):
    """Two 3x3 conv-BN layers (ReLU between) plus a shortcut.

    Args:
        in_channels, out_channels: block input and output widths.
        stride: stride of the first conv (2 halves H and W).
        shortcut: 'A' (zero-padding identity), 'B' (projection where the shape changes) or
            'none' (plain block, no shortcut).

    Shapes: (N, in_channels, H, W) -> (N, out_channels, H / stride, W / stride).

    Reference: He et al., Deep Residual Learning for Image Recognition, CVPR 2016, Fig. 2.
    """

    def __init__(self, in_channels, out_channels, stride=1, shortcut="A"):
        super().__init__()
        self.conv1 = ConvBNReLU(in_channels, out_channels, 3, stride)
        self.conv2 = ConvBNReLU(out_channels, out_channels, 3, relu=False)
        self.shortcut = make_shortcut(shortcut, in_channels, out_channels, stride)

    def residual(self, x):
        return self.conv2(self.conv1(x))


class Bottleneck(ResidualBlock):
    """1x1 (reduce to ``mid_channels``) -> 3x3 (stride, groups) -> 1x1 (expand), each conv-BN,
    plus a shortcut. The stride sits on the 3x3 conv (torchvision's "ResNet v1.5"); ``groups``
    > 1 gives the ResNeXt block.

    Shapes: (N, in_channels, H, W) -> (N, out_channels, H / stride, W / stride).

    Reference: He et al. 2016, Fig. 5 (right); Xie et al., Aggregated Residual Transformations
    for Deep Neural Networks (ResNeXt), CVPR 2017, Fig. 3(c).
    """

    def __init__(self, in_channels, mid_channels, out_channels, stride=1, groups=1,
                 shortcut="B"):
        super().__init__()
        self.conv1 = ConvBNReLU(in_channels, mid_channels, 1)
        self.conv2 = ConvBNReLU(mid_channels, mid_channels, 3, stride, groups=groups)
        self.conv3 = ConvBNReLU(mid_channels, out_channels, 1, relu=False)
        self.shortcut = make_shortcut(shortcut, in_channels, out_channels, stride)

    def residual(self, x):
        return self.conv3(self.conv2(self.conv1(x)))


class PreActResidualBlock(nn.Module):
    """Pre-activation block: y = residual(relu(bn(x))) + shortcut, no activation after the sum.

    An identity or option-A shortcut reads x itself, so that the shortcut path stays a pure
    identity; a projection reads the pre-activated input, as in the reference code.
    """

    def residual(self, a):
        raise NotImplementedError

    def forward(self, x):
        a = self.preact(x)
        y = self.residual(a)
        if self.shortcut is None:
            return y
        return y + self.shortcut(a if isinstance(self.shortcut, nn.Conv2d) else x)


class PreActBlock(PreActResidualBlock):
    """BN-ReLU-3x3 conv-BN-ReLU-3x3 conv plus a shortcut (a projection is a bare 1x1 conv).

    Shapes: (N, in_channels, H, W) -> (N, out_channels, H / stride, W / stride).

    Reference: He et al., Identity Mappings in Deep Residual Networks, ECCV 2016, Fig. 1(b).
    """

    def __init__(self, in_channels, out_channels, stride=1, shortcut="B"):
        super().__init__()
        self.preact = BNReLU(in_channels)
        self.conv1 = conv3x3(in_channels, out_channels, stride)
        self.act2 = BNReLU(out_channels)
        self.conv2 = conv3x3(out_channels, out_channels)
        self.shortcut = make_shortcut(shortcut, in_channels, out_channels, stride, bn=False)

    def residual(self, a):
        return self.conv2(self.act2(self.conv1(a)))


class PreActBottleneck(PreActResidualBlock):
    """BN-ReLU-1x1 conv (out/4) - BN-ReLU-3x3 conv (stride) - BN-ReLU-1x1 conv (out).

    Shapes: (N, in_channels, H, W) -> (N, out_channels, H / stride, W / stride).

    Reference: He et al., Identity Mappings in Deep Residual Networks, ECCV 2016 (ResNet-164).
    """

    def __init__(self, in_channels, out_channels, stride=1, shortcut="B"):
        super().__init__()
        mid = out_channels // 4
        self.preact = BNReLU(in_channels)
        self.conv1 = conv1x1(in_channels, mid)
        self.act2 = BNReLU(mid)
        self.conv2 = conv3x3(mid, mid, stride)
        self.act3 = BNReLU(mid)
        self.conv3 = conv1x1(mid, out_channels)
        self.shortcut = make_shortcut(shortcut, in_channels, out_channels, stride, bn=False)

    def residual(self, a):
        return self.conv3(self.act3(self.conv2(self.act2(self.conv1(a)))))


def make_stages(block, in_channels, widths, blocks, strides):
    """Residual stages as [(name, Sequential)]: stage i stacks ``blocks[i]`` blocks of output
    width ``widths[i]``, the first one with stride ``strides[i]``.

    ``block(in_channels, out_channels, stride)`` builds one block.
    """
    stages = []
    for i, (width, n, stride) in enumerate(zip(widths, blocks, strides)):
        layers = []
        for j in range(n):
            layers.append(block(in_channels, width, stride if j == 0 else 1))
            in_channels = width
        stages.append((f"stage{i + 1}", nn.Sequential(*layers)))
    return stages


def build_preact_trunk(model, block, in_channels, width, widths, n, num_classes):
    """Give ``model`` the pre-activation CIFAR trunk PreActResNet and WideResNet share: a 3x3
    stem conv to ``width``, three stages of ``n`` blocks of ``widths`` (strides 1, 2, 2), a
    final BN-ReLU (pre-activation blocks end on a conv), the classifier, then He init.
    ``block(in_channels, out_channels, stride)`` builds one block."""
    stages = make_stages(block, width, widths, (n, n, n), (1, 2, 2))
    model.features = nn.Sequential(OrderedDict(
        [("stem", conv3x3(in_channels, width))] + stages
        + [("final_act", BNReLU(widths[-1]))]))
    model.classifier = Classifier(widths[-1], num_classes)
    init_weights(model)


def blocks_per_stage(model, depth, layers_per_block):
    """n for a 3-stage CIFAR net of depth = 3 * layers_per_block * n + 2 (ValueError else)."""
    check_positive_int(model, "depth", depth)
    per = 3 * layers_per_block
    if depth < per + 2 or (depth - 2) % per:
        raise ValueError(f"{model}: 'depth' must be {per}n+2 for some n >= 1 "
                         f"({per + 2}, {2 * per + 2}, ...), got {depth}")
    return (depth - 2) // per


# ---------------------------------------------------------------------------------------------
# networks

def cifar_resnet_features(model, depth, width, in_channels, block):
    """3x3 conv-BN-ReLU stem (width w) and three stages of n blocks (w, 2w, 4w; strides 1, 2,
    2): (N, C, H, W) -> (N, 4w, H/4, W/4). ``block(in, out, stride)`` builds one block."""
    n = blocks_per_stage(model, depth, 2)
    check_positive_int(model, "width", width)
    widths = (width, 2 * width, 4 * width)
    stages = make_stages(block, width, widths, (n, n, n), (1, 2, 2))
    return nn.Sequential(OrderedDict([("stem", ConvBNReLU(in_channels, width, 3))] + stages))


class CifarResNet(ConvNet):
    """ResNet-(6n+2) for CIFAR: 3x3 conv, 3 stages of n BasicBlocks (16, 32, 64 channels at
    32x32, 16x16, 8x8), global average pool, Linear.

    Args:
        depth: 6n+2 (20, 32, 44, 56, 110, 1202).
        num_classes: output classes.
        shortcut: 'A' (the paper's CIFAR choice: identity, zero-padded channels), 'B'
            (projection 1x1 conv + BN where the shape changes), 'none' (plain network).
        width: channels of the first stage (16 in the paper).
        in_channels: input image channels.

    Shapes: (N, in_channels, H, W) -> (N, num_classes).
    Parameters (option A, 10 classes): ResNet-20 0.27M, -32 0.46M, -44 0.66M, -56 0.85M,
    -110 1.7M, -1202 19.4M.

    Reference: He et al., Deep Residual Learning for Image Recognition, CVPR 2016, Sec. 4.2.
    """

    def __init__(self, depth=20, num_classes=10, shortcut="A", width=16, in_channels=3):
        name = type(self).__name__
        super().__init__(name, num_classes, in_channels)
        check_choice(name, "shortcut", shortcut, SHORTCUTS)
        self.features = cifar_resnet_features(
            name, depth, width, in_channels,
            lambda i, o, s: BasicBlock(i, o, s, shortcut))
        self.classifier = Classifier(4 * width, num_classes)
        init_weights(self)


class PlainNet(CifarResNet):
    """The plain counterpart of CifarResNet: the same 6n+2 layers without any shortcut, for the
    degradation experiment (deeper plain nets train worse).

    Shapes: (N, in_channels, H, W) -> (N, num_classes).

    Reference: He et al., Deep Residual Learning for Image Recognition, CVPR 2016, Fig. 6.
    """

    def __init__(self, depth=20, num_classes=10, width=16, in_channels=3):
        super().__init__(depth, num_classes, "none", width, in_channels)


class PreActResNet(ConvNet):
    """Pre-activation ResNet for CIFAR: 3x3 conv, 3 stages of pre-activation blocks, final
    BN-ReLU, global average pool, Linear.

    Args:
        depth: 6n+2 with basic blocks (110), 9n+2 with bottlenecks (164).
        num_classes: output classes.
        bottleneck: use PreActBottleneck (stage outputs 4w, 8w, 16w; 3x3 width w, 2w, 4w)
            instead of PreActBlock (w, 2w, 4w).
        shortcut: 'B' (default, as the reference code: a 1x1 conv where the shape changes) or
            'A' (zero-padding identity).
        width: the first stage's 3x3 conv width (16).
        in_channels: input image channels.

    Shapes: (N, in_channels, H, W) -> (N, num_classes).
    Parameters (10 classes): ResNet-110 1.7M, ResNet-164 1.7M.

    Reference: He et al., Identity Mappings in Deep Residual Networks, ECCV 2016, Sec. 4 and
    Table 3 (CIFAR-10).
    """

    def __init__(self, depth=110, num_classes=10, bottleneck=False, shortcut="B", width=16,
                 in_channels=3):
        name = type(self).__name__
        super().__init__(name, num_classes, in_channels)
        check_choice(name, "shortcut", shortcut, ("A", "B"))
        check_positive_int(name, "width", width)
        n = blocks_per_stage(name, depth, 3 if bottleneck else 2)
        expansion = 4 if bottleneck else 1
        block = PreActBottleneck if bottleneck else PreActBlock
        widths = tuple(expansion * width * m for m in (1, 2, 4))
        build_preact_trunk(self, lambda i, o, s: block(i, o, s, shortcut), in_channels, width,
                           widths, n, num_classes)
