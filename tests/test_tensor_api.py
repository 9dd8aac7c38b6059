"""The PyTorch Tensor methods ported code calls: comparisons, value tests, allclose/equal, t(),
clone/contiguous, *_as, dtype shorthands, new_*, and in-place arithmetic (add_ sub_ mul_ div_
clamp_) with the version counter autograd checks."""
import operator

import numpy as np
import pytest

import minidl
import minidl.functional as F
from tests.helpers import check_op, host, to_tensor

COMPARISONS = [("eq", operator.eq, np.equal), ("ne", operator.ne, np.not_equal),
               ("lt", operator.lt, np.less), ("le", operator.le, np.less_equal),
               ("gt", operator.gt, np.greater), ("ge", operator.ge, np.greater_equal)]


@pytest.mark.parametrize("name,op,ref", COMPARISONS)
def test_comparisons_match_the_operators_and_numpy(device, rng, name, op, ref):
    a = rng.integers(0, 3, (2, 3)).astype(np.float32)
    b = rng.integers(0, 3, (3,)).astype(np.float32)
    ta, tb = to_tensor(a, device), to_tensor(b, device)
    for other, raw in ((tb, b), (1.0, 1.0), (1, 1)):
        want = ref(a, raw)
        for out in (getattr(ta, name)(other), getattr(F, name)(ta, other),
                    getattr(minidl, name)(ta, other), op(ta, other)):
            assert out.dtype == np.bool_ and not out.requires_grad
            np.testing.assert_array_equal(host(out), want)


def test_comparison_errors_and_fallbacks():
    x = minidl.ones(2, 3)
    with pytest.raises(ValueError, match=r"ge: shapes \(2, 3\) and \(2,\) cannot be broadcast"):
        x.ge(minidl.ones(2))
    with pytest.raises(TypeError, match="eq: argument 'other' must be a Tensor or a number, "
                                        "got str"):
        F.eq(x, "a")
    with pytest.raises(TypeError, match="lt: argument 'input' must be a Tensor"):
        minidl.lt(1.0, x)
    assert (x == None) is False and (x != "a") is True     # noqa: E711 (Python's fallback)
    assert (2.0 > x).tolist() == [[True] * 3] * 2           # reflected: x < 2.0


def test_isnan_isinf_isfinite(device):
    a = np.array([1.0, np.nan, np.inf, -np.inf, 0.0])
    t = to_tensor(a, device)
    for name, ref in (("isnan", np.isnan), ("isinf", np.isinf), ("isfinite", np.isfinite)):
        for out in (getattr(t, name)(), getattr(minidl, name)(t)):
            assert out.dtype == np.bool_
            np.testing.assert_array_equal(host(out), ref(a))
    i = to_tensor(np.array([1, 2]), device)
    assert host(i.isnan()).tolist() == [False, False]
    assert host(i.isfinite()).tolist() == [True, True]


def test_isclose_allclose_equal(device):
    a = to_tensor(np.array([1.0, np.inf, np.nan, 100.0]), device)
    b = to_tensor(np.array([1.0 + 1e-9, np.inf, np.nan, 100.002]), device)
    np.testing.assert_array_equal(host(minidl.isclose(a, b)), [True, True, False, False])
    np.testing.assert_array_equal(host(a.isclose(b, rtol=1e-4, equal_nan=True)), [True] * 4)
    assert minidl.allclose(a, b) is False
    assert minidl.allclose(a, b, rtol=1e-4, equal_nan=True) is True
    assert a.allclose(a, equal_nan=True) is True
    inf = to_tensor(np.array([np.inf]), device)
    assert minidl.allclose(inf, to_tensor(np.array([1e300]), device), rtol=1.0) is False
    assert minidl.equal(b, b) is False                        # NaN != NaN, as in PyTorch
    c = to_tensor(np.array([[1, 2], [3, 4]]), device)
    assert minidl.equal(c, c.clone()) is True and c.equal(c.t()) is False
    assert minidl.equal(c, c.reshape(4)) is False
    u = to_tensor(np.array([0, 5], np.uint8), device)         # no unsigned wrap-around
    assert minidl.allclose(u, to_tensor(np.array([1, 5], np.uint8), device), atol=1.0)
    assert not minidl.allclose(u, to_tensor(np.array([255, 5], np.uint8), device), atol=1.0)
    with pytest.raises(ValueError, match="allclose: 'rtol' must be a non-negative number"):
        minidl.allclose(a, b, rtol=-1)
    torch = pytest.importorskip("torch")
    ta, tb = (torch.tensor(host(t)) for t in (a, b))
    np.testing.assert_array_equal(host(minidl.isclose(a, b)), torch.isclose(ta, tb).numpy())


