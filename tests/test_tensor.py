"""Tensor construction, factories, properties, conversion, seeding, repr."""
import numpy as np
import pytest

import minidl
import minidl.functional as F


def test_tensor_dtype_defaults():
    assert minidl.tensor([1.0, 2.0]).dtype == np.float32
    assert minidl.tensor([1, 2]).dtype == np.int64
    assert minidl.tensor([True]).dtype == np.bool_
    assert minidl.tensor(np.zeros(2)).dtype == np.float64          # arrays keep their dtype
    assert minidl.tensor([1, 2], dtype=minidl.float64).dtype == np.float64
    assert minidl.tensor(np.float64(2.0)).dtype == np.float64


def test_tensor_copies_its_data():
    a = np.zeros(3, np.float32)
    t = minidl.tensor(a)
    a[0] = 5
    assert t.numpy()[0] == 0
    assert minidl.from_numpy(a).data is a


def test_properties():
    t = minidl.zeros(2, 3, 4)
    assert t.shape == (2, 3, 4) and t.ndim == 3 and t.size() == (2, 3, 4)
    assert t.size(1) == 3 and t.numel() == 24 and len(t) == 2
    assert t.device == "cpu" and str(t.device) == "cpu" and t.is_leaf
    assert not t.requires_grad and t.grad is None


def test_item_numpy_tolist():
    t = minidl.tensor([[3.5]])
    assert t.item() == 3.5 and float(t) == 3.5
    n = t.numpy()
    n[0, 0] = 1.0
    assert t.item() == 3.5                                      # numpy() is a copy
    with pytest.raises(ValueError, match="item: only one-element tensors"):
        minidl.ones(2).item()


@pytest.mark.parametrize("fn,expected", [
    (lambda: minidl.zeros(2, 3), np.zeros((2, 3))), (lambda: minidl.ones((2,)), np.ones(2)),
    (lambda: minidl.full((2, 2), 7.0), np.full((2, 2), 7.0)),
    (lambda: minidl.arange(5), np.arange(5)), (lambda: minidl.arange(1, 2, 0.5), [1.0, 1.5]),
    (lambda: minidl.eye(2), np.eye(2)), (lambda: minidl.linspace(0, 1, 3), [0, 0.5, 1])])
def test_factories(fn, expected):
    np.testing.assert_allclose(fn().numpy(), expected)


def test_like_factories(device):
    t = minidl.zeros(2, 3, dtype=minidl.float64, device=device)
    for f in (minidl.zeros_like, minidl.ones_like, minidl.randn_like, minidl.rand_like):
        o = f(t)
        assert o.shape == (2, 3) and o.dtype == np.float64 and o.device == t.device
    assert minidl.full_like(t, 2.0).numpy().sum() == 12.0


def test_manual_seed_reproducible():
    minidl.manual_seed(42)
    a = minidl.randn(5).numpy()
    b = minidl.rand(3).numpy()
    minidl.manual_seed(42)
    np.testing.assert_array_equal(a, minidl.randn(5).numpy())
    np.testing.assert_array_equal(b, minidl.rand(3).numpy())
    assert not np.array_equal(a, minidl.randn(5).numpy())
    r = minidl.rand(1000).numpy()
    assert r.dtype == np.float32 and 0 <= r.min() and r.max() < 1
    ri = minidl.randint(0, 3, (100,))
    assert set(ri.tolist()) == {0, 1, 2}
    assert sorted(minidl.randperm(6).tolist()) == list(range(6))


def test_rng_state_roundtrip():
    minidl.randn(3)
    state = minidl.get_rng_state()
    a = minidl.randn(4).numpy()
    minidl.set_rng_state(state)
    np.testing.assert_array_equal(a, minidl.randn(4).numpy())


def test_to_and_casts():
    t = minidl.tensor([1.5, 2.5])
    assert t.to(minidl.float64).dtype == np.float64
    assert t.to("cpu") is t
    assert t.double().float().dtype == np.float32
    assert t.long().tolist() == [1, 2]
    with pytest.raises(ValueError, match="device: expected 'cpu', 'cuda' or 'cuda:N'"):
        t.to("tpu")


