"""The autograd engine: graph building, iterative backward, accumulation, freeing, grad mode,
user-defined Functions."""
import numpy as np
import pytest

import minidl
import minidl.functional as F
from minidl import Function, Tensor
from tests.helpers import host, to_tensor


def test_simple_gradient_values():
    x = minidl.tensor([1.0, 2.0, 3.0], requires_grad=True)
    y = (x * x * 3.0 + x).sum()
    y.backward()
    np.testing.assert_allclose(x.grad.numpy(), 6 * np.array([1.0, 2.0, 3.0]) + 1)


def test_chain_of_10000_ops_does_not_recurse():
    x = minidl.tensor(1.0, dtype=minidl.float64, requires_grad=True)
    y = x
    for _ in range(10000):
        y = y * 1.0001
    y.backward()
    np.testing.assert_allclose(x.grad.item(), 1.0001 ** 10000, rtol=1e-9)


def test_node_reused_many_times_sums_all_paths():
    x = minidl.tensor([2.0], dtype=minidl.float64, requires_grad=True)
    h = x * x                      # used by every term below
    total = h
    for k in range(1, 50):
        total = total + h * float(k)
    total.sum().backward()
    # d/dx sum_k c_k x^2 = 2x * (1 + 1 + 2 + ... + 49)
    np.testing.assert_allclose(x.grad.numpy(), [2 * 2.0 * (1 + sum(range(1, 50)))])


def test_diamond_graph():
    x = minidl.tensor([0.5, -1.5], dtype=minidl.float64, requires_grad=True)
    a = F.exp(x)
    b = a * 2.0
    c = a * a
    (b + c).sum().backward()
    ea = np.exp([0.5, -1.5])
    np.testing.assert_allclose(x.grad.numpy(), 2 * ea + 2 * ea * ea)


def test_summed_gradients_added_in_place_are_never_shared(rng):
    """The engine adds further gradients into a sum it made itself, in place. Add's backward
    hands one gradient array to both its inputs, so a sum handed on must stop being added
    into: here p and q both receive u's summed gradient (one array), then p*q's gradients
    arrive for both."""
    x = minidl.tensor(rng.standard_normal((3, 4)), requires_grad=True)
    w = [minidl.tensor(rng.standard_normal((3, 4))) for _ in range(3)]

    def f(t):
        p, q = t * 2.0, t * 3.0
        u = p + q
        return (u * w[0]).sum() + (u * w[1]).sum() + (p * q * w[2]).sum()
    f(x).backward()
    # u = 5x, p*q = 6x^2
    expected = 5 * (w[0].numpy() + w[1].numpy()) + 12 * x.numpy() * w[2].numpy()
    np.testing.assert_allclose(x.grad.numpy(), expected, rtol=1e-12)
    assert minidl.gradcheck(f, [x])


def test_leaf_grad_accumulates_across_backward_calls():
    x = minidl.tensor([1.0, 2.0], requires_grad=True)
    (x * 3.0).sum().backward()
    (x * 4.0).sum().backward()
    np.testing.assert_allclose(x.grad.numpy(), [7.0, 7.0])


def test_leaf_grads_never_share_a_buffer():
    a = minidl.tensor([1.0, 2.0], requires_grad=True)
    b = minidl.tensor([3.0, 4.0], requires_grad=True)
    (a + b).sum().backward()
    a.grad.data *= 10.0
    np.testing.assert_allclose(b.grad.numpy(), [1.0, 1.0])


class _Hands(Function):
    """y = x; backward hands back what ``make(gy)`` returns as x's gradient, and records the
    address of its memory (not the array: a reference would keep it shared)."""

    def __init__(self, make):
        self.make, self.address = make, None

    def forward(self, x):
        return x.copy()

    def backward(self, gy):
        g = self.make(gy)
        self.address = g.__array_interface__["data"][0]
        return g


def _leaf_grad(make, shape=(3, 4)):
    x = minidl.tensor(np.zeros(shape), requires_grad=True)
    fn = _Hands(make)
    fn(x).backward(minidl.tensor(np.arange(np.prod(shape), dtype=np.float64).reshape(shape)))
    return x.grad.data, fn.address