def test_t_as_pytorch(device, rng):
    x = rng.standard_normal((2, 3))
    check_op(lambda t: t.t(), [x], lambda a: a.T, device)
    check_op(lambda t: t.t(), [x[0]], lambda a: a, device)
    check_op(lambda t: t.t(), [np.array(1.5)], lambda a: a, device)
    with pytest.raises(ValueError, match=r"t: expects a tensor with <= 2 dimensions, got 3"):
        minidl.ones(2, 2, 2).t()


def test_pow_method(device, rng):
    x = rng.uniform(0.5, 2.0, (2, 3))
    check_op(lambda t: t.pow(3), [x], lambda a: a ** 3, device)
    check_op(lambda a, b: a.pow(b), [x, x[0] - 1.0], lambda a, b: a ** b, device)


def test_clone_is_a_differentiable_copy(device, rng):
    x = rng.standard_normal((2, 3))
    check_op(lambda t: t.clone(), [x], lambda a: a, device)
    check_op(lambda t: minidl.clone(t.t()), [x], lambda a: a.T, device)
    t = to_tensor(x, device)
    c = t.clone()
    c.add_(1.0)
    np.testing.assert_array_equal(host(t), x)                 # no shared memory
    assert c._version == 1 and t._version == 0


def test_contiguous(device, rng):
    t = to_tensor(rng.standard_normal((2, 3)), device, requires_grad=True)
    assert t.contiguous() is t
    tt = t.t()
    assert not tt.data.flags.c_contiguous
    c = tt.contiguous()
    assert c.data.flags.c_contiguous and c is not tt
    np.testing.assert_array_equal(host(c), host(t).T)
    check_op(lambda a: a.t().contiguous(), [host(t)], lambda a: a.T, device)


def test_expand_as_reshape_as_view_as(device, rng):
    x = rng.standard_normal((3, 1))
    other = to_tensor(np.zeros((2, 3, 4)), device)
    check_op(lambda t: t.expand_as(other), [x], lambda a: np.broadcast_to(a, (2, 3, 4)), device)
    y = rng.standard_normal((6, 2))
    o = to_tensor(np.zeros((3, 4)), device)
    check_op(lambda t: t.reshape_as(o), [y], lambda a: a.reshape(3, 4), device)
    check_op(lambda t: t.view_as(o), [y], lambda a: a.reshape(3, 4), device)


def test_bool_int_half(device):
    t = to_tensor(np.array([0.0, 1.5, -2.7]), device, requires_grad=True)
    assert host(t.bool()).tolist() == [False, True, True] and t.bool().dtype == np.bool_
    assert host(t.int()).tolist() == [0, 1, -2] and t.int().dtype == np.int32
    h = t.half()
    assert h.dtype == np.float16 and h.requires_grad
    np.testing.assert_array_equal(host(h), np.array([0.0, 1.5, -2.7], np.float16))
    (h * h).sum().backward()                                   # float16 through the cast
    assert t.grad.dtype == np.float64
    np.testing.assert_allclose(host(t.grad), 2 * np.array([0.0, 1.5, -2.7], np.float16),
                               rtol=1e-3)