def test_repr():
    assert repr(minidl.tensor([1.0, 2.0])) == "tensor([1., 2.])"
    assert "requires_grad=True" in repr(minidl.ones(2, requires_grad=True))
    assert "grad_fn=<Mul>" in repr(minidl.ones(2, requires_grad=True) * 2.0)
    assert "dtype=float64" in repr(minidl.ones(1, dtype=minidl.float64))


def test_bad_construction():
    with pytest.raises(TypeError, match="tensor: expected numbers"):
        minidl.tensor(["a", "b"])
    with pytest.raises(ValueError, match="zeros: size must be non-negative ints"):
        minidl.zeros(-1)
    with pytest.raises(TypeError, match="randn: dtype must be floating point"):
        minidl.randn(2, dtype=minidl.int64)


def test_tensor_edges_behave_like_pytorch_or_say_what_is_wrong():
    x = minidl.ones(2, 3)
    assert np.asarray(x).shape == (2, 3) and np.asarray(x, dtype=np.float64).dtype == np.float64
    assert [t.item() for t in minidl.arange(3)] == [0, 1, 2]
    with pytest.raises(TypeError, match="iteration over a 0-d tensor"):
        iter(minidl.tensor(1.0))
    with pytest.raises(IndexError, match="size: dim 5 is out of range for a tensor with 2"):
        x.size(5)
    assert x.size(-1) == 3
    with pytest.raises(TypeError, match="fill_: value must be a number, got str"):
        x.fill_("a")
    with pytest.raises(TypeError, match="Tensor: expected an array of numbers, got dtype obj"):
        minidl.Tensor(np.array([1, None]))
    with pytest.raises(OverflowError, match="does not fit int64"):
        minidl.tensor(2 ** 63)
    with pytest.raises(ValueError, match=r"lt: shapes \(2, 3\) and \(4,\) cannot"):
        x < minidl.ones(4)
    y = minidl.zeros(2)
    y.copy_([1, 2])
    np.testing.assert_array_equal(y.numpy(), [1.0, 2.0])


def test_numpy_scalars_are_numbers_for_hyperparameters():
    x = minidl.randn(4, 3)
    t = minidl.tensor([0, 1, 2, 0])
    np.testing.assert_allclose(
        F.cross_entropy(x, t, label_smoothing=np.float32(0.25)).item(),
        F.cross_entropy(x, t, label_smoothing=0.25).item(), rtol=1e-6)
    assert x.clip(np.int64(0)).dtype == np.float32
    assert F.leaky_relu(x, np.float32(0.2)).dtype == np.float32


@pytest.mark.parametrize("make,exc,match", [
    (lambda: minidl.linspace(0, 1, steps=-1), ValueError,
     "linspace: 'steps' must be a non-negative int, got -1"),
    (lambda: minidl.linspace(0, 1, 2.5), TypeError,
     "linspace: 'steps' must be a non-negative int, got float 2.5"),
    (lambda: minidl.eye(-1), ValueError, "eye: 'n' must be a non-negative int, got -1"),
    (lambda: minidl.randint(0, 3, (2,), dtype=minidl.complex64 if hasattr(minidl, "complex64")
                            else "U1"), TypeError, "randint: dtype must be"),
    (lambda: minidl.arange(0, -3), ValueError, "arange: 'step' 1 goes away from 'end'"),
    (lambda: minidl.arange(0, 5, 0.5, dtype=minidl.int64), ValueError,
     r"arange: 'step' must be non-zero \(an integer dtype truncates it"),
    (lambda: minidl.arange(0, float("inf")), ValueError, "arange: start, end and step must be "
                                                          "finite"),
    (lambda: minidl.randint(5), TypeError, "randint: missing 'size'"),
    (lambda: minidl.randint(0.5, 3.5, (2,)), TypeError, "randint: 'low' must be an int"),
    (lambda: minidl.randperm(3.0), TypeError,
     "randperm: 'n' must be a non-negative int, got float 3.0"),
    (lambda: minidl.randperm(-1), ValueError, "randperm: 'n' must be a non-negative int, got -1"),
    (lambda: minidl.full(2, "a"), TypeError, "full: 'fill_value' must be a number, got str"),
    (lambda: minidl.arange("a"), TypeError, "arange: 'end' must be a number, got str"),
    (lambda: minidl.tensor(1, dtype="foo"), TypeError, "tensor: unknown dtype 'foo'"),
    (lambda: minidl.zeros(2, dtype="foo"), TypeError, "zeros: unknown dtype 'foo'"),
    (lambda: minidl.randn(2, dtype=minidl.int64), TypeError,
     "randn: dtype must be floating point, got int64"),
])
def test_factories_name_their_bad_arguments(make, exc, match):
    with pytest.raises(exc, match=match):
        make()


