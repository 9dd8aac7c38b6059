"""clip / hardtanh / relu6 on the host in cache-sized blocks on the host threads
(functional.elementwise._host_blocks): with tiny blocks and forced threads, the same values
and gradients as whole-array NumPy, on channel-major and sliced inputs, values at the bounds
included, float64 gradchecks with random upstream gradients."""
import numpy as np
import pytest

import minidl
import minidl.functional as F
from minidl.functional import elementwise
from tests.helpers import check_op


@pytest.fixture
def small_blocks(monkeypatch, threaded):
    """Blocks of 7 values, on 3 threads (conftest's ``threaded``)."""
    monkeypatch.setattr(elementwise, "_BLOCK", 7)


def _data(rng, shape):
    x = rng.standard_normal(shape) * 4
    x.reshape(-1)[::5] = 6.0                 # on relu6's upper kink
    x.reshape(-1)[1::7] = 0.0                # on its lower one
    return x


@pytest.mark.parametrize("fn,lo,hi,strict", [
    (lambda x: F.relu6(x), 0.0, 6.0, True),
    (lambda x: F.hardtanh(x, -2.0, 1.5), -2.0, 1.5, True),
    (lambda x: F.clip(x, 0.0, 6.0), 0.0, 6.0, False),
    (lambda x: F.clip(x, min=-1.0), -1.0, None, False),
    (lambda x: F.clip(x, max=0.5), None, 0.5, False),
])
@pytest.mark.parametrize("layout", ["contiguous", "channel-major", "sliced"])
def test_blocks_give_whole_array_results(rng, small_blocks, fn, lo, hi, strict, layout):
    x = _data(rng, (5, 3, 4, 6))
    if layout == "channel-major":
        x = np.ascontiguousarray(x.transpose(1, 0, 2, 3)).transpose(1, 0, 2, 3)
    elif layout == "sliced":
        x = x[:, :, ::2, 1:]
    gy = rng.standard_normal(x.shape)
    t = minidl.tensor(x, requires_grad=True)
    t.data = x                                # keep the strides as they are
    y = fn(t)
    y.backward(minidl.tensor(gy))
    np.testing.assert_array_equal(y.numpy(), np.clip(x, lo, hi))
    inside = np.ones(x.shape, bool)
    if lo is not None:
        inside &= (x > lo) if strict else (x >= lo)
    if hi is not None:
        inside &= (x < hi) if strict else (x <= hi)
    np.testing.assert_array_equal(t.grad.numpy(), gy * inside)


def test_gradchecks_in_blocks(rng, small_blocks):
    x = rng.standard_normal((4, 3, 5)) * 4        # (no value at a kink: derivative defined)
    check_op(F.relu6, [x], lambda a: np.clip(a, 0, 6))
    check_op(lambda a: F.clip(a, -1.0, 2.0), [x], lambda a: np.clip(a, -1, 2))


def test_float32_and_integer_inputs_in_blocks(rng, small_blocks):
    x = (rng.standard_normal((6, 4, 3)) * 5).astype(np.float32)
    assert F.relu6(minidl.tensor(x)).dtype == np.float32
    n = rng.integers(-9, 9, (6, 4, 3))
    np.testing.assert_array_equal(F.clip(minidl.tensor(n), -3, 4).numpy(), np.clip(n, -3, 4))