def test_new_factories_take_dtype_and_device_from_self(device):
    x = to_tensor(np.zeros((2,), np.float64), device)
    for t, want in ((x.new_zeros(2, 3), np.zeros((2, 3))), (x.new_ones((3,)), np.ones(3)),
                    (x.new_full((2, 2), 7), np.full((2, 2), 7.0)),
                    (x.new_tensor([[1, 2]]), np.array([[1.0, 2.0]]))):
        assert t.dtype == np.float64 and t.device == x.device and not t.requires_grad
        np.testing.assert_array_equal(host(t), want)
    e = x.new_empty(4, dtype=minidl.int32)
    assert e.shape == (4,) and e.dtype == np.int32 and e.device == x.device
    assert x.new_zeros([]).shape == ()
    r = x.new_ones(2, requires_grad=True, device="cpu")
    assert r.requires_grad and r.device.type == "cpu"
    src = np.array([1.0, 2.0])
    copy = x.new_tensor(src)
    src[0] = 9.0
    assert host(copy).tolist() == [1.0, 2.0]                   # a copy, as PyTorch
    with pytest.raises(ValueError, match="new_zeros: size must be non-negative ints"):
        x.new_zeros(-1)
    with pytest.raises(TypeError, match="new_full: 'fill_value' must be a number, got str"):
        x.new_full((2,), "a")


# ---------------------------------------------------------------------------------------------
# in-place arithmetic

def test_inplace_arithmetic_values(device, rng):
    a = rng.standard_normal((2, 3))
    b = rng.standard_normal((3,))
    t = to_tensor(a, device)
    out = t.add_(to_tensor(b, device), alpha=2.0)
    assert out is t and t._version == 1
    want = a + 2.0 * b
    np.testing.assert_allclose(host(t), want)
    t.sub_(0.5, alpha=3)
    want = want - 1.5
    t.mul_(to_tensor(b, device))
    want = want * b
    t.div_(2)
    want = want / 2
    np.testing.assert_allclose(host(t), want, rtol=1e-12)
    t.clamp_(-0.1, 0.2)
    np.testing.assert_allclose(host(t), np.clip(want, -0.1, 0.2), rtol=1e-12)
    t.clip_(max=0.0)
    np.testing.assert_allclose(host(t), np.minimum(np.clip(want, -0.1, 0.2), 0.0), rtol=1e-12)
    assert t._version == 6 and t.dtype == np.float64


def test_inplace_keeps_dtype_and_refuses_a_higher_kind(device):
    f = to_tensor(np.array([1.0, 2.0], np.float32), device)
    f.add_(to_tensor(np.array([0.5, 0.25]), device))          # float64 into float32: allowed
    assert f.dtype == np.float32 and host(f).tolist() == [1.5, 2.25]
    i = to_tensor(np.array([5, 7]), device)
    i.add_(2).mul_(3).sub_(to_tensor(np.array([1, 1], np.int32), device))
    assert i.dtype == np.int64 and host(i).tolist() == [20, 26]
    i.clamp_(min=21)
    assert host(i).tolist() == [21, 26]
    for call, what in ((lambda: i.add_(1.5), "add_: the result type float32 cannot be stored"),
                       (lambda: i.div_(2), "div_: the result type float32 cannot be stored"),
                       (lambda: i.mul_(f), "mul_: the result type float32 cannot be stored"),
                       (lambda: i.add_(1, alpha=0.5), "add_: 'alpha' must be an int"),
                       (lambda: i.clamp_(0.5), "clamp_: a float bound cannot clamp")):
        with pytest.raises(TypeError, match=what):
            call()
    assert host(i).tolist() == [21, 26] and i._version == 4    # refused: untouched


