"""F.checkpoint (recompute in backward) and the memory-efficient DenseNet built on it."""
import tracemalloc

import numpy as np
import pytest

import minidl
import minidl.functional as F
import minidl.nn as nn
import nets
from nets.densenet import DenseBlock


def _layer():
    bn = nn.BatchNorm2d(6).double()
    conv = nn.Conv2d(6, 4, 3, padding=1, bias=False).double()

    def f(a, b):
        return F.dropout(conv(F.relu(bn(F.cat([a, b], 1)))), 0.3)
    return f, bn, list(bn.parameters()) + list(conv.parameters())


def _inputs(rng):
    return [minidl.tensor(rng.standard_normal(s), requires_grad=True)
            for s in ((2, 2, 5, 5), (2, 4, 5, 5))]


def test_gradcheck_with_dropout_and_batchnorm(rng):
    f, bn, params = _layer()
    a, b = _inputs(rng)

    def g(a, b, *ps):
        minidl.manual_seed(5)                      # the same dropout mask on every call
        return F.checkpoint(f, [a, b], params, list(bn.buffers()))
    assert minidl.gradcheck(g, [a, b] + params)


def test_same_values_gradients_and_running_stats_as_without_it(rng):
    results = []
    for use in (False, True):
        minidl.manual_seed(0)
        f, bn, params = _layer()
        a, b = _inputs(np.random.default_rng(1))
        minidl.manual_seed(5)
        y = F.checkpoint(f, [a, b], params, list(bn.buffers())) if use else f(a, b)
        y.backward(minidl.tensor(np.random.default_rng(2).standard_normal(y.shape)))
        results.append([y.numpy()] + [t.grad.numpy() for t in [a, b] + params]
                       + [t.numpy() for t in bn.buffers()])
    for u, v in zip(*results):
        np.testing.assert_array_equal(u, v)
    assert results[1][-1] == 1                    # num_batches_tracked: updated once


def test_without_grad_it_is_a_plain_call():
    f, bn, params = _layer()
    with minidl.no_grad():
        y = F.checkpoint(lambda t: t * 2.0, [minidl.ones(2, requires_grad=True)])
    assert y.grad_fn is None and y.tolist() == [2.0, 2.0]


def test_bad_arguments():
    with pytest.raises(TypeError, match="checkpoint: 'inputs' must be a list of Tensors"):
        F.checkpoint(lambda t: t, minidl.ones(2))
    with pytest.raises(TypeError, match=r"checkpoint: argument 'parameters\[0\]'"):
        F.checkpoint(lambda t: t, [minidl.ones(2)], [3.0])


def test_memory_efficient_densenet_matches_the_plain_one():
    outs = []
    for eff in (False, True):
        minidl.manual_seed(0)
        m = nets.get_model("densenet_bc_100", depth=10, growth_rate=4, drop_rate=0.2,
                           memory_efficient=eff)
        x = minidl.tensor(np.random.default_rng(0).standard_normal((2, 3, 8, 8)),
                          dtype=minidl.float32)
        minidl.manual_seed(1)
        y = m(x)
        y.backward(minidl.ones_like(y))
        outs.append([y.numpy()] + [p.grad.numpy() for p in m.parameters()])
    for u, v in zip(*outs):
        np.testing.assert_allclose(u, v, rtol=1e-5, atol=1e-6)


def _peak_mib(layers, efficient):
    minidl.manual_seed(0)
    block = DenseBlock(layers, 16, 8, bottleneck=True, memory_efficient=efficient)
    x = minidl.randn(8, 16, 8, 8, requires_grad=True)
    tracemalloc.start()
    base = tracemalloc.get_traced_memory()[0]
    y = block(x)
    y.backward(minidl.ones_like(y))
    peak = tracemalloc.get_traced_memory()[1] - base
    tracemalloc.stop()
    return peak / 2 ** 20


def test_memory_grows_linearly_not_quadratically_with_depth():
    # 8 -> 32 layers: linear growth gives about 4x (measured 4.0), quadratic more (8.5)
    eff = _peak_mib(32, True) / _peak_mib(8, True)
    plain = _peak_mib(32, False) / _peak_mib(8, False)
    assert eff < 5.0 < 7.0 < plain, (eff, plain)
