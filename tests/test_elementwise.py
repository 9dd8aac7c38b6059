"""Elementwise ops: forward vs NumPy, float64 gradchecks (broadcasting, reused inputs,
non-contiguous views), dtype preservation, bad input."""
import numpy as np
import pytest

import minidl
import minidl.functional as F
from tests.helpers import check_op, host, to_tensor

BROADCAST_PAIRS = [((3, 4), (3, 4)), ((3, 4), (4,)), ((2, 1, 4), (3, 1)), ((1,), (2, 3)),
                   ((), (2, 3)), ((2, 3, 1), (1, 1, 5))]


def _pos(rng, shape):
    return rng.uniform(0.5, 2.0, shape)


@pytest.mark.parametrize("sa,sb", BROADCAST_PAIRS)
@pytest.mark.parametrize("op,ref", [(F.add, np.add), (F.sub, np.subtract),
                                    (F.mul, np.multiply), (F.div, np.divide),
                                    (F.maximum, np.maximum), (F.minimum, np.minimum)])
def test_binary_ops_broadcast(device, rng, op, ref, sa, sb):
    a = rng.standard_normal(sa)
    b = _pos(rng, sb) if op is F.div else rng.standard_normal(sb)
    check_op(op, [a, b], ref, device)


@pytest.mark.parametrize("sa,sb", BROADCAST_PAIRS[:3])
def test_pow_tensor_tensor(device, rng, sa, sb):
    check_op(F.pow, [_pos(rng, sa), rng.standard_normal(sb)], np.power, device)


def test_pow_with_numbers(device, rng):
    a = _pos(rng, (3, 4))
    check_op(lambda x: x ** 3, [a], lambda x: x ** 3, device)
    check_op(lambda x: x ** 0.5, [a], np.sqrt, device)
    check_op(lambda x: 2.0 ** x, [a], lambda x: 2.0 ** x, device)
    check_op(lambda x: 1.0 / x - 3.0 + x * 2.0, [a], lambda x: 1 / x - 3 + 2 * x, device)
    check_op(lambda x: 1.0 - x, [a], lambda x: 1.0 - x, device)


@pytest.mark.parametrize("op,ref,domain", [
    (F.exp, np.exp, "any"), (F.log, np.log, "pos"), (F.sqrt, np.sqrt, "pos"),
    (F.abs, np.abs, "nonzero"), (F.neg, np.negative, "any")])
@pytest.mark.parametrize("shape", [(5,), (2, 3, 4), ()])
def test_unary_ops(device, rng, op, ref, domain, shape):
    x = rng.standard_normal(shape)
    if domain == "pos":
        x = _pos(rng, shape)
    elif domain == "nonzero":
        x = np.where(np.abs(x) < 0.1, 0.5, x)
    check_op(op, [x], ref, device)


def test_clip(device, rng):
    x = rng.uniform(-2, 2, (4, 5))
    x = np.where(np.abs(np.abs(x) - 1.0) < 1e-3, 0.0, x)   # keep away from the kinks
    check_op(lambda t: F.clip(t, -1.0, 1.0), [x], lambda a: np.clip(a, -1, 1), device)
    check_op(lambda t: F.clip(t, min=0.0), [x], lambda a: np.maximum(a, 0), device)
    check_op(lambda t: t.clamp(max=0.5), [x], lambda a: np.minimum(a, 0.5), device)


def test_where(device, rng):
    cond = rng.random((3, 4)) > 0.5
    a, b = rng.standard_normal((3, 4)), rng.standard_normal((4,))
    c = to_tensor(cond, device)
    check_op(lambda x, y: F.where(c, x, y), [a, b], lambda x, y: np.where(cond, x, y), device)


def test_maximum_ties_share_gradient():
    a = minidl.tensor([1.0, 2.0, 3.0], requires_grad=True)
    b = minidl.tensor([1.0, 5.0, 0.0], requires_grad=True)
    F.maximum(a, b).sum().backward()
    np.testing.assert_allclose(a.grad.numpy(), [0.5, 0.0, 1.0])
    np.testing.assert_allclose(b.grad.numpy(), [0.5, 1.0, 0.0])


def test_reused_input_and_non_contiguous_view(device, rng):
    a = rng.standard_normal((4, 3))
    # x used three times, and through a transposed (non-contiguous) view
    check_op(lambda x: x * x + F.exp(x.T).T * x, [a],
             lambda x: x * x + np.exp(x) * x, device)
    nc = to_tensor(rng.standard_normal((6, 4)), device)[:, ::2]     # strided view
    np.testing.assert_allclose(host(F.exp(nc)), np.exp(host(nc)))