def test_inplace_argument_errors(device):
    t = to_tensor(np.zeros(3), device)
    with pytest.raises(ValueError, match=r"add_: 'other' of shape \(2, 3\) does not broadcast "
                                         r"to this tensor's shape \(3,\)"):
        t.add_(to_tensor(np.ones((2, 3)), device))
    with pytest.raises(TypeError, match="mul_: argument 'other' must be a Tensor or a number"):
        t.mul_("2")
    with pytest.raises(ValueError, match=r"clamp_: 'min' \(2\) must not exceed 'max' \(1\)"):
        t.clamp_(2, 1)
    with pytest.raises(ValueError, match="clamp_: at least one of 'min' and 'max'"):
        t.clamp_()
    with pytest.raises(RuntimeError, match="add_: this tensor's memory is read-only"):
        minidl.zeros(3).expand(2, 3).add_(1.0)
    w = to_tensor(np.zeros(3), device, requires_grad=True)
    with pytest.raises(RuntimeError, match="add_: in-place change of a tensor that requires "
                                           "grad; wrap it in minidl.no_grad"):
        w.add_(1.0)
    with minidl.no_grad():
        w.add_(1.0)
    assert host(w).tolist() == [1.0, 1.0, 1.0]


def test_inplace_through_views_bumps_the_shared_version(device):
    x = to_tensor(np.zeros((2, 3)), device)
    row = x[1]
    row.add_(5.0)
    np.testing.assert_array_equal(host(x), [[0, 0, 0], [5, 5, 5]])
    assert x._version == 1 and row._version == 1
    x.t().mul_(2.0)
    np.testing.assert_array_equal(host(x), [[0, 0, 0], [10, 10, 10]])
    assert x._version == 2 and row._version == 2


def test_backward_refuses_a_saved_tensor_changed_in_place(device):
    a = to_tensor(np.array([1.0, 2.0]), device, requires_grad=True)
    for change in (lambda w: w.add_(1.0), lambda w: w.mul_(2.0), lambda w: w.div_(2.0),
                   lambda w: w.sub_(1.0), lambda w: w.clamp_(0.0, 1.0),
                   lambda w: w.reshape(2)[0:1].add_(1.0)):
        w = to_tensor(np.array([3.0, 4.0]), device)
        y = (a * w).sum()                                       # Mul saves w
        change(w)
        with pytest.raises(RuntimeError, match="input 1 of Mul .* was modified in place"):
            y.backward()
    y = (a * a).sum()
    with minidl.no_grad():                                      # a leaf changed under no_grad
        a.add_(1.0)
    with pytest.raises(RuntimeError, match="was modified in place"):
        y.backward()


def test_comparisons_promote_tensors_as_the_arithmetic_ops_do(device):
    """float32 vs a float64 0-d tensor compares in float32 (PyTorch's promotion), so
    ``a == b`` agrees with ``a - b == 0``; int64 vs float32 compares in float32."""
    a = to_tensor(np.array([0.1], np.float32), device)
    b = to_tensor(np.array(0.1), device)
    assert host(a == b).tolist() == [True] == host((a - b) == 0).tolist()
    h = to_tensor(np.array([0.1], np.float16), device)
    assert host(h < to_tensor(np.array(0.1, np.float32), device)).tolist() == [False]
    i = to_tensor(np.array([16777217]), device)
    assert host(i.eq(to_tensor(np.array([16777216.0], np.float32), device))).tolist() == [True]


def test_in_place_integer_arithmetic_wraps_and_new_full_checks_its_value(device):
    """uint8 add_(-1) wraps as in PyTorch (NumPy raised a bare OverflowError); new_full with a
    value the dtype cannot hold is refused with minidl's message, as PyTorch refuses it."""
    a = to_tensor(np.array([0, 5], np.uint8), device)
    a.add_(-1)
    assert host(a).tolist() == [255, 4]
    with pytest.raises(ValueError, match=r"new_full: 'fill_value' 300 cannot be converted to "
                                         r"uint8 without overflow"):
        a.new_full((2,), 300)
    with pytest.raises(TypeError, match=r"new_zeros: 'dtype' must be a dtype"):
        a.new_zeros(2, dtype="foo")



@pytest.mark.parametrize("dtype, want", [("float64", [4.0, 6.0]), ("int64", [4, 6]),
                                         ("uint8", [4, 6])])