def test_unshared_gradient_becomes_the_leaf_grad_without_a_copy():
    """A gradient array nothing else holds (a backward's fresh result, or a reshaped view of
    one) is stored as it is: no copy per leaf and step (65 on ResNet-20, each a GPU launch)."""
    g, address = _leaf_grad(lambda gy: gy * 2.0)
    assert g.__array_interface__["data"][0] == address
    g, address = _leaf_grad(lambda gy: (gy * 2.0).reshape(-1).reshape(3, 4))
    assert g.__array_interface__["data"][0] == address
    np.testing.assert_array_equal(g, 2.0 * np.arange(12.0).reshape(3, 4))


_HELD = {}


class _Subclass(np.ndarray):
    """Views of a NumPy subclass keep a chain of bases (NumPy does not collapse it), as the
    emulated GPU's arrays do."""


@pytest.mark.parametrize("held", [False, True])
def test_gradient_behind_a_chain_of_views_is_kept_only_when_no_link_is_held(held):
    def make(gy):
        bottom = gy * 2.0
        if held:
            _HELD["bottom"] = bottom
        return bottom.view(_Subclass).reshape(-1).reshape(3, 4)     # g -> view -> bottom

    g, address = _leaf_grad(make)
    assert (g.__array_interface__["data"][0] == address) is not held


@pytest.mark.parametrize("case", ["upstream", "held", "view_of_held", "part", "transposed"])
def test_shared_gradients_are_copied_into_the_leaf_grad(case):
    """Whatever else can reach the gradient's memory makes the engine copy it: the caller's
    upstream gradient handed through unchanged, an array a backward keeps (a cache), a view of
    one, a view of part of a larger buffer (the rest would stay alive), a non-contiguous one."""
    def make(gy):
        if case == "upstream":
            return gy
        if case in ("held", "view_of_held"):
            _HELD["buffer"] = gy * 2.0
            return _HELD["buffer"] if case == "held" else _HELD["buffer"].reshape(3, 4)
        if case == "part":
            return np.concatenate([gy, gy])[:3]
        return np.ascontiguousarray(gy.T).T

    g, address = _leaf_grad(make)
    assert g.__array_interface__["data"][0] != address
    assert g.base is None and g.flags.c_contiguous
    before = g.copy()
    if case == "upstream":
        return      # the caller's array is its own: checked by the address above
    if case in ("held", "view_of_held"):
        _HELD["buffer"][...] = -1.0
    np.testing.assert_array_equal(g, before)


def test_backward_twice_through_freed_graph_says_so():
    x = minidl.tensor([1.0], requires_grad=True)
    y = (x * 2.0).exp().sum()
    y.backward()
    with pytest.raises(RuntimeError, match="second time"):
        y.backward()


def test_retain_graph_allows_second_backward():
    x = minidl.tensor([1.0], dtype=minidl.float64, requires_grad=True)
    y = (x * 2.0).exp().sum()
    y.backward(retain_graph=True)
    y.backward()
    np.testing.assert_allclose(x.grad.numpy(), 2 * 2 * np.exp(2.0))


def test_graph_is_freed_after_backward():
    x = minidl.tensor(np.ones(4), requires_grad=True)
    y = x * 2.0
    z = y.sum()
    z.backward()
    assert y.grad_fn.saved is None and y.grad_fn._inputs is None


def test_non_scalar_backward_needs_grad():
    x = minidl.tensor(np.ones((2, 3)), requires_grad=True)
    y = x * 2.0
    with pytest.raises(RuntimeError, match="grad can be omitted only"):
        y.backward()
    y.backward(minidl.ones(2, 3))
    np.testing.assert_allclose(x.grad.numpy(), 2 * np.ones((2, 3)))


def test_backward_grad_shape_checked():
    x = minidl.tensor(np.ones((2, 3)), requires_grad=True)
    with pytest.raises(RuntimeError, match=r"grad has shape \(3,\)"):
        (x * 2.0).backward(minidl.ones(3))


def test_backward_without_requires_grad_raises():
    with pytest.raises(RuntimeError, match="does not require grad"):
        minidl.ones(3).sum().backward()


def test_retain_grad_keeps_intermediate_gradient():
    x = minidl.tensor([1.0, 2.0], dtype=minidl.float64, requires_grad=True)
    h = x * 3.0
    h.retain_grad()
    (h * h).sum().backward()
    np.testing.assert_allclose(h.grad.numpy(), 2 * h.numpy())
    assert (x * 3.0).grad is None


