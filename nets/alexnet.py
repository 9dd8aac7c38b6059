"""An AlexNet-style network for CIFAR: AlexNet's five convolutions (64, 192, 384, 256, 256
channels, ReLU, overlapping 3x3 stride-2 max-pools after the 1st, 2nd and 5th) and its three
fully connected layers with dropout, sized for 32x32 inputs.

Changes from the ImageNet original, for 32x32 images: the first conv is 5x5 stride 1 (not 11x11
stride 4), the hidden Linear layers have 1024 units (not 4096), local response normalization is
left out (later work found it unnecessary), and there is no BatchNorm, as in the original.

Initialization: convs kaiming_normal_ fan_out relu with zero biases (He et al. 2015, which
trains this depth without BN), Linear layers PyTorch's default weight and bias 0.
"""
from __future__ import annotations

import minidl.nn as nn

from .common import ConvNet, check_positive_int, check_rate, dropout, init_weights


def _conv_relu(in_channels, out_channels, kernel_size):
    return nn.Sequential(nn.Conv2d(in_channels, out_channels, kernel_size,
                                   padding=kernel_size // 2), nn.ReLU())


def _pool():
    return nn.MaxPool2d(3, stride=2, padding=1)      # overlapping pooling, H -> ceil(H / 2)


class AlexNet(ConvNet):
    """AlexNet-style CIFAR network.

    features: conv5x5(w)-ReLU-pool, conv5x5(3w)-ReLU-pool, conv3x3(6w)-ReLU, conv3x3(4w)-ReLU,
    conv3x3(4w)-ReLU-pool; classifier: flatten-Dropout-Linear(16w)-ReLU-Dropout-Linear(16w)-
    ReLU-Linear(num_classes).

    Args:
        num_classes: output classes.
        width: channels of the first conv (64).
        drop_rate: dropout before the two hidden Linear layers (0.5, as in the paper).
        image_size: input height and width (32); fixes the size of the first Linear layer.
        in_channels: input image channels.

    Shapes: (N, in_channels, image_size, image_size) -> (N, num_classes).
    Parameters (10 classes): 7.7M.

    Reference: Krizhevsky, Sutskever & Hinton, ImageNet Classification with Deep Convolutional
    Neural Networks, NIPS 2012, Sec. 3.5 and Fig. 2.
    """

    def __init__(self, num_classes=10, width=64, drop_rate=0.5, image_size=32, in_channels=3):
        name = type(self).__name__
        super().__init__(name, num_classes, in_channels)
        check_positive_int(name, "width", width)
        check_positive_int(name, "image_size", image_size)
        drop_rate = check_rate(name, "drop_rate", drop_rate)
        w = width
        self.features = nn.Sequential(
            _conv_relu(in_channels, w, 5), _pool(),
            _conv_relu(w, 3 * w, 5), _pool(),
            _conv_relu(3 * w, 6 * w, 3),
            _conv_relu(6 * w, 4 * w, 3),
            _conv_relu(4 * w, 4 * w, 3), _pool())
        self.image_size = image_size
        side = image_size
        for _ in range(3):
            side = (side + 1) // 2                               # each pool: ceil(H / 2)
        hidden = 16 * w
        self.classifier = nn.Sequential(
            nn.Flatten(), dropout(drop_rate), nn.Linear(4 * w * side * side, hidden), nn.ReLU(),
            dropout(drop_rate), nn.Linear(hidden, hidden), nn.ReLU(),
            nn.Linear(hidden, num_classes))
        init_weights(self)

    def forward(self, x):
        if x.ndim == 4 and tuple(x.shape[2:]) != (self.image_size, self.image_size):
            raise ValueError(f"AlexNet: built for {self.image_size}x{self.image_size} inputs "
                             f"(image_size={self.image_size}), got {tuple(x.shape)}")
        return super().forward(x)