def test_in_place_sub_of_an_unsigned_tensor_with_a_negative_alpha(device, dtype, want):
    """x - (-1) * other with a uint8 ``other``: scaled in int64, not in uint8 (where NumPy
    raised a bare OverflowError for -1)."""
    x = to_tensor(np.array([1, 2], dtype), device)
    x.sub_(to_tensor(np.array([3, 4], np.uint8), device), alpha=-1)
    assert host(x).tolist() == want
    x.add_(to_tensor(np.array([1, 1], np.uint8), device), alpha=-2)
    assert host(x).tolist() == [w - 2 for w in want]


def test_flip_needs_dims_and_in_place_ops_refuse_broadcast_views(device):
    x = to_tensor(np.ones((1, 3)), device)
    with pytest.raises(TypeError, match="flip: missing the dims"):
        x.flip()
    view = x.expand(4, 3)               # stride 0: CuPy has no read-only flag to tell it
    with pytest.raises(RuntimeError, match="add_: this tensor's memory is read-only"):
        view.add_(1)


def test_comparing_small_ints_with_an_int_they_cannot_hold(device):
    """CuPy 14 raises OverflowError for uint8 == 300 or int8 < -1000 (NEP 50); the answer is
    still the mathematical one, as NumPy gives."""
    u = to_tensor(np.array([0, 255], np.uint8), device)
    assert host(u == 300).tolist() == [False, False] and host(u > -1).tolist() == [True, True]
    i = to_tensor(np.array([-5, 5], np.int8), device)
    assert host(i.lt(1000)).tolist() == [True, True] and host(i.ne(-1000)).tolist() == [True] * 2


def test_clamp_of_small_ints_with_bounds_past_their_range(device):
    a = to_tensor(np.array([0, 5, 250], np.uint8), device)
    a.clamp_(-1, 100)                                   # CuPy 14 would raise for -1
    assert host(a).tolist() == [0, 5, 100] and a.dtype == np.uint8
    a.clamp_(-1, 300)
    assert host(a).tolist() == [0, 5, 100]


# ---------------------------------------------------------------------------------------------
# operators and methods PyTorch code uses: ~ & | ^, add/sub with alpha, mT, += and x[i] = v

def test_bitwise_and_logical_ops(device):
    a = to_tensor(np.array([True, False, True]), device)
    b = to_tensor(np.array([True, True, False]), device)
    assert host(~a).tolist() == [False, True, False]
    assert host(a & b).tolist() == [True, False, False]
    assert host(a | b).tolist() == [True, True, True]
    assert host(a ^ b).tolist() == [False, True, True]
    assert host(True & a).tolist() == [True, False, True]
    i = to_tensor(np.array([1, 2, 3]), device)
    assert host(~i).tolist() == [-2, -3, -4]
    assert host(i & 6).tolist() == [0, 2, 2] and host(6 | i).tolist() == [7, 6, 7]
    u = to_tensor(np.array([1, 1, 1], np.uint8), device)
    assert (i ^ u).dtype == minidl.int64 and host(i ^ u).tolist() == [0, 3, 2]
    f = to_tensor(np.array([0.0, 2.0]), device)
    assert host(f.logical_not()).tolist() == [True, False]
    assert host(minidl.logical_and(f, to_tensor(np.array([3, 0]), device))).tolist() == [
        False, False]
    assert host(minidl.logical_or(f, 0)).tolist() == [False, True]
    assert host(f.logical_xor(f)).tolist() == [False, False]
    with pytest.raises(TypeError, match="bitwise_not: 'input' must be a bool or integer"):
        ~f
    with pytest.raises(TypeError, match="bitwise_and: 'other' must be a bool or integer"):
        i & 1.5


def test_add_sub_alpha_methods_and_mT(device, rng):
    x, y = rng.standard_normal((2, 3, 4)), rng.standard_normal((2, 3, 4))
    check_op(lambda a, b: a.add(b, alpha=0.5), [x, y], lambda a, b: a + 0.5 * b, device)
    check_op(lambda a, b: minidl.sub(a, b, alpha=-2), [x, y], lambda a, b: a + 2 * b, device)
    check_op(lambda a: a.mT, [x], lambda a: a.swapaxes(-1, -2), device)
    check_op(lambda a, b: a.matmul(b.mT).neg().mul(2.0).div(3.0), [x, y],
             lambda a, b: -(a @ b.swapaxes(-1, -2)) * 2 / 3, device)
    with pytest.raises(TypeError, match="add: 'alpha' must be a number"):
        minidl.add(to_tensor(x, device), 1, alpha="2")
    with pytest.raises(ValueError, match="mT: needs at least 2 dimensions"):
        to_tensor(np.ones(3), device).mT


