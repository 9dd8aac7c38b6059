"""DenseNets: DenseNet (L=40, k=12), DenseNet-BC (L=100, k=12) for CIFAR and DenseNet-121
(k=32, blocks 6-12-24-16).

Every layer of a dense block receives the concatenation (F.cat on the channel axis) of the
block input and of all earlier layers' outputs, and adds k (the growth rate) channels.
Transitions (BN-ReLU-1x1 conv-2x2 avg-pool) between blocks compress the channels by theta.

Initialization (the authors' Lua code, after fb.resnet.torch): convs kaiming_normal_ fan_out
relu, BN weight 1 bias 0, Linear with PyTorch's default weight and bias 0.
"""
from __future__ import annotations

from collections import OrderedDict

import minidl.functional as F
import minidl.nn as nn

from .common import (STEMS, BNReLU, Classifier, ConvNet, check_choice, check_int_list,
                     check_positive_int, check_rate, conv1x1, conv3x3, dropout,
                     imagenet_stem, init_weights)


class DenseLayer(nn.Module):
    """One layer of a dense block: BN-ReLU-3x3 conv (k channels), or with ``bottleneck``
    BN-ReLU-1x1 conv (4k) - BN-ReLU-3x3 conv (k); dropout after each conv if drop_rate > 0.

    Shapes: list of (N, C_i, H, W) with sum C_i = in_channels -> (N, growth_rate, H, W).

    Reference: Huang et al., Densely Connected Convolutional Networks, CVPR 2017, Sec. 3.
    """

    def __init__(self, in_channels, growth_rate, bottleneck=False, drop_rate=0.0,
                 memory_efficient=True):
        super().__init__()
        self.bottleneck, self.memory_efficient = bottleneck, memory_efficient
        first = 4 * growth_rate if bottleneck else growth_rate
        self.act1 = BNReLU(in_channels)
        self.conv1 = (conv1x1 if bottleneck else conv3x3)(in_channels, first)
        self.drop1 = dropout(drop_rate)
        if bottleneck:
            self.act2 = BNReLU(first)
            self.conv2 = conv3x3(first, growth_rate)
            self.drop2 = dropout(drop_rate)

    def _concat_conv(self, *features):
        x = F.cat(list(features), dim=1)                   # (N, sum C_i, H, W)
        return self.drop1(self.conv1(self.act1(x)))

    def concat_conv(self, features):
        """cat -> BN -> ReLU -> first conv (-> dropout).

        With ``memory_efficient`` (the default) this step is checkpointed: its concatenation,
        normalized and activated copies (each as large as all earlier features together) are
        not kept for backward but recomputed there, so a block's memory grows linearly with
        its depth instead of quadratically (Pleiss et al., Memory-Efficient Implementation of
        DenseNets, 2017).
        """
        if not self.memory_efficient:
            return self._concat_conv(*features)
        params = list(self.act1.parameters()) + list(self.conv1.parameters())
        return F.checkpoint(self._concat_conv, features, params, list(self.act1.buffers()))

    def forward(self, features):
        y = self.concat_conv(features)
        if self.bottleneck:
            y = self.drop2(self.conv2(self.act2(y)))
        return y


class DenseBlock(nn.Module):
    """``num_layers`` DenseLayers, each fed all earlier feature maps; the output is the
    concatenation of the input and every layer's output.

    Shapes: (N, C, H, W) -> (N, C + num_layers * growth_rate, H, W).
    """

    def __init__(self, num_layers, in_channels, growth_rate, bottleneck=False, drop_rate=0.0,
                 memory_efficient=True):
        super().__init__()
        self.layers = nn.ModuleList(
            DenseLayer(in_channels + i * growth_rate, growth_rate, bottleneck, drop_rate,
                       memory_efficient)
            for i in range(num_layers))
        self.out_channels = in_channels + num_layers * growth_rate

    def forward(self, x):
        features = [x]
        for layer in self.layers:
            features.append(layer(features))
        return F.cat(features, dim=1)


class Transition(nn.Module):
    """BN-ReLU-1x1 conv (-> dropout) - 2x2 average pool.

    Shapes: (N, in_channels, H, W) -> (N, out_channels, H / 2, W / 2).
    """

    def __init__(self, in_channels, out_channels, drop_rate=0.0):
        super().__init__()
        self.act = BNReLU(in_channels)
        self.conv = conv1x1(in_channels, out_channels)
        self.drop = dropout(drop_rate)

    def forward(self, x):
        return F.avg_pool2d(self.drop(self.conv(self.act(x))), 2)


