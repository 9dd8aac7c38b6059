"""Whole-network float64 gradchecks of every registered model, at a tiny configuration.

Each check runs the full network in training mode (BatchNorm with batch statistics, dropout
active with a mask fixed by reseeding before every forward), with batch 2, a random upstream
gradient, and checks the input and every parameter together.

Mode choice: full mode builds the numerical Jacobian with two forwards per checked element, so
it is used only where the whole network has a few hundred parameters (a second or two); every
other network uses fast mode (random directional derivatives over all parameters and the input
at once, 2 forwards + 1 backward per direction) with several directions. A wrong gradient for
any one tensor changes the directional derivative in almost every random direction, so a few
directions catch it; float64 central differences are accurate to ~1e-9 here, so the tolerance
can be tighter than the default.

The step is 1e-7 rather than the default 1e-6: tiny networks have BatchNorms over nearly dead
channels whose 1/std amplifies the step, and a larger step then crosses a ReLU kink now and
then (seen as a numerical derivative that moves toward the analytic one as the step shrinks);
float64 round-off at 1e-7 is still ~1e-9 relative.
"""
import numpy as np
import pytest

import minidl
import nets

# name -> (options of the tiny configuration, input height/width, full mode?)
TINY = {
    "resnet20": (dict(depth=8, width=1, in_channels=1), 6, True),
    "resnet32": (dict(depth=8, width=2, shortcut="B"), 8, False),
    "resnet44": (dict(depth=14, width=2), 8, False),
    "resnet56": (dict(depth=8, width=3, in_channels=1), 8, False),
    "resnet110": (dict(depth=8, width=2), 12, False),
    "resnet1202": (dict(depth=8, width=2, shortcut="B", in_channels=1), 8, False),
    "plain20": (dict(depth=8, width=2), 8, False),
    "plain32": (dict(depth=14, width=2), 8, False),
    "plain44": (dict(depth=8, width=3), 8, False),
    "plain56": (dict(depth=8, width=2, in_channels=1), 12, False),
    "plain110": (dict(depth=8, width=2), 8, False),
    "preact_resnet110": (dict(depth=8, width=2), 8, False),
    "preact_resnet164": (dict(depth=11, width=2), 8, False),
    "resnet18": (dict(layers=(1, 1, 1, 1), width=2), 8, False),
    "resnet34": (dict(layers=(1, 2, 1, 1), width=2, stem="imagenet"), 16, False),
    "resnet50": (dict(layers=(1, 1, 1, 1), width=2, stem="imagenet"), 16, False),
    "densenet40": (dict(depth=7, growth_rate=2, num_init_features=3, in_channels=1), 8, True),
    "densenet_bc_100": (dict(depth=16, growth_rate=2, drop_rate=0.2), 8, False),
    "densenet121": (dict(block_config=(1, 2, 1, 1), growth_rate=2), 16, False),
    "vgg11_bn": (dict(width=1), 32, False),
    "vgg16_bn": (dict(width=1, drop_rate=0.0), 32, False),
    "alexnet": (dict(width=1, image_size=8), 8, False),
    "googlenet": (dict(width=4), 8, False),
    "resnext29": (dict(depth=11, width=2, cardinality=2, bottleneck_width=2), 8, False),
    "se_resnet20": (dict(depth=8, width=2, reduction=2), 8, False),
    "vit": (dict(image_size=8, dim=8, depth=2, heads=2, mlp_dim=16, dropout=0.1), 8, False),
    "vit_tiny": (dict(image_size=8, dim=6, depth=1, heads=3, mlp_dim=12), 8, False),
    "wrn16_4": (dict(depth=10, widen_factor=2, width=2, drop_rate=0.3), 8, False),
    "wrn16_8": (dict(depth=16, widen_factor=1, width=2), 8, False),
    "wrn28_10": (dict(depth=10, widen_factor=3, width=1, in_channels=1), 8, False),
    "wrn40_4": (dict(depth=10, widen_factor=2, width=2), 12, False),
    "mobilenetv2": (dict(width_mult=0.125, round_nearest=1, drop_rate=0.2,
                         settings=[[1, 16, 1, 1], [6, 24, 2, 2], [6, 32, 2, 1]]), 8, False),
}
N_DIRECTIONS = 8
EPS = 1e-7
NUM_CLASSES = 3


def test_every_registered_model_has_a_tiny_config():
    assert sorted(TINY) == nets.list_models()


def gradcheck_network(model, x, full, seed=0):
    """Float64 gradcheck of model(x) w.r.t. x and all parameters, in training mode.

    The parameters are jittered first: at the initialization point the biases are exactly 0,
    so a ReLU whose inputs are all zero (dead units, dropped-out features) sits exactly on its
    kink, where finite differences and the subgradient disagree.
    """
    model.double().train()
    x = x.double().requires_grad_()
    params = list(model.parameters())
    with minidl.no_grad():
        for p in params:
            p.data += 0.1 * minidl.randn(*p.shape, dtype=p.dtype).data

    def fn(x, *params):
        minidl.manual_seed(1234)      # the same dropout masks in every forward
        return model(x)

    if full:
        return minidl.gradcheck(fn, [x] + params, eps=EPS, atol=1e-6, rtol=1e-4, seed=seed)
    return minidl.gradcheck(fn, [x] + params, eps=EPS, atol=1e-7, rtol=1e-4, fast_mode=True,
                            n_directions=N_DIRECTIONS, seed=seed)


@pytest.mark.parametrize("name", sorted(TINY))
def test_whole_network_gradcheck(name):
    options, size, full = TINY[name]
    model = nets.get_model(name, num_classes=NUM_CLASSES, **options)
    x = minidl.randn(2, model.in_channels, size, size)
    assert gradcheck_network(model, x, full)


def test_gradcheck_catches_a_wrong_parameter_gradient():
    """The fast-mode check is not vacuous: corrupt one BN bias gradient and it fails."""
    model = nets.get_model("resnet20", num_classes=NUM_CLASSES, depth=8, width=2)
    bn = model.features.stage2[0].conv2.bn

    class Doubled(minidl.Function):
        def forward(self, b):
            return b

        def backward(self, gb):
            return 2.0 * gb

    forward = type(bn).forward

    def wrong(x):
        y = forward(bn, x)
        bias = bn.bias.reshape(1, -1, 1, 1)
        return y - bias + Doubled()(bn.bias).reshape(1, -1, 1, 1)

    bn.forward = wrong
    x = minidl.randn(2, 3, 8, 8)
    with pytest.raises(minidl.GradcheckError):
        gradcheck_network(model, x, full=False)
    assert np.isfinite(model(x.double()).numpy()).all()
