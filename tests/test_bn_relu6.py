"""Batch norm with ReLU6 fused (F.batch_norm_relu(max_value=6), nn.BatchNormReLU2d(max_value=6),
MobileNetV2's conv-BN-ReLU6): the same values, gradients and running statistics as
hardtanh(batch_norm(x), 0, 6), in training and eval, on the CPU (one fused op) and the GPU
(the batch-norm kernels, then a clamp)."""
import numpy as np
import pytest

import minidl
import minidl.functional as F
import minidl.nn as nn
from nets.mobilenet import ConvBNReLU6
from tests.helpers import check_op, host, to_tensor


def _inputs(rng):
    x = rng.standard_normal((4, 3, 5, 6)) * 3
    w = rng.standard_normal(3) * 3 + 4          # scales that push many values past 6
    b = rng.standard_normal(3) + 2
    return x, w, b


@pytest.mark.parametrize("training", [True, False])
def test_fused_relu6_matches_hardtanh_of_batch_norm(device, rng, training):
    x, w, b = _inputs(rng)
    rm, rv = rng.standard_normal(3), rng.random(3) + 0.5

    def stats():
        return to_tensor(rm, device), to_tensor(rv, device)

    def fused(x, w, b):
        return F.batch_norm_relu(x, *stats(), w, b, training, max_value=6.0)

    def composed(x, w, b):
        return F.hardtanh(F.batch_norm(x, *stats(), w, b, training), 0.0, 6.0)

    ref = [t.astype(np.float64) for t in (x, w, b)]
    expected = host(composed(*[to_tensor(a, device) for a in ref]))
    assert (expected == 6).any() and (expected == 0).any()
    assert ((expected > 0) & (expected < 6)).any()
    check_op(fused, [x, w, b], lambda *a: expected, device)
    # gradients equal the composition's (random upstream gradient)
    gy = to_tensor(rng.standard_normal(x.shape), device)
    grads = []
    for fn in (fused, composed):
        ts = [to_tensor(a, device, requires_grad=True) for a in ref]
        fn(*ts).backward(gy)
        grads.append([host(t.grad) for t in ts])
    for a, c in zip(*grads):
        np.testing.assert_allclose(a, c, rtol=1e-12, atol=1e-12)


def test_fused_relu6_updates_running_statistics_as_batch_norm(device, rng):
    x, w, b = (to_tensor(a, device) for a in _inputs(rng))
    runs = []
    for fn in (lambda *a: F.batch_norm_relu(*a, max_value=6.0), F.batch_norm):
        rm, rv = to_tensor(np.zeros(3), device), to_tensor(np.ones(3), device)
        fn(x, rm, rv, w, b, True, 0.3)
        runs.append((host(rm), host(rv)))
    np.testing.assert_allclose(runs[0][0], runs[1][0], rtol=1e-14)
    np.testing.assert_allclose(runs[0][1], runs[1][1], rtol=1e-14)


def test_module_keys_repr_and_bad_max_value():
    m = nn.BatchNormReLU2d(4, max_value=6)
    assert list(m.state_dict()) == list(nn.BatchNorm2d(4).state_dict())
    assert repr(m).endswith("max_value=6.0)") and "max_value" not in repr(nn.BatchNormReLU2d(4))
    for bad in (0, -1.0):
        with pytest.raises(ValueError, match="BatchNormReLU2d: 'max_value'"):
            nn.BatchNormReLU2d(4, max_value=bad)
    x = minidl.randn(2, 4, 3, 3)
    with pytest.raises(ValueError, match="batch_norm_relu: 'max_value'"):
        F.batch_norm_relu(x, None, None, training=True, max_value=0)
    with pytest.raises(TypeError, match="batch_norm_relu: 'max_value'"):
        F.batch_norm_relu(x, None, None, training=True, max_value="6")


@pytest.mark.parametrize("train", [True, False])
def test_mobilenet_block_equals_conv_bn_then_relu6(rng, train):
    """ConvBNReLU6 (fused) against its own submodules run one after the other."""
    minidl.manual_seed(0)
    block = ConvBNReLU6(3, 8, kernel_size=3, stride=1, groups=1).double()
    block.bn.weight.data[...] = rng.standard_normal(8) * 3 + 4
    block.train(train)
    x = minidl.tensor(rng.standard_normal((2, 3, 6, 6)) * 2)
    bn = block.bn
    before = [bn.running_mean.numpy().copy(), bn.running_var.numpy().copy()]
    y = block(x).numpy()
    after = [bn.running_mean.numpy().copy(), bn.running_var.numpy().copy()]
    for t, v in zip((bn.running_mean, bn.running_var), before):
        t.data[...] = v                                  # the same statistics for the reference
    z = F.batch_norm(block.conv(x), bn.running_mean, bn.running_var, bn.weight, bn.bias,
                     train, bn.momentum, bn.eps)
    np.testing.assert_allclose(y, F.relu6(z).numpy(), rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(after[0], bn.running_mean.numpy(), rtol=1e-12)
    assert (y == 6).any() and (y == 0).any()