def test_no_grad_and_enable_grad():
    x = minidl.tensor([1.0], requires_grad=True)
    with minidl.no_grad():
        y = x * 2.0
        assert not minidl.is_grad_enabled()
        with minidl.enable_grad():
            z = x * 2.0
    assert minidl.is_grad_enabled()
    assert not y.requires_grad and y.grad_fn is None
    assert z.requires_grad and z.grad_fn is not None

    @minidl.no_grad()
    def f(t):
        return t * 2.0
    assert not f(x).requires_grad


def test_detach_cuts_graph_and_shares_data():
    x = minidl.tensor([1.0, 2.0], requires_grad=True)
    d = (x * 2.0).detach()
    assert d.is_leaf and not d.requires_grad
    y = x * 1.0
    assert y.detach().data is y.data


def test_unused_output_of_multi_output_op_gets_zero_gradient():
    x = minidl.tensor(np.arange(6.0), requires_grad=True)
    a, b, c = F.split(x, 2)
    (b * 5.0).sum().backward()
    np.testing.assert_allclose(x.grad.numpy(), [0, 0, 5, 5, 0, 0])


def test_requires_grad_only_for_floats():
    with pytest.raises(TypeError, match="floating-point"):
        minidl.tensor([1, 2], requires_grad=True)


def test_float32_grad_from_float64_operand_keeps_dtype():
    x = minidl.tensor([1.0, 2.0], requires_grad=True)                    # float32
    w = minidl.tensor([3.0, 4.0], dtype=minidl.float64)
    (x * w).sum().backward()
    assert x.grad.dtype == np.float32


class Cube(Function):
    """y = x^3.  Gradient: gx = 3 x^2 gy."""

    def forward(self, x):
        self.save_for_backward(x)
        return x ** 3

    def backward(self, gy):
        (x,) = self.saved
        return 3.0 * x * x * gy


def test_user_defined_function_passes_gradcheck():
    x = minidl.randn(3, 4, dtype=minidl.float64, requires_grad=True)
    assert minidl.gradcheck(lambda t: Cube()(t), [x])
    y = Cube()(x)
    assert isinstance(y.grad_fn, Cube)


class WrongShape(Function):
    def forward(self, x):
        return x * 2

    def backward(self, gy):
        return gy.sum(axis=0)


def test_backward_returning_wrong_shape_is_reported():
    x = minidl.randn(3, 4, requires_grad=True)
    with pytest.raises(RuntimeError, match="WrongShape.backward returned a gradient of shape"):
        WrongShape()(x).sum().backward()


def test_function_with_python_number_inputs():
    class AddScaled(Function):
        def forward(self, x, k):
            return x * k

        def backward(self, gy):
            return gy * 1.0, None
    x = minidl.randn(3, dtype=minidl.float64, requires_grad=True)
    y = AddScaled()(x, 4.0)
    y.sum().backward()
    np.testing.assert_allclose(x.grad.numpy(), np.ones(3))


def test_backward_through_to_dtype_and_float_method():
    x = minidl.tensor([1.0, 2.0], requires_grad=True)
    y = x.double() * 2.0
    assert y.dtype == np.float64
    y.sum().backward()
    assert x.grad.dtype == np.float32
    np.testing.assert_allclose(x.grad.numpy(), [2.0, 2.0])


def test_inplace_on_leaf_requiring_grad_is_refused():
    x = minidl.zeros(3, requires_grad=True)
    with pytest.raises(RuntimeError, match="no_grad"):
        x.fill_(1.0)
    with minidl.no_grad():
        x.fill_(1.0)
    np.testing.assert_allclose(x.numpy(), np.ones(3))


def test_tensor_is_hashable_and_comparisons_give_bool_tensors():
    x = minidl.tensor([1.0, 2.0, 3.0])
    assert len({x, x}) == 1
    m = x > 1.5
    assert m.dtype == np.bool_ and m.tolist() == [False, True, True]
    assert (x == 2.0).tolist() == [False, True, False]


def test_numpy_scalar_on_left_defers_to_tensor():
    x = minidl.tensor([1.0, 2.0], requires_grad=True)
    y = np.float32(2.0) * x
    assert isinstance(y, Tensor) and y.dtype == np.float32


