"""``x[index]`` read as PyTorch reads it: an int selects (removing its axis) before the index
arrays apply, where NumPy would count it with the arrays and, when a slice separates them,
move the arrays' axes to the front. Values and float64 gradchecks (random upstream gradient)
against the index applied in those two steps, and every small index against torch when it is
installed."""
import itertools

import numpy as np
import pytest

import minidl
from tests.helpers import check_op, host, to_tensor

# (index, the same index in two steps: its ints first, then the rest)
CASES = [
    ((0, slice(None), [0, 1, 2]), lambda a: a[0][:, [0, 1, 2]]),
    ((1, slice(None), [[0], [2]]), lambda a: a[1][:, [[0], [2]]]),
    ((-1, Ellipsis, [3, 3, 0]), lambda a: a[-1][..., [3, 3, 0]]),       # a repeated index
    ((None, 0, slice(1, 3), [1, 2]), lambda a: a[0][None, 1:3, [1, 2]]),
    ((0, slice(None), np.array([True, False, True, True])),
     lambda a: a[0][:, [0, 2, 3]]),
    ((slice(None), 1, slice(None), [0, 2]), lambda a: a[:, 1][:, :, [0, 2]]),
    (([1, 0], slice(None), 2, [1, 2]), lambda a: a[:, :, 2][[1, 0], :, [1, 2]]),
]


@pytest.mark.parametrize("case", range(len(CASES)))
def test_ints_select_before_the_index_arrays(device, rng, case):
    index, two_steps = CASES[case]
    x = rng.standard_normal((2, 3, 4, 5))
    check_op(lambda t: t[index], [x], two_steps, device)


def test_x_0_colon_list_has_pytorchs_shape():
    x = minidl.zeros(4, 2, 5)
    assert x[0, :, [0, 1, 2]].shape == (2, 3)       # NumPy's rule would give (3, 2)
    assert x[minidl.tensor(0), :, [0, 1, 2]].shape == (2, 3)
    assert x[0, [0, 1], 1:3].shape == (2, 2)


def test_an_empty_list_selects_nothing(device):
    x = minidl.zeros(3, 2, device=device, requires_grad=True)
    y = x[[]]
    assert y.shape == (0, 2)
    y.sum().backward()
    np.testing.assert_array_equal(x.grad.numpy(), np.zeros((3, 2)))


def test_small_indexes_match_torch(rng):
    torch = pytest.importorskip("torch")
    x = np.arange(2 * 3 * 4.0).reshape(2, 3, 4)
    items = [0, -1, slice(None), slice(2, 0, -1), [1, 0], [[1], [0]], None, Ellipsis,
             np.array([True, False, True])]
    checked = 0
    for k in (1, 2, 3):
        for index in itertools.product(items, repeat=k):
            if sum(it is Ellipsis for it in index) > 1:
                continue
            tt = torch.tensor(x, requires_grad=True)
            as_torch = tuple(torch.tensor(it) if isinstance(it, np.ndarray) else it
                             for it in index)
            try:
                ty = tt[as_torch]
            except (IndexError, ValueError, RuntimeError):
                continue
            t = minidl.tensor(x, requires_grad=True)
            y = t[index]
            assert y.shape == tuple(ty.shape), index
            np.testing.assert_array_equal(y.numpy(), ty.detach().numpy())
            g = rng.standard_normal(y.shape)
            y.backward(minidl.tensor(g))
            ty.backward(torch.tensor(g))
            np.testing.assert_allclose(t.grad.numpy(), tt.grad.numpy(), rtol=1e-12)
            checked += 1
    assert checked > 400


def test_nonzero_argwhere_and_where_of_a_condition(device):
    a = np.array([[0, 1, 2], [3, 0, 0]])
    t = to_tensor(a, device)
    assert host(minidl.nonzero(t)).tolist() == [[0, 1], [0, 2], [1, 0]]
    assert host(t.argwhere()).dtype == np.int64
    rows, cols = minidl.where(t > 0)
    assert host(rows).tolist() == [0, 0, 1] and host(cols).tolist() == [1, 2, 0]
    x = to_tensor(np.array([[1.0, 5.0], [3.0, 0.0]]), device)
    assert host(x[minidl.where(x > 2)]).tolist() == [5.0, 3.0]
    assert [c.shape for c in t.nonzero(as_tuple=True)] == [(3,), (3,)]
    assert minidl.nonzero(to_tensor(np.array(3.0), device)).shape == (1, 0)    # as PyTorch
    assert minidl.nonzero(to_tensor(np.zeros((2, 0)), device)).shape == (0, 2)
