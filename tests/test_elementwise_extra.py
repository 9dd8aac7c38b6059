"""PyTorch-parity elementwise ops: log1p, expm1, square, rsqrt, reciprocal, sin, cos, sign,
lerp. Forward against NumPy expressions written here (and torch where installed), float64
gradchecks with random upstream gradients, dtypes (float32 kept, integers promoted as in
PyTorch), bad input."""
import math

import numpy as np
import pytest

import minidl
import minidl.functional as F
from tests.helpers import check_op, host, to_tensor

# (op, reference written independently of the op's NumPy call, domain of x)
UNARY = {
    "log1p": (F.log1p, np.vectorize(lambda v: math.log(1.0 + v)), "gt-1"),
    "expm1": (F.expm1, np.vectorize(lambda v: math.exp(v) - 1.0), "any"),
    "square": (F.square, lambda a: a * a, "any"),
    "rsqrt": (F.rsqrt, np.vectorize(lambda v: 1.0 / math.sqrt(v)), "pos"),
    "reciprocal": (F.reciprocal, lambda a: 1.0 / a, "nonzero"),
    "sin": (F.sin, np.vectorize(math.sin), "any"),
    "cos": (F.cos, np.vectorize(math.cos), "any"),
}


def _sample(rng, shape, domain):
    x = rng.standard_normal(shape)
    if domain == "pos":
        return rng.uniform(0.5, 2.0, shape)
    if domain == "gt-1":
        return rng.uniform(-0.7, 2.0, shape)
    if domain == "nonzero":
        return np.where(np.abs(x) < 0.2, 0.7, x)
    return x


@pytest.mark.parametrize("name", sorted(UNARY))
@pytest.mark.parametrize("shape", [(5,), (2, 3, 4), ()])
def test_unary_ops(device, rng, name, shape):
    op, ref, domain = UNARY[name]
    x = _sample(rng, shape, domain)
    check_op(op, [x], lambda a: np.asarray(ref(a), dtype=np.float64), device)


@pytest.mark.parametrize("name", sorted(UNARY))
def test_unary_ops_non_contiguous_input(device, rng, name):
    op, ref, domain = UNARY[name]
    x = _sample(rng, (4, 3), domain)
    check_op(lambda t: op(t.T), [x], lambda a: np.asarray(ref(a.T), dtype=np.float64), device)


def test_log1p_expm1_accurate_near_zero(device):
    x = to_tensor(np.array([1e-10, -1e-12], np.float32), device)
    np.testing.assert_allclose(host(F.log1p(x)), [1e-10, -1e-12], rtol=1e-6)
    np.testing.assert_allclose(host(F.expm1(x)), [1e-10, -1e-12], rtol=1e-6)


@pytest.mark.parametrize("name", ["log1p", "expm1", "rsqrt", "reciprocal", "sin", "cos"])
def test_integer_inputs_give_float32(device, name):
    op, ref, _ = UNARY[name]
    for a in (np.array([1, 2, 3]), np.array([True, False, True])):
        if name in ("rsqrt", "reciprocal") and a.dtype == bool:
            a = np.array([True, True])
        y = op(to_tensor(a, device))
        assert y.dtype == np.float32
        np.testing.assert_allclose(host(y), ref(a.astype(np.float64)), rtol=1e-6)


def test_square_keeps_integers_and_bool_gives_int64(device):
    y = F.square(to_tensor(np.array([-3, 2], np.int32), device))
    assert y.dtype == np.int32
    np.testing.assert_array_equal(host(y), [9, 4])
    y = F.square(to_tensor(np.array([True, False]), device))
    assert y.dtype == np.int64
    np.testing.assert_array_equal(host(y), [1, 0])


def test_sign(device, rng):
    x = np.array([-2.5, 0.0, 3.0, -0.0, 1e-30])
    ref = np.array([-1.0 if v < 0 else 1.0 if v > 0 else 0.0 for v in x])
    t = to_tensor(x, device, requires_grad=True)
    y = F.sign(t)
    np.testing.assert_array_equal(host(y), ref)
    assert y.requires_grad                          # as PyTorch: in the graph, zero gradient
    y.backward(to_tensor(rng.standard_normal(5), device))
    np.testing.assert_array_equal(host(t.grad), np.zeros(5))
    assert F.sign(to_tensor(x.astype(np.float32), device)).dtype == np.float32
    yi = F.sign(to_tensor(np.array([-4, 0, 7]), device))
    assert yi.dtype == np.int64
    np.testing.assert_array_equal(host(yi), [-1, 0, 1])
    yb = F.sign(to_tensor(np.array([True, False]), device))
    assert yb.dtype == np.bool_
    np.testing.assert_array_equal(host(yb), [True, False])