def test_zero_dim_gradients_meeting_at_one_node():
    """NumPy's ufuncs return scalars for 0-d arrays; two such gradients of one tensor must
    still add up (they crashed the engine's sum)."""
    x = minidl.tensor(3.0, dtype=minidl.float64, requires_grad=True)
    alpha = minidl.tensor(0.25, dtype=minidl.float64, requires_grad=True)
    loss = alpha * x * x + (1.0 - alpha) * x.exp() * x.log()
    loss.backward()
    d_alpha = 9.0 - np.exp(3.0) * np.log(3.0)
    d_x = 0.25 * 6.0 + 0.75 * np.exp(3.0) * (np.log(3.0) + 1.0 / 3.0)
    np.testing.assert_allclose([alpha.grad.item(), x.grad.item()], [d_alpha, d_x], rtol=1e-12)
    assert isinstance(x.grad.data, np.ndarray) and x.grad.shape == ()


def test_grad_mode_is_per_thread():
    import threading
    inside, release = threading.Event(), threading.Event()

    def other():
        with minidl.no_grad():
            inside.set()
            release.wait(10)

    t = threading.Thread(target=other)
    t.start()
    inside.wait(10)
    try:
        assert minidl.is_grad_enabled()
        assert (minidl.ones(2, requires_grad=True) * 3.0).requires_grad
    finally:
        release.set()
        t.join()
    assert minidl.is_grad_enabled()


def test_leaf_gradient_is_writeable():
    """A gradient that arrives as a read-only view (a reduction over a size-1 axis broadcasts
    back) is copied into .grad, which users may scale or zero in place."""
    x = minidl.ones(1, 3, requires_grad=True)
    (x.mean(0) * 2.0).sum().backward()
    x.grad.data *= 0.5
    x.grad.zero_()
    np.testing.assert_array_equal(x.grad.numpy(), np.zeros((1, 3)))


def test_a_function_instance_records_one_call():
    from tests.test_gradcheck import GoodSquare as _Square
    a = minidl.tensor([1.0, 2.0], requires_grad=True)
    op = _Square()
    y = op(a)
    with pytest.raises(RuntimeError, match="GoodSquare: this Function instance already recorded"):
        op(minidl.tensor([3.0], requires_grad=True))
    y.sum().backward()
    np.testing.assert_array_equal(a.grad.numpy(), [2.0, 4.0])
    with pytest.raises(RuntimeError, match="already recorded"):      # released, still used
        op(a)
    with minidl.no_grad():
        free = _Square()
        free(a), free(a)                  # nothing recorded: calling again is harmless


def test_backward_refuses_inputs_changed_in_place_after_forward():
    """A saved input changed in place (fill_, copy_, zero_, an optimizer step) would give a
    silently wrong gradient; PyTorch raises, so does minidl. An op that saved nothing of it
    (add) is unaffected."""
    a, b = minidl.tensor([1.0, 2.0], requires_grad=True), minidl.tensor([3.0, 4.0])
    y = (a * b).sum()
    b.fill_(0.0)
    with pytest.raises(RuntimeError, match=r"input 1 of Mul \(shape \(2,\)\) was modified in "
                                           r"place .*version 0, now 1"):
        y.backward()
    a = minidl.tensor([1.0, 2.0], requires_grad=True)
    y = (a * a).sum()
    with minidl.no_grad():
        a.copy_(minidl.tensor([5.0, 5.0]))
    with pytest.raises(RuntimeError, match="input 0 of Mul"):
        y.backward()
    lin = minidl.nn.Linear(2, 1)
    opt = minidl.optim.SGD(lin.parameters(), lr=0.1)
    loss = lin(minidl.ones(3, 2)).sum()
    loss.backward(retain_graph=True)
    opt.step()
    with pytest.raises(RuntimeError, match="of Linear .* was modified in place"):
        loss.backward()
    a, b = minidl.tensor([1.0, 2.0], requires_grad=True), minidl.tensor([3.0, 4.0])
    y = (a + b).sum()
    b.zero_()
    y.backward()
    np.testing.assert_array_equal(a.grad.numpy(), [1.0, 1.0])


@pytest.mark.parametrize("use", [lambda x, w: x @ w.T, lambda x, w: x * w[0],
                                 lambda x, w: x * w.reshape(6)[:3],
                                 lambda x, w: x * w.detach()[1]])