class DenseNet(ConvNet):
    """Dense blocks joined by transitions, then BN-ReLU, global average pool and Linear.

    Args:
        block_config: layers per dense block ((6, 12, 24, 16) for DenseNet-121).
        growth_rate: k, channels added by each layer.
        num_init_features: stem output channels (default 2k).
        bottleneck: use the 1x1 (4k) bottleneck in each layer (the "B" in BC).
        compression: theta in (0, 1]; a transition outputs floor(theta * C) channels.
        drop_rate: dropout after each conv but the stem (0.2 in the paper without data
            augmentation).
        stem: 'cifar' (one 3x3 conv; the default) or 'imagenet' (7x7/2 conv-BN-ReLU and a 3x3/2
            max-pool).
        memory_efficient: recompute each layer's concatenation, BN and ReLU in backward
            instead of storing them (linear instead of quadratic memory in the depth of a
            block, for about one extra 1x1 conv per layer); see DenseLayer.concat_conv.
        num_classes, in_channels: output classes, input image channels.

    Shapes: (N, in_channels, H, W) -> (N, num_classes).
    Parameters (10 classes): DenseNet-40 (k=12) 1.0M, DenseNet-BC-100 (k=12) 0.8M,
    DenseNet-121 (k=32) 7.0M.

    Reference: Huang et al., Densely Connected Convolutional Networks, CVPR 2017, Table 1
    (DenseNet-121) and Sec. 4 (CIFAR).
    """

    def __init__(self, block_config=(6, 12, 24, 16), growth_rate=32, num_init_features=None,
                 bottleneck=True, compression=0.5, drop_rate=0.0, stem="cifar",
                 num_classes=10, in_channels=3, memory_efficient=True):
        name = type(self).__name__
        super().__init__(name, num_classes, in_channels)
        block_config = check_int_list(name, "block_config", block_config)
        check_positive_int(name, "growth_rate", growth_rate)
        if num_init_features is None:
            num_init_features = 2 * growth_rate
        check_positive_int(name, "num_init_features", num_init_features)
        if isinstance(compression, bool) or not isinstance(compression, (int, float)) \
                or not 0 < compression <= 1:
            raise ValueError(f"{name}: 'compression' must be in (0, 1], got {compression!r}")
        drop_rate = check_rate(name, "drop_rate", drop_rate)
        check_choice(name, "stem", stem, STEMS)
        if stem == "cifar":
            layers = [("stem", conv3x3(in_channels, num_init_features))]
        else:
            layers = [("stem", imagenet_stem(in_channels, num_init_features))]
        channels = num_init_features
        for i, n in enumerate(block_config):
            block = DenseBlock(n, channels, growth_rate, bottleneck, drop_rate,
                               bool(memory_efficient))
            layers.append((f"block{i + 1}", block))
            channels = block.out_channels
            if i < len(block_config) - 1:
                out = int(compression * channels)
                layers.append((f"transition{i + 1}", Transition(channels, out, drop_rate)))
                channels = out
        layers.append(("final_act", BNReLU(channels)))
        self.features = nn.Sequential(OrderedDict(layers))
        self.classifier = Classifier(channels, num_classes)
        init_weights(self)


def cifar_densenet(depth=40, growth_rate=12, bottleneck=False, compression=1.0,
                   drop_rate=0.0, num_init_features=None, num_classes=10, in_channels=3,
                   memory_efficient=True):
    """The CIFAR DenseNets: three dense blocks of n layers each on 32x32, 16x16 and 8x8, where
    depth L = 3n + 4 (or 6n + 4 with bottlenecks, which count two convs per layer).

    The stem has 16 channels for DenseNet and 2k for DenseNet-BC, as in the paper, unless
    ``num_init_features`` is given. See DenseNet for the other arguments.

    Reference: Huang et al., Densely Connected Convolutional Networks, CVPR 2017, Sec. 3-4.
    """
    check_positive_int("DenseNet", "depth", depth)
    per = 6 if bottleneck else 3
    if depth < per + 4 or (depth - 4) % per:
        raise ValueError(f"DenseNet: 'depth' must be {per}n+4 for some n >= 1 "
                         f"({'with' if bottleneck else 'without'} bottleneck), got {depth}")
    n = (depth - 4) // per
    if num_init_features is None:
        num_init_features = 2 * growth_rate if bottleneck else 16
    return DenseNet((n, n, n), growth_rate, num_init_features, bottleneck, compression,
                    drop_rate, "cifar", num_classes, in_channels, memory_efficient)