def test_in_place_operators_change_the_tensor_and_its_views(device):
    x = to_tensor(np.zeros((2, 3)), device)
    row, same = x[0], x
    x += 1
    x *= 3
    x -= to_tensor(np.array([1.0, 0.0, 0.0]), device)
    x /= 2
    assert x is same
    assert host(row).tolist() == [1.0, 1.5, 1.5]
    i = to_tensor(np.array([1, 2]), device)
    with pytest.raises(TypeError, match="add_: the result type float32 cannot be stored"):
        i += 0.5


def test_in_place_operators_on_graph_tensors_stay_out_of_place_and_recorded(device):
    """Where the graph is involved, ``w += 1`` is ``w = w + 1`` (recorded, the old tensor kept
    for its users); a tensor a forward saved and then changed in place is caught by
    backward, as in PyTorch."""
    w0 = to_tensor(np.ones(3), device, requires_grad=True)
    w = w0
    w += 1
    w *= to_tensor(np.array([1.0, 2.0, 3.0]), device)
    assert w is not w0 and host(w0).tolist() == [1.0, 1.0, 1.0]
    w.sum().backward()
    assert host(w0.grad).tolist() == [1.0, 2.0, 3.0]
    a = to_tensor(np.ones(3), device)
    z = (w0 * a).sum()
    a += 1
    with pytest.raises(RuntimeError, match="was modified in place after the forward"):
        z.backward()


def test_setitem_reads_the_index_as_getitem_does(device):
    x = to_tensor(np.zeros((4, 2, 5)), device)
    ref = np.zeros((4, 2, 5))
    x[0, :, [0, 1, 2]] = to_tensor(np.arange(6.0).reshape(2, 3), device)   # PyTorch's shape
    ref[0][:, [0, 1, 2]] = np.arange(6.0).reshape(2, 3)
    x[:, 1] = 7
    ref[:, 1] = 7
    x[to_tensor(np.array([3, 1]), device)] = -1.0
    ref[[3, 1]] = -1.0
    x[x > 6] = 2                       # a mask
    ref[ref > 6] = 2
    x[..., -1] = to_tensor(np.arange(4.0)[:, None], device)                # broadcasting
    ref[..., -1] = np.arange(4.0)[:, None]
    np.testing.assert_array_equal(host(x), ref)
    i = to_tensor(np.array([5, 6]), device)
    i[0] = 1.75                        # cast to the tensor's dtype, as PyTorch
    assert host(i).tolist() == [1, 6]
    with pytest.raises(ValueError, match=r"__setitem__: a value of shape \(3,\) does not "
                                         r"broadcast to the indexed shape \(2, 5\)"):
        x[0] = to_tensor(np.ones(3), device)
    with pytest.raises(TypeError, match="__setitem__: value must be a number, a Tensor or"):
        x[0] = "a"


def test_setitem_refuses_the_graph_and_works_under_no_grad(device):
    w = to_tensor(np.ones(3), device, requires_grad=True)
    with pytest.raises(RuntimeError, match="__setitem__: assigning into a tensor while the "
                                           "graph records it"):
        w[0] = 5
    with pytest.raises(RuntimeError, match="__setitem__: assigning into a tensor while"):
        to_tensor(np.ones(3), device)[0] = w[1]
    with minidl.no_grad():
        w[0] = 5
        w += 1
    assert host(w).tolist() == [6.0, 2.0, 2.0] and w.requires_grad and w.is_leaf
    a = to_tensor(np.ones(3), device)
    z = (w * a).sum()
    a[1] = 4
    with pytest.raises(RuntimeError, match="was modified in place after the forward"):
        z.backward()


