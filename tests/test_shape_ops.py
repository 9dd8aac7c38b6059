"""Shape ops: reshape/view, transpose/permute, flatten, squeeze/unsqueeze, broadcast/expand,
indexing (slices, integer arrays with repeats, boolean masks), cat/stack/split/chunk, pad."""
import numpy as np
import pytest

import minidl
import minidl.functional as F
from tests.helpers import check_op, to_tensor


def test_reshape_view_flatten(device, rng):
    x = rng.standard_normal((2, 3, 4))
    check_op(lambda t: t.reshape(6, 4), [x], lambda a: a.reshape(6, 4), device)
    check_op(lambda t: t.view(-1, 2), [x], lambda a: a.reshape(-1, 2), device)
    check_op(lambda t: F.flatten(t, 1), [x], lambda a: a.reshape(2, 12), device)
    check_op(lambda t: t.flatten(), [x], lambda a: a.reshape(-1), device)
    check_op(lambda t: t.flatten(0, 1), [x], lambda a: a.reshape(6, 4), device)


def test_transpose_permute(device, rng):
    x = rng.standard_normal((2, 3, 4))
    check_op(lambda t: t.transpose(0, 2), [x], lambda a: a.swapaxes(0, 2), device)
    check_op(lambda t: t.permute(1, 2, 0), [x], lambda a: a.transpose(1, 2, 0), device)
    check_op(lambda t: t.T, [x], lambda a: a.T, device)
    # non-contiguous result fed to another op
    check_op(lambda t: (t.permute(2, 0, 1) * 2.0).reshape(4, 6), [x],
             lambda a: (a.transpose(2, 0, 1) * 2).reshape(4, 6), device)


def test_squeeze_unsqueeze(device, rng):
    x = rng.standard_normal((2, 1, 3, 1))
    check_op(lambda t: t.squeeze(), [x], lambda a: a.squeeze(), device)
    check_op(lambda t: t.squeeze(1), [x], lambda a: a.squeeze(1), device)
    check_op(lambda t: t.squeeze(0), [x], lambda a: a, device)
    check_op(lambda t: t.unsqueeze(-1), [x], lambda a: a[..., None], device)
    check_op(lambda t: F.unsqueeze(t, 0), [x], lambda a: a[None], device)


def test_broadcast_to_expand(device, rng):
    x = rng.standard_normal((3, 1))
    check_op(lambda t: F.broadcast_to(t, (2, 3, 4)), [x],
             lambda a: np.broadcast_to(a, (2, 3, 4)), device)
    check_op(lambda t: t.expand(2, -1, 5), [x], lambda a: np.broadcast_to(a, (2, 3, 5)),
             device)


@pytest.mark.parametrize("index", [
    (slice(None), 1), (slice(1, 3), slice(None, None, 2)), (Ellipsis, 0), (None, 1),
    1, (-1, slice(None, None, -1))])
def test_basic_indexing(device, rng, index):
    x = rng.standard_normal((4, 5))
    check_op(lambda t: t[index], [x], lambda a: a[index], device)


def test_integer_array_index_with_repeats_scatter_adds(device, rng):
    x = rng.standard_normal((4, 3))
    idx = np.array([0, 2, 0, 0, 3])
    check_op(lambda t: t[idx], [x], lambda a: a[idx], device)
    check_op(lambda t: t[to_tensor(idx, device), 1], [x], lambda a: a[idx, 1], device)
    check_op(lambda t: t[[1, 1, 2], [0, 0, 2]], [x], lambda a: a[[1, 1, 2], [0, 0, 2]], device)
    t = to_tensor(x, device, requires_grad=True)
    t[idx].sum().backward()
    counts = np.bincount(idx, minlength=4)[:, None] * np.ones((1, 3))
    np.testing.assert_allclose(t.grad.numpy(), counts)


def test_boolean_mask_index(device, rng):
    x = rng.standard_normal((3, 4))
    mask = x > 0.1
    m = to_tensor(mask, device)
    check_op(lambda t: t[m], [x], lambda a: a[mask], device)


def test_cat_stack(device, rng):
    a, b, c = rng.standard_normal((2, 3)), rng.standard_normal((4, 3)), rng.standard_normal((1, 3))
    check_op(lambda x, y, z: F.cat([x, y, z], 0), [a, b, c],
             lambda x, y, z: np.concatenate([x, y, z], 0), device)
    d, e = rng.standard_normal((2, 3)), rng.standard_normal((2, 3))
    check_op(lambda x, y: F.cat((x, y), -1), [d, e], lambda x, y: np.concatenate([x, y], 1),
             device)
    check_op(lambda x, y: F.stack([x, y], 1), [d, e], lambda x, y: np.stack([x, y], 1), device)
    check_op(lambda x: F.cat([x, x * 2.0], 0), [d], lambda x: np.concatenate([x, 2 * x]), device)


