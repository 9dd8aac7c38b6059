"""nets: the model zoo (ResNet, DenseNet, Wide ResNet, MobileNetV2 and the CNNs they are compared
with), built only from minidl's public API.

    import nets
    model = nets.get_model("resnet20")                       # the paper's configuration
    tiny = nets.get_model("resnet20", depth=8, width=4)      # options override it
    nets.list_models()                                       # every registered name

A name picks a family and its paper configuration; the options of ``get_model`` override any
argument of that family's constructor (e.g. ``shortcut='B'``, ``depth``, ``width``,
``growth_rate``, ``widen_factor``, ``width_mult``, ``stem='imagenet'``, ``drop_rate``,
``in_channels``).
"""
from __future__ import annotations

import inspect
from functools import partial

from .alexnet import AlexNet
from .densenet import DenseNet, cifar_densenet
from .googlenet import GoogLeNet
from .mobilenet import MobileNetV2
from .resnet import CifarResNet, PlainNet, PreActResNet
from .resnet_imagenet import ResNet
from .resnext import ResNeXt
from .se_resnet import SEResNet
from .vgg import VGG
from .vit import VisionTransformer
from .wide_resnet import WideResNet

__all__ = ["get_model", "list_models", "model_options", "AlexNet", "CifarResNet", "DenseNet",
           "GoogLeNet", "MobileNetV2", "PlainNet", "PreActResNet", "ResNeXt", "ResNet",
           "SEResNet", "VGG", "VisionTransformer", "WideResNet", "cifar_densenet"]

_REGISTRY = {}
for _depth in (20, 32, 44, 56, 110, 1202):
    _REGISTRY[f"resnet{_depth}"] = partial(CifarResNet, depth=_depth)
for _depth in (20, 32, 44, 56, 110):
    _REGISTRY[f"plain{_depth}"] = partial(PlainNet, depth=_depth)
_REGISTRY.update({
    "preact_resnet110": partial(PreActResNet, depth=110),
    "preact_resnet164": partial(PreActResNet, depth=164, bottleneck=True),
    "resnet18": partial(ResNet, layers=(2, 2, 2, 2)),
    "resnet34": partial(ResNet, layers=(3, 4, 6, 3)),
    "resnet50": partial(ResNet, layers=(3, 4, 6, 3), bottleneck=True),
    "densenet40": partial(cifar_densenet, depth=40, growth_rate=12),
    "densenet_bc_100": partial(cifar_densenet, depth=100, growth_rate=12, bottleneck=True,
                               compression=0.5),
    "densenet121": partial(DenseNet, block_config=(6, 12, 24, 16), growth_rate=32),
    "vgg11_bn": partial(VGG, depth=11),
    "vgg16_bn": partial(VGG, depth=16),
    "alexnet": AlexNet,
    "googlenet": GoogLeNet,
    "resnext29": partial(ResNeXt, depth=29, cardinality=8, bottleneck_width=16),
    "se_resnet20": partial(SEResNet, depth=20),
    "wrn16_4": partial(WideResNet, depth=16, widen_factor=4),
    "wrn16_8": partial(WideResNet, depth=16, widen_factor=8),
    "wrn28_10": partial(WideResNet, depth=28, widen_factor=10),
    "wrn40_4": partial(WideResNet, depth=40, widen_factor=4),
    "mobilenetv2": MobileNetV2,
    "vit": VisionTransformer,                         # CIFAR ViT: patch 4, dim 192, depth 9
    "vit_tiny": partial(VisionTransformer, dim=192, depth=12, heads=3, mlp_dim=768),  # DeiT-Ti
})


def list_models():
    """The registered model names, sorted."""
    return sorted(_REGISTRY)


def model_options(name):
    """The options ``get_model(name, ...)`` accepts, with their defaults for that name."""
    builder = _lookup(name)
    return {p.name: p.default for p in inspect.signature(builder).parameters.values()
            if p.name != "num_classes"}


def _lookup(name):
    if name not in _REGISTRY:
        raise ValueError(f"get_model: unknown model {name!r}; known models: "
                         f"{', '.join(list_models())}")
    return _REGISTRY[name]


def get_model(name, num_classes=10, **options):
    """Build the registered model ``name`` with ``num_classes`` outputs.

    Args:
        name: one of ``list_models()``.
        num_classes: output classes (10 for CIFAR-10).
        **options: arguments of the family's constructor, overriding the name's defaults
            (see ``model_options(name)``).

    Returns:
        A freshly initialized ``minidl.nn.Module`` in training mode, float32 on the CPU.

    Raises:
        ValueError: unknown name (the message lists the known ones) or a bad option value.
        TypeError: an option the family does not have (the message lists the ones it has).
    """
    builder = _lookup(name)
    accepted = model_options(name)
    unknown = sorted(set(options) - set(accepted))
    if unknown:
        raise TypeError(f"get_model: {name!r} has no option(s) {', '.join(unknown)}; its "
                        f"options are: {', '.join(accepted)}")
    return builder(num_classes=num_classes, **options)
