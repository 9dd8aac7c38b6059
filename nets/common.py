"""Building blocks shared by the model families: conv helpers, conv-BN-ReLU, the option-A and
option-B shortcuts, the stems, global average pooling, He initialization and argument checks.

Every family file imports from here instead of writing its own copy, so that a change (a faster
shortcut, a fused conv-BN) lands in one place.
"""
from __future__ import annotations

import minidl.functional as F
import minidl.nn as nn
from minidl import Tensor
from minidl.nn import init


# ---------------------------------------------------------------------------------------------
# argument checks (errors at the constructor, naming the model and the argument)

def check_positive_int(model, name, value):
    """Raise ValueError unless ``value`` is an int >= 1."""
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ValueError(f"{model}: '{name}' must be a positive int, got {value!r}")
    return value


def check_choice(model, name, value, choices):
    """Raise ValueError unless ``value`` is one of ``choices``."""
    if value not in choices:
        raise ValueError(f"{model}: '{name}' must be one of {', '.join(map(repr, choices))}, "
                         f"got {value!r}")
    return value


def check_rate(model, name, value):
    """Raise ValueError unless 0 <= value < 1 (a dropout probability)."""
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 <= value < 1:
        raise ValueError(f"{model}: '{name}' must be a number in [0, 1), got {value!r}")
    return float(value)


def check_int_list(model, name, value):
    """Raise ValueError unless ``value`` is a non-empty list/tuple of positive ints."""
    if not isinstance(value, (list, tuple)) or not value:
        raise ValueError(f"{model}: '{name}' must be a non-empty list of positive ints, "
                         f"got {value!r}")
    for v in value:
        check_positive_int(model, name, v)
    return tuple(value)


# ---------------------------------------------------------------------------------------------
# layers

def conv3x3(in_channels, out_channels, stride=1, groups=1):
    """3x3 convolution, padding 1, no bias (a BatchNorm follows it everywhere in the zoo)."""
    return nn.Conv2d(in_channels, out_channels, 3, stride=stride, padding=1, groups=groups,
                     bias=False)


def conv1x1(in_channels, out_channels, stride=1):
    """1x1 convolution, no bias."""
    return nn.Conv2d(in_channels, out_channels, 1, stride=stride, bias=False)


class ConvBNReLU(nn.Module):
    """conv (no bias) -> BatchNorm2d -> ReLU (the ReLU can be left out with ``relu=False``).

    Args:
        in_channels, out_channels, kernel_size, stride, padding, groups: as in nn.Conv2d.
        relu: apply the ReLU (False for the last conv of a residual branch).
        relu_max: clamp the ReLU's output at this value too (6 for ReLU6), or None.

    Shapes: (N, in_channels, H, W) -> (N, out_channels, OH, OW).
    """

    def __init__(self, in_channels, out_channels, kernel_size=3, stride=1, padding=None,
                 groups=1, relu=True, relu_max=None):
        super().__init__()
        padding = kernel_size // 2 if padding is None else padding
        self.conv = nn.Conv2d(in_channels, out_channels, kernel_size, stride=stride,
                              padding=padding, groups=groups, bias=False)
        # with the ReLU, one fused op (same parameters and state_dict keys as BatchNorm2d)
        self.bn = (nn.BatchNormReLU2d(out_channels, max_value=relu_max) if relu
                   else nn.BatchNorm2d(out_channels))
        self.relu = relu

    def forward(self, x):
        return self.bn(self.conv(x))

    def extra_repr(self):
        return "" if self.relu else "relu=False"


class BNReLU(nn.Module):
    """BatchNorm2d -> ReLU: the pre-activation of pre-act ResNets and DenseNets.

    Shapes: (N, C, H, W) -> (N, C, H, W).
    """

    def __init__(self, num_features):
        super().__init__()
        self.bn = nn.BatchNormReLU2d(num_features)          # BN and ReLU as one fused op

    def forward(self, x):
        return self.bn(x)


class ShortcutA(nn.Module):
    """Option-A shortcut: identity, subsampled x[:, :, ::s, ::s] on stride s, with the extra
    channels zero-padded (after the input channels). Parameter-free.

    Shapes: (N, C_in, H, W) -> (N, C_out, ceil(H / s), ceil(W / s)), C_out >= C_in.

    Reference: He et al., Deep Residual Learning for Image Recognition, CVPR 2016, Sec. 3.3
    and 4.2 (the CIFAR-10 networks use option A).
    """

    def __init__(self, in_channels, out_channels, stride=1):
        super().__init__()
        if out_channels < in_channels:
            raise ValueError(f"ShortcutA: cannot shrink channels ({in_channels} -> "
                             f"{out_channels}); use a projection shortcut (option B)")
        self.in_channels, self.out_channels, self.stride = in_channels, out_channels, stride

    def forward(self, x):
        if self.stride != 1:
            x = x[:, :, ::self.stride, ::self.stride]
        extra = self.out_channels - self.in_channels
        if extra:
            x = F.pad(x, (0, 0, 0, 0, 0, extra))          # zeros on the channel axis
        return x

    def extra_repr(self):
        return f"{self.in_channels}, {self.out_channels}, stride={self.stride}"