def test_in_place_change_of_a_base_is_seen_through_its_views(use):
    """Views (transpose, indexing, reshape, detach) share their base's version counter, as in
    PyTorch: a change of the base after the forward is refused through any of them."""
    x, w = minidl.ones(2, 3, requires_grad=True), minidl.ones(2, 3)
    y = use(x, w).sum()
    w.fill_(2.0)
    with pytest.raises(RuntimeError, match="was modified in place after the forward"):
        y.backward()
    x, w = minidl.ones(2, 3, requires_grad=True), minidl.ones(2, 3)
    y = use(x, w).sum()
    w[0:1].detach().zero_()              # through a view of the base: the same counter
    with pytest.raises(RuntimeError, match="was modified in place"):
        y.backward()


def test_one_no_grad_object_nested_and_reused():
    ng = minidl.no_grad()
    with ng:
        with ng:
            assert not minidl.is_grad_enabled()
        assert not minidl.is_grad_enabled()        # the inner exit restored "off", not "on"
    assert minidl.is_grad_enabled()


@pytest.mark.parametrize("op", ["exp", "sqrt", "sigmoid", "tanh", "reciprocal"])
def test_backward_refuses_an_output_its_op_saved_changed_in_place(op):
    """exp, sqrt, sigmoid... keep their output for backward; scaling it in place afterwards
    (through the tensor or a detached alias) made the gradient silently wrong. PyTorch
    raises, and so does minidl now."""
    for alias in (lambda y: y, lambda y: y.detach()):
        x = minidl.tensor(np.array([1.0, 2.0]), requires_grad=True)
        y = getattr(x, op)()
        z = y.sum()
        with minidl.no_grad():
            alias(y).mul_(10)
        with pytest.raises(RuntimeError, match=f"output 0 of {op.capitalize()}, which its "
                           "backward uses, was modified in place"):
            z.backward()
    x = minidl.tensor(np.array([1.0, 2.0]), requires_grad=True)
    y = getattr(x, op)()
    (y * 2).sum().backward()                 # untouched: fine


def test_index_and_mask_tensors_changed_after_the_forward_do_not_move_the_gradient(device):
    """getitem, where, masked_fill, gather and embedding keep a copy of their index or mask
    when the graph records them, so changing the index tensor in place before backward (which
    PyTorch refuses) cannot send the gradient elsewhere."""
    def fresh():
        return to_tensor(np.arange(1.0, 7.0).reshape(2, 3), device, requires_grad=True)

    def t(a):
        return to_tensor(np.array(a), device)

    cases = [
        (lambda x, i: (x[i] ** 2).sum(), [0, 0], 1, [[4, 8, 12], [0, 0, 0]]),
        (lambda x, c: (minidl.where(c, x, x * 0) * 3).sum(),
         [[True, False, True], [False, True, False]], True, [[3, 0, 3], [0, 3, 0]]),
        (lambda x, c: (x.masked_fill(c, 0.0) * 3).sum(),
         [[True, False, True], [False, True, False]], True, [[0, 3, 0], [3, 0, 3]]),
        (lambda x, g: x.gather(1, g).sum(), [[0, 0], [1, 1]], 2, [[2, 0, 0], [0, 2, 0]]),
        (lambda x, e: F.embedding(e, x).sum(), [0, 0], 1, [[2, 2, 2], [0, 0, 0]]),
    ]
    for fn, index, later, want in cases:
        x, idx = fresh(), t(index)
        loss = fn(x, idx)
        idx.fill_(later)
        loss.backward()
        np.testing.assert_array_equal(host(x.grad), want)


def test_setting_requires_grad_checks_as_requires_grad_does():
    """The attribute is requires_grad_(): a non-leaf cannot stop requiring grad (its path to
    the leaves would be cut silently) and an integer tensor cannot start."""
    x = minidl.tensor([1.0, 2.0], requires_grad=True)
    y = x * 2
    with pytest.raises(RuntimeError, match="cannot turn off requires_grad on a non-leaf"):
        y.requires_grad = False
    i = minidl.tensor([1, 2])
    with pytest.raises(TypeError, match="only floating-point tensors can require gradients"):
        i.requires_grad = True
    leaf = minidl.ones(2)
    leaf.requires_grad = True
    assert leaf.requires_grad and leaf.is_leaf
    (leaf * y).sum().backward()
    assert leaf.grad.tolist() == [2.0, 4.0] and x.grad.tolist() == [2.0, 2.0]
