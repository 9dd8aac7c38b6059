"""Boolean-mask indexing on a GPU: the mask becomes integer indices once, in forward (one read
of the number of selected entries), which backward reuses (no second read, an assignment
instead of a scatter-add); values, gradients and shape errors are the CPU's."""
import numpy as np
import pytest

import minidl
from tests.helpers import host, to_tensor


def _cases(rng):
    x = rng.standard_normal((3, 4, 5))
    return x, [
        lambda t, m: t[m > 0],                            # a full-shape mask
        lambda t, m: t[:, m[1, :, 0] > 0],                # after a slice
        lambda t, m: t[..., m[0, 0] > 0],                 # after an ellipsis
        lambda t, m: t[m[:, 0, 0] > -9, 1:3],             # before a slice
        lambda t, m: t[None, m[:, :, 0] > 0],             # a 2-D mask after None
        lambda t, m: t[m[:, 0, 0] > 0, [0, 0, 2]][:1],    # with an integer array (repeats)
    ]


@pytest.mark.parametrize("case", range(6))
def test_mask_indexing_matches_the_cpu(device, rng, case):
    x, cases = _cases(rng)
    fn = cases[case]
    out = []
    for d in ("cpu", device):
        t = to_tensor(x, d, requires_grad=True)
        y = fn(t, t.detach())
        y.backward(to_tensor(np.arange(int(np.prod(y.shape)), dtype=np.float64)
                             .reshape(y.shape), d))
        out.append((host(y), host(t.grad)))
    np.testing.assert_array_equal(out[1][0], out[0][0])
    np.testing.assert_array_equal(out[1][1], out[0][1])


def test_mask_of_the_wrong_shape_raises_as_on_the_cpu(device):
    t = minidl.zeros(5, 3, device=device)
    for mask in (np.ones(4, bool), np.ones((5, 2), bool)):
        with pytest.raises(IndexError, match="getitem: .*boolean index"):
            t[minidl.tensor(mask, device=device)]


@pytest.mark.cuda
def test_mask_is_read_once_and_backward_assigns(monkeypatch, rng):
    import cupy
    from minidl import backend
    calls = {"nonzero": 0, "mask_index": 0, "scatter": 0}
    real_nonzero, real_getitem = cupy.nonzero, cupy.ndarray.__getitem__
    real_setitem = cupy.ndarray.__setitem__

    def nonzero(a):
        calls["nonzero"] += 1
        return real_nonzero(a)

    def masked(key):
        items = key if isinstance(key, tuple) else (key,)
        return any(getattr(k, "dtype", None) == bool and k.ndim for k in items)

    def getitem(self, key):
        calls["mask_index"] += masked(key)
        return real_getitem(self, key)

    def setitem(self, key, value):
        calls["mask_index"] += masked(key)
        return real_setitem(self, key, value)

    def scatter(*args):
        calls["scatter"] += 1
    monkeypatch.setattr(cupy, "nonzero", nonzero)
    monkeypatch.setattr(cupy.ndarray, "__getitem__", getitem)
    monkeypatch.setattr(cupy.ndarray, "__setitem__", setitem)
    monkeypatch.setattr(backend, "scatter_add", scatter)
    x = rng.standard_normal((4, 6))
    t = to_tensor(x, "cuda", requires_grad=True)
    mask = to_tensor(x > 0, "cuda")
    y = t[mask]
    y.sum().backward()
    assert calls == {"nonzero": 1, "mask_index": 0, "scatter": 0}
    np.testing.assert_array_equal(host(y), x[x > 0])
    np.testing.assert_array_equal(host(t.grad), (x > 0).astype(float))


@pytest.mark.cuda
def test_out_of_range_integer_indices_on_the_gpu_raise_at_the_next_synchronization():
    """CuPy takes out-of-range integer indices modulo the axis size (NumPy raises; the
    emulated CuPy wraps as CuPy does): minidl checks them on the device and raises at the
    next synchronization, as for out-of-range labels."""
    x = minidl.arange(12.0, device="cuda").reshape(3, 4)
    idx = minidl.tensor(np.array([0, 5]), device="cuda")
    y = x[:, idx]                                          # no host read here
    with pytest.raises(IndexError, match=r"getitem: index 5 is out of range for axis 1 of "
                       r"size 4 \(tensor shape \(3, 4\)\)"):
        y.numpy()
    assert x[minidl.tensor(np.array([2, -3]), device="cuda")].shape == (2, 4)   # in range
    minidl.synchronize("cuda")