def projection(in_channels, out_channels, stride=1, bn=True):
    """Option-B shortcut: 1x1 conv (stride ``stride``) followed by BatchNorm (unless ``bn`` is
    False, as in pre-activation networks, whose next block normalizes the sum)."""
    if not bn:
        return conv1x1(in_channels, out_channels, stride)
    return nn.Sequential(conv1x1(in_channels, out_channels, stride), nn.BatchNorm2d(out_channels))


SHORTCUTS = ("A", "B", "none")


def make_shortcut(kind, in_channels, out_channels, stride=1, bn=True):
    """The shortcut of one residual block, or None for a plain (shortcut-free) block.

    ``kind`` is 'A' (zero-padding identity), 'B' (projection where the shape changes, identity
    elsewhere) or 'none'. ``bn`` is passed to the projection.
    """
    if kind == "none":
        return None
    if in_channels == out_channels and stride == 1:
        return nn.Identity()
    if kind == "A":
        return ShortcutA(in_channels, out_channels, stride)
    return projection(in_channels, out_channels, stride, bn=bn)


def dropout(p):
    """nn.Dropout(p), or nn.Identity() when p is 0 (nothing to draw, nothing to print)."""
    return nn.Dropout(p) if p > 0 else nn.Identity()


STEMS = ("cifar", "imagenet")


def imagenet_stem(in_channels, out_channels):
    """ImageNet stem: 7x7 stride-2 conv -> BN -> ReLU -> 3x3 stride-2 max-pool (H/4, W/4).

    Reference: He et al. 2016, Table 1 (conv1 and the pool of conv2_x).
    """
    return nn.Sequential(ConvBNReLU(in_channels, out_channels, 7, stride=2, padding=3),
                         nn.MaxPool2d(3, stride=2, padding=1))


def global_avg_pool(x):
    """Mean over the spatial axes: (N, C, H, W) -> (N, C)."""
    return F.mean(x, dim=(2, 3))


class Classifier(nn.Module):
    """Global average pool -> (dropout) -> Linear: the head of every fully convolutional net.

    Shapes: (N, in_features, H, W) -> (N, num_classes).
    """

    def __init__(self, in_features, num_classes, drop_rate=0.0):
        super().__init__()
        self.dropout = dropout(drop_rate)
        self.fc = nn.Linear(in_features, num_classes)

    def forward(self, x):
        return self.fc(self.dropout(global_avg_pool(x)))   # (N, C) -> (N, num_classes)


class ConvNet(nn.Module):
    """Base of every network in the zoo: ``features`` then ``classifier``.

    Subclasses call ``super().__init__(name, num_classes, in_channels)`` and then assign
    ``self.features`` ((N, in_channels, H, W) -> (N, F, h, w)) and ``self.classifier``
    (-> (N, num_classes)).
    """

    def __init__(self, name, num_classes, in_channels):
        super().__init__()
        self.num_classes = check_positive_int(name, "num_classes", num_classes)
        self.in_channels = check_positive_int(name, "in_channels", in_channels)

    def forward(self, x):
        if not isinstance(x, Tensor):
            raise TypeError(f"{type(self).__name__}: expected a Tensor, got {type(x).__name__}")
        if x.ndim != 4 or x.shape[1] != self.in_channels:
            raise ValueError(f"{type(self).__name__}: expected input of shape (N, "
                             f"{self.in_channels}, H, W), got {tuple(x.shape)}")
        return self.classifier(self.features(x))


# ---------------------------------------------------------------------------------------------
# initialization

def init_weights(model, linear_std=None):
    """He initialization as in the reference implementations, in place; returns ``model``.

    - Conv2d: kaiming_normal_(mode='fan_out', nonlinearity='relu'), i.e. N(0, 2 / (k*k*C_out))
      (fb.resnet.torch, torchvision, the DenseNet Lua code); conv biases 0.
    - BatchNorm: weight 1, bias 0.
    - Linear: PyTorch's default uniform weight, bias 0; or N(0, linear_std^2) weights when
      ``linear_std`` is given (VGG / AlexNet style).

    Reference: He et al., Delving Deep into Rectifiers, ICCV 2015.
    """
    for m in model.modules():
        if isinstance(m, nn.Conv2d):
            init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
            if m.bias is not None:
                init.zeros_(m.bias)
        elif isinstance(m, (nn.BatchNorm1d, nn.BatchNorm2d)):
            if m.weight is not None:
                init.ones_(m.weight)
                init.zeros_(m.bias)
        elif isinstance(m, nn.Linear):
            if linear_std is not None:
                init.normal_(m.weight, 0.0, linear_std)
            if m.bias is not None:
                init.zeros_(m.bias)
    return model
