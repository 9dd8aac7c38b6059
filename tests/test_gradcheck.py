"""gradcheck must pass correct gradients and catch wrong ones, in both modes."""
import numpy as np
import pytest

import minidl
from minidl import Function


class GoodSquare(Function):
    def forward(self, x):
        self.save_for_backward(x)
        return x * x

    def backward(self, gy):
        return 2.0 * self.saved[0] * gy


class OffByOneElement(GoodSquare):
    def backward(self, gy):
        g = 2.0 * self.saved[0] * gy
        g = g.copy()
        g.flat[3] += 1e-2
        return g


class IgnoresUpstream(GoodSquare):
    """Correct for one-hot upstream gradients of the sum only: returns 2x * sum(gy)."""

    def backward(self, gy):
        return 2.0 * self.saved[0] * gy.sum()


class SwappedCrossTerms(Function):
    """y = a * b with the gradients of a and b swapped (right only when a == b)."""

    def forward(self, a, b):
        self.save_for_backward(a, b)
        return a * b

    def backward(self, gy):
        a, b = self.saved
        return gy * a, gy * b


def _x(shape=(3, 4)):
    return minidl.randn(*shape, dtype=minidl.float64, requires_grad=True)


def test_passes_correct_gradient():
    assert minidl.gradcheck(lambda t: GoodSquare()(t), [_x()])
    assert minidl.gradcheck(lambda t: GoodSquare()(t), [_x()], fast_mode=True, n_directions=3)


def test_catches_wrong_element_and_names_it():
    with pytest.raises(minidl.GradcheckError) as exc:
        minidl.gradcheck(lambda t: OffByOneElement()(t), [_x()])
    msg = str(exc.value)
    assert "input 0" in msg and "(0, 3)" in msg and "numerical" in msg and "analytic" in msg


def test_catches_backward_that_misuses_upstream_gradient():
    with pytest.raises(minidl.GradcheckError):
        minidl.gradcheck(lambda t: IgnoresUpstream()(t), [_x()])
    assert not minidl.gradcheck(lambda t: IgnoresUpstream()(t), [_x()], fast_mode=True,
                                raise_exception=False)


def test_catches_swapped_gradients_in_both_modes():
    a, b = _x(), _x()
    with pytest.raises(minidl.GradcheckError, match="input"):
        minidl.gradcheck(lambda u, v: SwappedCrossTerms()(u, v), [a, b])
    with pytest.raises(minidl.GradcheckError, match="fast mode"):
        minidl.gradcheck(lambda u, v: SwappedCrossTerms()(u, v), [a, b], fast_mode=True)


def test_multiple_outputs_and_passthrough_inputs():
    x = _x()
    assert minidl.gradcheck(lambda t, k: (t * k, minidl.exp(t).sum()), [x, 3.0])


def test_requires_float64():
    x = minidl.randn(3, requires_grad=True)
    with pytest.raises(TypeError, match="gradcheck: input 0 has dtype float32; gradcheck "
                                        "needs float64"):
        minidl.gradcheck(lambda t: t * 2.0, [x])


def test_requires_some_input_with_grad():
    with pytest.raises(ValueError, match="no input requires grad"):
        minidl.gradcheck(lambda t: t * 2.0, [minidl.randn(3, dtype=minidl.float64)])


def test_inputs_restored_after_check():
    x = _x()
    before = x.numpy()
    minidl.gradcheck(lambda t: GoodSquare()(t), [x])
    minidl.gradcheck(lambda t: GoodSquare()(t), [x], fast_mode=True)
    np.testing.assert_array_equal(x.numpy(), before)
    assert x.grad is None


def test_a_0d_or_strided_input_keeps_its_shape_and_values():
    """The numerical Jacobian perturbs a contiguous copy of a strided input in place; that
    copy keeps the input's shape (a 0-d input once came back 1-d, so ops that check ndim saw
    a (1,) tensor instead of the 0-d one they were given)."""
    shapes = []

    def f(s, m):
        shapes.append(s.shape)
        return s * m
    s = minidl.tensor(np.array(1.5), requires_grad=True)
    m = minidl.tensor(np.arange(12.0).reshape(3, 4).T, requires_grad=True)   # strided
    before = m.numpy()
    assert minidl.gradcheck(f, [s, m])
    assert set(shapes) == {()} and s.shape == () and m.shape == (4, 3)
    np.testing.assert_array_equal(m.numpy(), before)


class SqrtWrongBackward(Function):
    """sqrt with a wrong gradient: gradchecked at 0, where sqrt has no finite derivative."""

    def forward(self, x):
        return np.sqrt(x)

    def backward(self, gy):
        return 123.0 * gy


def test_fails_where_the_numerical_derivative_is_not_finite():
    """A NaN in the numerical Jacobian compares false with any tolerance; gradcheck must not
    read that as a pass (at x = 0, sqrt(-eps) is NaN)."""
    x = minidl.tensor(np.array([0.0, 1.0]), requires_grad=True)
    with np.errstate(invalid="ignore"), pytest.raises(
            minidl.GradcheckError, match="numerical derivative is not finite"):
        minidl.gradcheck(lambda t: SqrtWrongBackward()(t), [x])
    with np.errstate(invalid="ignore"):
        assert not minidl.gradcheck(lambda t: SqrtWrongBackward()(t), [x], fast_mode=True,
                                    raise_exception=False)


def test_gradcheck_perturbs_a_strided_input_in_place_and_leaves_it_a_view():
    """The elements are nudged where they lie: the input stays the same array, a view of its
    base (it used to be replaced by a contiguous copy)."""
    base = minidl.tensor(np.random.default_rng(0).standard_normal((3, 4)))
    x = minidl.Tensor(base.data.T)
    x.requires_grad_(True)
    before = x.data
    assert minidl.gradcheck(lambda t: (t * t).sum(1), [x])
    assert x.data is before and np.shares_memory(x.data, base.data)
    np.testing.assert_array_equal(x.data, base.data.T)          # restored exactly
