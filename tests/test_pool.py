"""kernels.pool (buffers kept from a forward for its backward) and conv2d's kept columns:
same gradients as recomputing them, nothing held under no_grad or after the graph is gone,
the byte limit respected, buffers reused per owner and dropped with it."""
import gc

import numpy as np
import pytest

import minidl
import minidl.functional as F
from minidl import kernels
from tests import reference as R
from tests.helpers import check_op
from tests.test_conv import CASES, _args


@pytest.fixture
def pool_serves_all():
    """Serve requests of any size (the default floor of 1 MiB would skip these small tests)."""
    old = kernels.pool.set_limit(1 << 30, 0)
    yield
    kernels.pool.set_limit(*old)


def _lent():
    return kernels.pool.stats()[0]


@pytest.mark.parametrize("case", CASES)
def test_kept_columns_give_the_same_gradients(pool_serves_all, rng, case):
    arrays, kw = _args(case, rng)
    check_op(lambda x, w, b=None: F.conv2d(x, w, b, **kw), arrays,
             lambda x, w, b=None: R.conv2d(x, w, b, **kw))
    grads = []
    for limit in (1 << 30, 0):          # kept, then recomputed
        kernels.pool.set_limit(limit, 0)
        ts = [minidl.tensor(a, requires_grad=True) for a in arrays]
        y = F.conv2d(*ts, **kw)
        y.backward(minidl.tensor(np.cos(np.arange(y.numel())).reshape(y.shape)))
        grads.append([t.grad.numpy() for t in ts])
        assert _lent() == 0
    for a, b in zip(*grads):
        np.testing.assert_array_equal(a, b)


def test_nothing_is_held_without_a_backward(pool_serves_all, rng):
    x = minidl.tensor(rng.standard_normal((2, 3, 6, 6)), dtype=minidl.float32)
    w = minidl.tensor(rng.standard_normal((4, 3, 3, 3)), dtype=minidl.float32,
                      requires_grad=True)
    with minidl.no_grad():
        F.conv2d(x, w, padding=1)
    assert _lent() == 0
    F.conv2d(x, w.detach(), padding=1)              # no weight gradient wanted: not kept
    assert _lent() == 0
    y = F.conv2d(x, w, padding=1)
    assert _lent() > 0
    del y                                           # graph dropped without a backward
    gc.collect()
    assert _lent() == 0


def test_idle_worker_threads_hold_no_buffer(pool_serves_all, rng):
    """A row-path conv large enough to run on the kernel threads: after its graph is dropped,
    nothing may stay lent, though the workers' last parts captured its buffers."""
    x = minidl.tensor(rng.standard_normal((4, 8, 32, 32)))
    w = minidl.tensor(rng.standard_normal((8, 8, 3, 3)), requires_grad=True)
    F.conv2d(x, w, padding=1).sum().backward()
    y = F.conv2d(x, w, padding=1)
    assert _lent() > 0
    del y
    gc.collect()
    assert _lent() == 0


def test_second_backward_recomputes(pool_serves_all, rng):
    x = minidl.tensor(rng.standard_normal((2, 3, 6, 6)), requires_grad=True)
    w = minidl.tensor(rng.standard_normal((4, 3, 3, 3)), requires_grad=True)
    y = (F.conv2d(x, w, padding=1) ** 2).sum()
    y.backward(retain_graph=True)
    first = w.grad.numpy()
    y.backward()
    np.testing.assert_allclose(w.grad.numpy(), 2 * first, rtol=1e-12)
    assert _lent() == 0


def test_limit_is_respected_and_falls_back(rng):
    x = minidl.tensor(rng.standard_normal((2, 3, 6, 6)), requires_grad=True)
    ws = [minidl.tensor(rng.standard_normal((3, 3, 3, 3)), requires_grad=True)
          for _ in range(3)]
    # bytes of one layer's float64 row columns (KW, C, (1 + N*(H + 1))*OW): what the CPU keeps
    one = 8 * int(np.prod(kernels.row_unfold_shape((2, 3, 6, 6), (3, 3), (1, 1), (1, 1))))
    old = kernels.pool.set_limit(2 * one, 0)
    try:
        y = x
        for w in ws:
            y = F.conv2d(y, w, padding=1)
        assert _lent() == 2 * one                   # the third layer recomputes
        y.backward(minidl.ones_like(y))
        assert kernels.pool.stats()[:2] == (0, 2 * one)
        kept = [w.grad.numpy() for w in ws]
        kernels.pool.set_limit(0, 0)
        for w in ws:
            w.grad = None
        y = x
        for w in ws:
            y = F.conv2d(y, w, padding=1)
        y.backward(minidl.ones_like(y))
        for a, w in zip(kept, ws):
            np.testing.assert_array_equal(a, w.grad.numpy())
    finally:
        kernels.pool.set_limit(*old)


def test_buffers_are_reused_per_owner_and_dropped_with_it(pool_serves_all):
    owner, other = np.zeros(3), np.zeros(3)
    a = kernels.pool.take((4, 5), np.float32, owner)
    kernels.pool.give(a)
    b = kernels.pool.take((5, 4), np.float32, owner)
    assert b.base is a.base and b.shape == (5, 4)   # same memory, new shape
    c = kernels.pool.take((4, 5), np.float32, other)
    assert c.base is not a.base
    kernels.pool.give(b)
    kernels.pool.give(c)
    assert kernels.pool.stats()[:2] == (0, 2 * 80)
    del owner
    gc.collect()
    assert kernels.pool.stats()[:2] == (0, 80)
    with pytest.raises(ValueError, match="pool: giving back an array the pool did not lend"):
        kernels.pool.give(np.zeros(3))


def test_floor_and_non_host_owners():
    assert kernels.pool.take((8,), np.float32, np.zeros(1)) is None     # under 1 MiB
    assert kernels.pool.take((1 << 20,), np.float32, object()) is None  # not a host array
    with pytest.raises(ValueError, match="pool.set_limit: 'nbytes' must be a non-negative"):
        kernels.pool.set_limit(-1)