def test_factories_still_make_what_they_did():
    assert minidl.full((2,), True).dtype == np.bool_ and minidl.full((2,), 3).dtype == np.int64
    assert minidl.randint(0, 3, (4,)).dtype == np.int64
    assert minidl.randint(0, 3, (4,), dtype=minidl.uint8).dtype == np.uint8
    assert minidl.eye(2, 3).shape == (2, 3) and minidl.linspace(0, 1, 3).dtype == np.float32
    assert sorted(minidl.randperm(5).tolist()) == [0, 1, 2, 3, 4]


def test_assigned_gradients_must_match_the_tensor():
    x = minidl.ones(2, 3, requires_grad=True)
    with pytest.raises(ValueError, match=r"grad: the gradient must match .*got \(\(3,\)"):
        x.grad = minidl.ones(3)
    with pytest.raises(ValueError, match="got .*float64"):
        x.grad = minidl.ones(2, 3, dtype=minidl.float64)
    with pytest.raises(TypeError, match="grad: expected a Tensor or None, got int"):
        x.grad = 3
    x.grad = minidl.zeros(2, 3)                        # the next backward adds into it
    (x * 2.0).sum().backward()
    np.testing.assert_array_equal(x.grad.numpy(), np.full((2, 3), 2.0))


def test_float_arange_does_not_drift_and_integer_arange_truncates_first():
    """start + i * step rounded once (NumPy's float32 arange accumulated a float32 step: the
    last of 2973 values was 1.6 steps off); an integer dtype truncates its arguments first,
    as PyTorch does."""
    x = minidl.arange(-72.2, -42.48, 0.01)
    ref = -72.2 + np.arange(2973) * 0.01                   # (2973: ceil in float64, as torch)
    assert x.dtype == minidl.float32 and x.shape == (2973,)
    np.testing.assert_allclose(x.numpy(), ref, rtol=0, atol=1e-5)
    h = minidl.arange(100, 110, 0.1, dtype=minidl.float16)
    assert h.shape == (100,) and float(h[-1]) <= 110
    np.testing.assert_array_equal(minidl.arange(0, 5, 1.5, dtype=minidl.int64).numpy(),
                                  [0, 1, 2, 3, 4])
    assert minidl.arange(-11.084, 36, 1, dtype=minidl.int64).shape == (47,)
    assert minidl.arange(0, 0).shape == (0,)


def test_linspace_truncates_toward_zero_for_integers_and_randint_forms():
    np.testing.assert_array_equal(minidl.linspace(-10, 0, 4, dtype=minidl.int64).numpy(),
                                  [-10, -6, -3, 0])          # NumPy's integer linspace floors
    minidl.manual_seed(0)
    a = minidl.randint(5, (3,))
    b = minidl.randint(5, size=(2, 2))
    assert a.shape == (3,) and b.shape == (2, 2) and a.dtype == minidl.int64
    assert 0 <= a.numpy().min() and a.numpy().max() < 5
    f = minidl.randint(0, 3, (50,), dtype=minidl.float32)
    assert f.dtype == minidl.float32 and set(f.numpy().tolist()) <= {0.0, 1.0, 2.0}
    p = minidl.randperm(6, dtype=minidl.int32)
    assert p.dtype == minidl.int32 and sorted(p.numpy().tolist()) == list(range(6))


def test_big_endian_arrays_become_native_tensors():
    """A '>f4' array (read from a file written elsewhere) is float32 to minidl: its dtype
    compares equal to minidl.float32 and arithmetic keeps it."""
    for make in (minidl.from_numpy, minidl.tensor, minidl.as_tensor):
        t = make(np.array([1.0, 2.0], dtype=">f4"))
        assert t.dtype == minidl.float32 and t.dtype.isnative
        assert (t + 1).dtype == minidl.float32 and t.tolist() == [1.0, 2.0]
    assert minidl.tensor(np.array([3], dtype=">i8")).dtype == minidl.int64