def test_bool_and_integer_edge_operations_are_clear_errors(device):
    """Where NumPy would raise its own message (or PyTorch refuses), minidl names the op."""
    b = to_tensor(np.array([True, False]), device)
    with pytest.raises(TypeError, match="neg: negating a bool tensor is not supported"):
        -b
    with pytest.raises(TypeError, match="sub: subtracting two bool operands"):
        b - b
    with pytest.raises(TypeError, match="clamp_: a bool tensor cannot be clamped"):
        b.clamp_(0, 1)
    if device == "cpu":                 # CuPy does not check the exponents' signs
        i = to_tensor(np.array([2, 3]), device)
        with pytest.raises(ValueError, match="pow: integers to negative integer powers"):
            i ** to_tensor(np.array([-1, 2]), device)


def test_in_place_ops_refuse_an_other_that_requires_grad(device):
    """copy_/add_/mul_/fill_ are not recorded: taking values from a tensor that requires grad
    would lose its gradient silently (PyTorch records them instead); refused, and allowed under
    no_grad or with detach()."""
    x = to_tensor(np.array([1.0, 2.0, 3.0]), device, requires_grad=True)
    c = to_tensor(np.zeros(3), device)
    for name, call in (("copy_", lambda: c.copy_(x)), ("add_", lambda: c.add_(x)),
                       ("mul_", lambda: c.mul_(x)), ("fill_", lambda: c.fill_(x[0]))):
        with pytest.raises(RuntimeError, match=f"{name}: the other tensor requires grad"):
            call()
    with minidl.no_grad():
        c.copy_(x)
    c.add_(x.detach())
    assert host(c).tolist() == [2.0, 4.0, 6.0]


def test_copy_broadcasts_its_source(device):
    c = to_tensor(np.zeros((2, 3)), device)
    c.copy_(to_tensor(np.array([1.0, 2.0, 3.0]), device))
    assert host(c).tolist() == [[1.0, 2.0, 3.0]] * 2
    c.copy_(to_tensor(np.array(5.0), device))
    assert (host(c) == 5).all()
    with pytest.raises(ValueError, match=r"copy_: source shape \(2,\) does not broadcast to "
                                         r"the destination shape \(2, 3\)"):
        c.copy_(to_tensor(np.zeros(2), device))


def test_numbers_an_integer_dtype_cannot_hold_are_refused_as_pytorch():
    """NumPy wrapped 300 into uint8 as 44 and NaN into int64 as -2**63; PyTorch refuses them
    and wraps only negative ints into unsigned types (-1 is 255)."""
    for call, match in [
            (lambda: minidl.tensor([300], dtype=minidl.uint8), "tensor: value 300 cannot be "
                                                               "converted to uint8"),
            (lambda: minidl.tensor([2 ** 40], dtype=minidl.int32), "tensor: value 1099511627776"),
            (lambda: minidl.tensor([float("nan")], dtype=minidl.int64), "NaN or infinity"),
            (lambda: minidl.as_tensor(-63.4, dtype=minidl.uint8), r"accepted: 0\.\.255"),
            (lambda: minidl.full((2,), float("inf"), dtype=minidl.int32), "full: a 'fill_value'"),
            (lambda: minidl.zeros(1, dtype=minidl.uint8).fill_(255.5), "fill_: value 255.5"),
            (lambda: minidl.full((1,), 128, dtype=minidl.int8), r"accepted: -128\.\.127")]:
        with pytest.raises(ValueError, match=match):
            call()
    assert minidl.full((2,), -1, dtype=minidl.uint8).tolist() == [255, 255]
    assert minidl.zeros(2, dtype=minidl.uint8).fill_(-2).tolist() == [254, 254]
    assert minidl.tensor([-1, 5], dtype=minidl.uint8).tolist() == [255, 5]
    assert minidl.tensor([1.7, -0.5], dtype=minidl.int8).tolist() == [1, 0]