# ---------------------------------------------------------------------------------------------
# lerp

@pytest.mark.parametrize("sa,sb,sw", [((3, 4), (3, 4), (3, 4)), ((3, 1), (4,), (2, 1, 1)),
                                      ((2, 3), (2, 3), ()), ((), (2, 3), (3,))])
def test_lerp_tensor_weight(device, rng, sa, sb, sw):
    a, b = rng.standard_normal(sa), rng.standard_normal(sb)
    w = rng.uniform(-0.5, 1.5, sw)
    check_op(F.lerp, [a, b, w], lambda x, y, z: x + z * (y - x), device)


@pytest.mark.parametrize("weight", [0.0, 0.25, 0.5, 0.9, 1.0, -1.0, 2])
def test_lerp_number_weight(device, rng, weight):
    a, b = rng.standard_normal((3, 4)), rng.standard_normal((4,))
    check_op(lambda x, y: F.lerp(x, y, weight), [a, b], lambda x, y: x + weight * (y - x),
             device)


def test_lerp_hits_the_endpoints_exactly(device, rng):
    a = to_tensor(rng.standard_normal(6).astype(np.float32) * 1e3, device)
    b = to_tensor(rng.standard_normal(6).astype(np.float32) * 1e-3, device)
    np.testing.assert_array_equal(host(F.lerp(a, b, 1.0)), host(b))
    np.testing.assert_array_equal(host(F.lerp(a, b, 0.0)), host(a))
    np.testing.assert_array_equal(host(F.lerp(a, b, to_tensor(np.ones(6, np.float32),
                                                                device))), host(b))


def test_lerp_dtypes():
    a32, b32 = minidl.zeros(3), minidl.ones(3)
    assert F.lerp(a32, b32, 0.3).dtype == np.float32
    assert F.lerp(a32, b32, minidl.tensor(np.array(0.3))).dtype == np.float32   # 0-d float64
    assert F.lerp(a32, b32.double(), 0.3).dtype == np.float64    # promoted like a binary op
    assert F.lerp(a32, minidl.tensor([1, 2, 3]), 0.5).dtype == np.float32


def test_lerp_errors():
    a = minidl.zeros(2, 3)
    with pytest.raises(ValueError, match=r"lerp: shapes \[\(2, 3\), \(4,\)\] \(input, end, "
                                         r"weight\) cannot be broadcast together"):
        F.lerp(a, minidl.zeros(4), 0.5)
    with pytest.raises(TypeError, match="lerp: needs floating-point operands, got int64, "
                                        "int64"):
        F.lerp(minidl.tensor([1, 2]), minidl.tensor([3, 4]), 1)
    with pytest.raises(TypeError, match="lerp: argument 'end' must be a Tensor, got float"):
        F.lerp(a, 1.0, 0.5)
    with pytest.raises(TypeError, match="lerp: argument 'weight' must be a Tensor or a number, "
                                        "got str"):
        F.lerp(a, a, "x")


@pytest.mark.parametrize("name", sorted(UNARY) + ["sign"])
def test_unary_errors_name_the_op(name):
    op = getattr(F, name)
    with pytest.raises(TypeError, match=rf"{name}: argument 'input' must be a Tensor, got "
                                        "ndarray"):
        op(np.ones(3))


# ---------------------------------------------------------------------------------------------
# PyTorch as an extra oracle

@pytest.mark.parametrize("name", sorted(UNARY) + ["sign", "lerp"])
def test_matches_torch(rng, name):
    torch = pytest.importorskip("torch")
    a = _sample(rng, (3, 4), UNARY[name][2] if name in UNARY else "any")
    b, w = rng.standard_normal((4,)), rng.uniform(0, 1, (3, 1))
    x, tx = minidl.tensor(a, requires_grad=True), torch.tensor(a, requires_grad=True)
    if name == "lerp":
        y = F.lerp(x, minidl.tensor(b), minidl.tensor(w))
        ty = torch.lerp(tx, torch.tensor(b).expand(3, 4), torch.tensor(w).expand(3, 4))
    else:
        y, ty = getattr(F, name)(x), getattr(torch, name)(tx)
    np.testing.assert_allclose(y.numpy(), ty.detach().numpy(), rtol=1e-14, atol=1e-15)
    g = rng.standard_normal((3, 4))
    y.backward(minidl.tensor(g))
    ty.backward(torch.tensor(g))
    np.testing.assert_allclose(x.grad.numpy(), tx.grad.numpy(), rtol=1e-13, atol=1e-15)