def test_cat_of_channel_major_features(device, rng):
    """Channels of conv outputs (channel-major memory on the host, as in DenseNet's blocks)
    concatenate into channel-major memory, with the same values and gradients; a mix with an
    NCHW array takes NumPy's concatenate."""
    a, b = rng.standard_normal((2, 3, 4, 5)), rng.standard_normal((2, 2, 4, 5))

    def cm(t):                              # t through an identity 1x1 conv: channel-major
        return F.conv2d(t, minidl.tensor(np.eye(t.shape[1])[:, :, None, None], device=device,
                                         dtype=t.dtype))

    check_op(lambda x, y: F.cat([cm(x), cm(y), cm(x) * 2.0], 1), [a, b],
             lambda x, y: np.concatenate([x, y, 2 * x], 1), device)
    check_op(lambda x, y: F.cat([cm(x), y], 1), [a, b], lambda x, y: np.concatenate([x, y], 1),
             device)
    if device == "cpu":
        out = F.cat([cm(minidl.tensor(a)), cm(minidl.tensor(b))], 1).data
        assert out.transpose(1, 0, 2, 3).flags.c_contiguous


def test_split_chunk(device, rng):
    x = rng.standard_normal((5, 4))
    check_op(lambda t: F.split(t, 2, 0), [x], lambda a: tuple(np.split(a, [2, 4], 0)), device)
    check_op(lambda t: F.split(t, [1, 3], 1), [x], lambda a: tuple(np.split(a, [1], 1)), device)
    check_op(lambda t: t.chunk(3, 0), [x], lambda a: tuple(np.split(a, [2, 4], 0)), device)
    check_op(lambda t: t.chunk(2, 1)[1] * 3.0, [x], lambda a: a[:, 2:] * 3, device)


def test_pad(device, rng):
    x = rng.standard_normal((2, 3, 4))
    check_op(lambda t: F.pad(t, (1, 2)), [x], lambda a: np.pad(a, ((0, 0), (0, 0), (1, 2))),
             device)
    check_op(lambda t: F.pad(t, (1, 0, 0, 2), value=1.5), [x],
             lambda a: np.pad(a, ((0, 0), (0, 2), (1, 0)), constant_values=1.5), device)


def test_bad_input():
    x = minidl.ones(2, 3)
    with pytest.raises(ValueError, match=r"reshape: cannot view a tensor of shape \(2, 3\)"):
        x.reshape(4, 2)
    with pytest.raises(ValueError, match="permute: 'dims' must be a permutation"):
        x.permute(0, 0)
    with pytest.raises(ValueError, match="cat: tensors\\[1\\] has shape"):
        F.cat([x, minidl.ones(2, 4)], 0)
    with pytest.raises(ValueError, match="stack: tensors\\[1\\] has shape"):
        F.stack([x, minidl.ones(3, 2)])
    with pytest.raises(TypeError, match="cat: 'tensors' must be a non-empty list"):
        F.cat(x)
    with pytest.raises(ValueError, match="split: sections"):
        F.split(x, [1, 1], 1)
    with pytest.raises(IndexError, match="getitem: .*out of bounds"):
        x[5]
    with pytest.raises(IndexError, match="getitem: index arrays must be integer or boolean"):
        x[np.array([0.5])]
    with pytest.raises(ValueError, match="broadcast_to: cannot broadcast shape"):
        F.broadcast_to(x, (3, 3))
    with pytest.raises(ValueError, match="pad: 'pad' needs an even number"):
        F.pad(x, (1,))
    with pytest.raises(ValueError, match="pad: negative padding"):
        F.pad(x, (-4, 1))      # x is (2, 3): -4 crops more than the dim holds (-1 crops one)


def test_zero_dim_edges_of_cat_and_transpose():
    with pytest.raises(ValueError, match=r"cat: tensors\[0\] is 0-d .* use stack"):
        minidl.cat([minidl.tensor(1.0), minidl.tensor(2.0)])
    x = minidl.tensor(3.0, requires_grad=True)
    y = x.transpose(0, -1)
    assert y.shape == () and y.item() == 3.0
    y.backward()
    assert x.grad.item() == 1.0


def test_zero_dim_tensors_take_dims_0_and_minus_1():
    x = minidl.tensor(2.0)
    assert F.softmax(x, -1).item() == 1.0 and F.log_softmax(x, 0).item() == 0.0
    assert x.squeeze(-1).shape == () and x.sum(-1).item() == 2.0
    with pytest.raises(IndexError, match=r"'dim'=1 is out of range .* \(expected -1..0\)"):
        x.sum(1)