@pytest.mark.parametrize("op", [F.add, F.mul, F.sub, F.div])
def test_float32_stays_float32_with_python_scalars(op):
    x = minidl.randn(3)
    assert op(x, 2.5).dtype == np.float32
    assert op(2.5, x).dtype == np.float32


def test_binary_op_bad_shapes():
    with pytest.raises(ValueError, match=r"add: shapes \(2, 3\) and \(4,\) cannot be broadcast"):
        minidl.ones(2, 3) + minidl.ones(4)


@pytest.mark.parametrize("name", ["exp", "log", "sqrt"])
def test_math_of_an_int_tensor_is_float32_as_in_pytorch(name):
    x = minidl.tensor([1, 2, 4])
    y = getattr(F, name)(x)
    assert y.dtype == np.float32
    np.testing.assert_allclose(y.numpy(), getattr(np, name)(np.array([1.0, 2.0, 4.0])),
                               rtol=1e-6)
    with pytest.raises(TypeError, match=f"{name}: argument 'input' must be a Tensor"):
        getattr(F, name)([1.0])


def test_bad_operand_type():
    with pytest.raises(TypeError, match="mul: argument 'other' must be a Tensor or a number"):
        minidl.ones(2) * "x"


def test_clip_bad_bounds():
    with pytest.raises(ValueError, match="clip: 'min'"):
        F.clip(minidl.ones(2), 2.0, 1.0)
    with pytest.raises(ValueError, match="at least one"):
        F.clip(minidl.ones(2))


def _t(values, dtype):
    return minidl.tensor(np.array(values, dtype=dtype))


@pytest.mark.parametrize("make,expected", [
    (lambda: minidl.ones(3) + minidl.arange(3), np.float32),             # NumPy: float64
    (lambda: minidl.arange(3) + 0.5, np.float32),
    (lambda: _t([True], bool) * 2.5, np.float32),
    (lambda: _t([True], bool) + 1, np.int64),
    (lambda: minidl.arange(3) ** 0.5, np.float32),
    (lambda: minidl.arange(3) ** 2, np.int64),
    (lambda: F.maximum(minidl.arange(3), 1.5), np.float32),
    (lambda: minidl.arange(3).clip(0.5, 2.5), np.float32),
    (lambda: F.where(minidl.ones(2) > 0, 1.0, 2.0), np.float32),
    (lambda: F.where(minidl.ones(2) > 0, minidl.arange(2), 2.5), np.float32),
    (lambda: minidl.ones(3) + _t(1.0, np.float64), np.float32),          # 0-d ranks lower
    (lambda: _t([1], np.int32) + _t(1.5, np.float64), np.float64),       # ... unless higher
    (lambda: _t([1], np.uint8) + _t([1], np.int8), np.int16),
    (lambda: minidl.arange(3) / minidl.arange(1, 4), np.float32),        # true division
    (lambda: _t([1.0], np.float16) + minidl.arange(1), np.float16),
])
def test_result_dtypes_follow_pytorch(make, expected):
    assert make().dtype == expected


def test_promotion_keeps_gradients_in_each_inputs_dtype():
    x = minidl.tensor([1.0, 2.0], requires_grad=True)
    s = minidl.tensor(np.float64(3.0), requires_grad=True)
    y = x * s
    assert y.dtype == np.float32
    (y @ minidl.ones(2)).backward()                   # float32 @ float32: no dtype clash
    assert x.grad.dtype == np.float32 and s.grad.dtype == np.float64
    np.testing.assert_array_equal(x.grad.numpy(), [3.0, 3.0])
    assert s.grad.item() == 3.0


def test_number_out_of_the_tensors_range():
    with pytest.raises(ValueError, match="add: the number 300 does not fit .* dtype int8"):
        _t([1], np.int8) + 300


def test_casting_to_integers_or_bool_ends_the_graph():
    x = minidl.tensor([1.5, 2.5], requires_grad=True)
    for y in (x.long(), x.to(dtype=minidl.bool_), x.to(dtype=minidl.uint8)):
        assert not y.requires_grad and y.grad_fn is None
    assert not x.long().float().requires_grad


def test_pow_gradient_at_zero_exponent_and_zero_base(device):
    """d/da a**0 = 0 everywhere, also at a = 0 where b * a**(b-1) reads 0 * inf."""
    x = to_tensor(np.array([0.0, 2.0]), device, requires_grad=True)
    (x ** 0).sum().backward()
    np.testing.assert_array_equal(host(x.grad), [0.0, 0.0])
    x = to_tensor(np.array([0.0, 2.0]), device, requires_grad=True)
    e = to_tensor(np.array([0.0, 3.0]), device, requires_grad=True)
    (x ** e).sum().backward()
    np.testing.assert_array_equal(host(x.grad), [0.0, 12.0])