def test_integer_results_match_torch():
    torch = pytest.importorskip("torch")
    for name in ["log1p", "expm1", "rsqrt", "reciprocal", "sin", "cos", "square", "sign"]:
        for a in (np.array([1, 2, 5]), np.array([True, False, True])):
            with np.errstate(divide="ignore"):             # 1 / 0 = inf, as in torch
                y = getattr(F, name)(minidl.tensor(a))
            ty = getattr(torch, name)(torch.tensor(a))
            assert str(y.dtype) == str(ty.dtype).replace("torch.", ""), (name, a.dtype)
            np.testing.assert_allclose(y.numpy().astype(float), ty.numpy().astype(float),
                                       rtol=1e-6)


# ---------------------------------------------------------------------------------------------
# Tensor methods (bound in minidl/tensor.py; skipped until they are)

@pytest.mark.parametrize("name", sorted(UNARY) + ["sign"])
def test_tensor_methods_call_functional(rng, name):
    if not hasattr(minidl.Tensor, name):
        pytest.skip(f"Tensor.{name} is not bound yet")
    x = minidl.tensor(rng.uniform(0.5, 2.0, (2, 3)))
    np.testing.assert_array_equal(getattr(x, name)().numpy(), getattr(F, name)(x).numpy())


def test_tensor_lerp_method(rng):
    if not hasattr(minidl.Tensor, "lerp"):
        pytest.skip("Tensor.lerp is not bound yet")
    x, y = minidl.tensor(rng.standard_normal(3)), minidl.tensor(rng.standard_normal(3))
    np.testing.assert_array_equal(x.lerp(y, 0.3).numpy(), F.lerp(x, y, 0.3).numpy())


@pytest.mark.parametrize("op", ["maximum", "minimum"])
def test_maximum_and_minimum_send_gy_to_both_inputs_where_one_is_nan(device, op):
    """y is NaN there; PyTorch gives both inputs the whole gradient (a NaN first argument
    used to get none while a NaN second one got it all)."""
    a = to_tensor(np.array([np.nan, 1.0, 2.0, 0.5]), device, requires_grad=True)
    b = to_tensor(np.array([0.5, np.nan, 2.0, 3.0]), device, requires_grad=True)
    y = getattr(minidl, op)(a, b)
    y.backward(to_tensor(np.array([1.0, 2.0, 4.0, 8.0]), device))
    last = (0.0, 8.0) if op == "maximum" else (8.0, 0.0)     # 0.5 vs 3.0: (a's, b's)
    assert host(a.grad).tolist() == [1.0, 2.0, 2.0, last[0]]
    assert host(b.grad).tolist() == [1.0, 2.0, 2.0, last[1]]


def test_clamp_with_tensor_bounds(device, rng):
    """min(max(x, lo), hi) with broadcast Tensor bounds, each differentiable (float64
    gradcheck away from ties), and PyTorch's routing at ties and crossed bounds."""
    x = rng.standard_normal((3, 4))
    lo, hi = rng.standard_normal(4) - 1.0, rng.standard_normal((3, 1)) + 1.0
    check_op(lambda a, b, c: minidl.clamp(a, b, c), [x, lo, hi],
             lambda a, b, c: np.minimum(np.maximum(a, b), c), device)
    check_op(lambda a, b: minidl.clamp(a, min=b), [x, lo], lambda a, b: np.maximum(a, b),
             device)
    check_op(lambda a, c: a.clamp(max=c), [x, hi], lambda a, c: np.minimum(a, c), device)
    t = [to_tensor(np.array(v), device, requires_grad=True)
         for v in ([0.0, 1.0, 2.0, 3.0], [1.0, 1.0, 2.0, 1.0], [2.0, 1.0, 2.0, 0.5])]
    y = minidl.clamp(*t)           # x = lo = hi at 1 and 2: x's; lo > hi at 3: hi's
    y.backward(to_tensor(np.array([1.0, 2.0, 4.0, 8.0]), device))
    assert host(y).tolist() == [1.0, 1.0, 2.0, 0.5]
    assert [host(v.grad).tolist() for v in t] == [[0, 2, 4, 0], [1, 0, 0, 0], [0, 0, 0, 8]]
    with pytest.raises(TypeError, match="clamp: 'min' is float32, the input float64"):
        minidl.clamp(t[0], min=minidl.zeros(4))
