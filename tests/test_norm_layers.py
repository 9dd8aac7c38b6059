"""Layer, group and instance norm: forward vs NumPy loops (and torch), float64 gradchecks with
random upstream gradients on every device, the modules' parameters, bad input."""
import numpy as np
import pytest

import minidl
import minidl.functional as F
import minidl.nn as nn
from tests.helpers import check_op, host, to_tensor


def _np_layer_norm(x, shape, w=None, b=None, eps=1e-5):
    """Each block of the trailing ``shape`` normalized on its own, one block at a time."""
    lead = x.shape[:x.ndim - len(shape)]
    y = np.empty_like(x)
    for idx in np.ndindex(*lead):
        v = x[idx]
        mu = v.sum() / v.size
        var = ((v - mu) ** 2).sum() / v.size
        y[idx] = (v - mu) / np.sqrt(var + eps)
    if w is not None:
        y = y * w
    if b is not None:
        y = y + b
    return y


def _np_group_norm(x, G, w=None, b=None, eps=1e-5):
    """Loops over samples and groups; then the per channel affine map, channel by channel."""
    N, C = x.shape[:2]
    Cg = C // G
    y = np.empty_like(x)
    for n in range(N):
        for g in range(G):
            v = x[n, g * Cg:(g + 1) * Cg]
            mu = v.mean()
            var = ((v - mu) ** 2).mean()
            y[n, g * Cg:(g + 1) * Cg] = (v - mu) / np.sqrt(var + eps)
    for c in range(C):
        if w is not None:
            y[:, c] = y[:, c] * w[c]
        if b is not None:
            y[:, c] = y[:, c] + b[c]
    return y


def _params(rng, shape, affine):
    w = rng.uniform(0.5, 1.5, shape) if affine in ("both", "weight") else None
    b = rng.standard_normal(shape) if affine in ("both", "bias") else None
    return w, b


@pytest.mark.parametrize("xshape,nshape,affine", [
    ((3, 4), (4,), "both"), ((2, 3, 4), (4,), "weight"), ((2, 3, 2), (3, 2), "both"),
    ((5,), (5,), "bias"), ((2, 3, 2), (2,), "none")])
def test_layer_norm(device, rng, xshape, nshape, affine):
    x = rng.standard_normal(xshape) * 2 + 0.5
    w, b = _params(rng, nshape, affine)
    arrays = [x] + [a for a in (w, b) if a is not None]

    def fn(xt, *p):
        wt = p[0] if w is not None else None
        bt = p[-1] if b is not None else None
        return F.layer_norm(xt, nshape, wt, bt, eps=1e-3)

    check_op(fn, arrays, lambda xa, *p: _np_layer_norm(
        xa, nshape, p[0] if w is not None else None, p[-1] if b is not None else None, 1e-3),
        device)


@pytest.mark.parametrize("xshape,G,affine", [
    ((2, 4, 3), 2, "both"), ((2, 6, 2, 2), 3, "both"), ((3, 4), 2, "weight"),
    ((2, 3, 2, 2), 1, "bias"), ((2, 3, 2, 2), 3, "none")])
def test_group_norm(device, rng, xshape, G, affine):
    x = rng.standard_normal(xshape) * 1.5 - 0.3
    C = xshape[1]
    w, b = _params(rng, (C,), affine)
    arrays = [x] + [a for a in (w, b) if a is not None]

    def fn(xt, *p):
        wt = p[0] if w is not None else None
        bt = p[-1] if b is not None else None
        return F.group_norm(xt, G, wt, bt)

    check_op(fn, arrays, lambda xa, *p: _np_group_norm(
        xa, G, p[0] if w is not None else None, p[-1] if b is not None else None), device)


def test_float32_accuracy_with_a_large_mean(device, rng):
    """Statistics of float32 rows far from zero (the variance is a small difference there)."""
    x = (rng.standard_normal((4, 256)) + 300.0).astype(np.float32)
    y = F.layer_norm(to_tensor(x, device), 256)
    ref = _np_layer_norm(x.astype(np.float64), (256,))
    np.testing.assert_allclose(host(y), ref, atol=2e-4)
    assert y.dtype == np.float32


def test_one_value_per_row(device, rng):
    """A row of one value normalizes to 0 (its variance is 0): only the bias remains."""
    x = to_tensor(rng.standard_normal((3, 1)), device, requires_grad=True)
    b = to_tensor(rng.standard_normal(1), device)
    y = F.layer_norm(x, (1,), None, b)
    np.testing.assert_allclose(host(y), np.broadcast_to(host(b), (3, 1)))
    y.backward(minidl.tensor(rng.standard_normal((3, 1)), device=device))
    np.testing.assert_allclose(host(x.grad), 0.0)


def test_empty_batch(device):
    x = to_tensor(np.zeros((0, 3, 4)), device)
    assert F.layer_norm(x, 4).shape == (0, 3, 4)
    assert F.group_norm(x, 3).shape == (0, 3, 4)


def test_matches_torch_with_random_upstream_gradients(rng):
    torch = pytest.importorskip("torch")
    x = rng.standard_normal((2, 6, 3, 2))
    w, b = rng.uniform(0.5, 1.5, 6), rng.standard_normal(6)
    wl, bl = rng.uniform(0.5, 1.5, (3, 2)), rng.standard_normal((3, 2))
    gy = rng.standard_normal(x.shape)
    cases = [(lambda a, p, q, m: m.group_norm(a, 3, p, q), w, b),
             (lambda a, p, q, m: m.layer_norm(a, (3, 2), p, q), wl, bl)]
    for f, wa, ba in cases:
        ts = [torch.tensor(a, requires_grad=True) for a in (x, wa, ba)]
        ms = [minidl.tensor(a, requires_grad=True) for a in (x, wa, ba)]
        ty, my = f(*ts, torch.nn.functional), f(*ms, F)
        np.testing.assert_allclose(my.numpy(), ty.detach().numpy(), atol=1e-10)
        ty.backward(torch.tensor(gy))
        my.backward(minidl.tensor(gy))
        for t, m in zip(ts, ms):
            np.testing.assert_allclose(m.grad.numpy(), t.grad.numpy(), atol=1e-10)


# -- modules ----------------------------------------------------------------------------------

def test_layer_norm_module(device, rng):
    m = nn.LayerNorm((3, 2))
    assert [n for n, _ in m.named_parameters()] == ["weight", "bias"]
    np.testing.assert_array_equal(m.weight.numpy(), np.ones((3, 2), np.float32))
    np.testing.assert_array_equal(m.bias.numpy(), np.zeros((3, 2), np.float32))
    assert m.normalized_shape == (3, 2) and m.eps == 1e-5
    assert nn.LayerNorm(4).normalized_shape == (4,)
    nob = nn.LayerNorm(4, bias=False)
    assert nob.bias is None and list(nob.state_dict()) == ["weight"]
    assert nn.LayerNorm(4, elementwise_affine=False).weight is None
    m.to(device)
    with minidl.no_grad():
        m.weight.copy_(rng.uniform(0.5, 1.5, (3, 2)).astype(np.float32))
        m.bias.copy_(rng.standard_normal((3, 2)).astype(np.float32))
    x = rng.standard_normal((2, 3, 2)).astype(np.float32)
    y = m(to_tensor(x, device))
    np.testing.assert_allclose(host(y), _np_layer_norm(x.astype(np.float64), (3, 2),
                                                       host(m.weight), host(m.bias)),
                               atol=1e-5)
    assert repr(m) == "LayerNorm((3, 2), eps=1e-05, elementwise_affine=True)"


def test_group_and_instance_norm_modules(device, rng):
    g = nn.GroupNorm(2, 4).to(device)
    assert list(g.state_dict()) == ["weight", "bias"] and g.weight.shape == (4,)
    assert nn.GroupNorm(2, 4, affine=False).weight is None
    assert nn.GroupNorm(2, 4, bias=False).bias is None
    x = rng.standard_normal((2, 4, 3, 3)).astype(np.float32)
    np.testing.assert_allclose(host(g(to_tensor(x, device))),
                               _np_group_norm(x.astype(np.float64), 2), atol=1e-5)
    assert repr(g) == "GroupNorm(2, 4, eps=1e-05, affine=True)"

    inorm = nn.InstanceNorm2d(4)
    assert inorm.weight is None and list(inorm.state_dict()) == []
    np.testing.assert_allclose(host(inorm(to_tensor(x, device))),
                               _np_group_norm(x.astype(np.float64), 4), atol=1e-5)
    y3 = inorm(to_tensor(x[1], device))                  # unbatched (C, H, W)
    assert y3.shape == (4, 3, 3)
    np.testing.assert_allclose(host(y3), _np_group_norm(x[1:].astype(np.float64), 4)[0],
                               atol=1e-5)
    affine = nn.InstanceNorm2d(4, affine=True)
    assert [n for n, _ in affine.named_parameters()] == ["weight", "bias"]


def test_modules_match_torch(rng):
    torch = pytest.importorskip("torch")
    x = rng.standard_normal((2, 4, 3, 3)).astype(np.float32)
    pairs = [(nn.LayerNorm((3, 3)), torch.nn.LayerNorm((3, 3))),
             (nn.GroupNorm(2, 4), torch.nn.GroupNorm(2, 4)),
             (nn.InstanceNorm2d(4), torch.nn.InstanceNorm2d(4)),
             (nn.InstanceNorm2d(4, affine=True), torch.nn.InstanceNorm2d(4, affine=True))]
    for m, t in pairs:
        assert list(m.state_dict()) == list(t.state_dict())
        for p in t.parameters():                           # non-trivial affine parameters
            with torch.no_grad():
                p.copy_(torch.tensor(rng.standard_normal(p.shape)))
        m.load_state_dict({k: v.numpy() for k, v in t.state_dict().items()})
        np.testing.assert_allclose(m(minidl.tensor(x)).numpy(),
                                   t(torch.tensor(x)).detach().numpy(), atol=2e-5)


def test_module_gradcheck(device, rng):
    m = nn.GroupNorm(2, 4).double().to(device)
    with minidl.no_grad():
        m.weight.copy_(rng.uniform(0.5, 1.5, 4))
        m.bias.copy_(rng.standard_normal(4))
    x = to_tensor(rng.standard_normal((2, 4, 2)), device, requires_grad=True)
    assert minidl.gradcheck(lambda t: m(t), [x])


# -- bad input --------------------------------------------------------------------------------

def test_bad_input():
    x = minidl.ones(2, 3, 4)
    with pytest.raises(ValueError, match=r"layer_norm: expected an input of shape \(\*, 3\)"):
        F.layer_norm(x, 3)
    with pytest.raises(ValueError, match="layer_norm: 'normalized_shape' must be a non-empty"):
        F.layer_norm(x, ())
    with pytest.raises(TypeError, match="layer_norm: 'normalized_shape' must be a tuple"):
        F.layer_norm(x, 4.0)
    with pytest.raises(ValueError, match=r"layer_norm: 'weight' must have shape \(4,\), got "
                                         r"\(3,\)"):
        F.layer_norm(x, 4, minidl.ones(3))
    with pytest.raises(TypeError, match="layer_norm: 'bias' has dtype float64"):
        F.layer_norm(x, 4, None, minidl.ones(4, dtype=minidl.float64))
    with pytest.raises(TypeError, match="layer_norm: 'weight' must be a Tensor or None"):
        F.layer_norm(x, 4, np.ones(4, np.float32))
    with pytest.raises(ValueError, match="layer_norm: 'eps' must be a positive number"):
        F.layer_norm(x, 4, eps=0)
    with pytest.raises(TypeError, match="group_norm: argument 'input' must be a floating"):
        F.group_norm(minidl.tensor([[1, 2]]), 1)
    with pytest.raises(ValueError, match="group_norm: the input's 3 channels are not divisible"
                                         " by num_groups=2"):
        F.group_norm(x, 2)
    with pytest.raises(ValueError, match="group_norm: 'num_groups' must be a positive int"):
        F.group_norm(x, 0)
    with pytest.raises(ValueError, match="group_norm: 'input' must have at least 2 dim"):
        F.group_norm(minidl.ones(3), 1)
    with pytest.raises(ValueError, match=r"group_norm: 'weight' must have shape \(3,\)"):
        F.group_norm(x, 3, minidl.ones(4))


def test_bad_module_arguments():
    with pytest.raises(ValueError, match=r"GroupNorm: 'num_channels' \(6\) must be divisible "
                                         r"by 'num_groups' \(4\)"):
        nn.GroupNorm(4, 6)
    with pytest.raises(ValueError, match="GroupNorm: input has 2 channels, the layer expects 4"):
        nn.GroupNorm(2, 4)(minidl.ones(1, 2, 3))
    with pytest.raises(ValueError, match="LayerNorm: 'normalized_shape' must be a positive"):
        nn.LayerNorm((4, 0))
    with pytest.raises(ValueError, match="LayerNorm: 'eps' must be a positive number"):
        nn.LayerNorm(4, eps=-1.0)
    with pytest.raises(NotImplementedError, match="InstanceNorm2d: track_running_stats=True "
                                                  "is not supported"):
        nn.InstanceNorm2d(3, track_running_stats=True)
    with pytest.raises(ValueError, match=r"InstanceNorm2d: expected a 3-D \(C, H, W\) or 4-D"):
        nn.InstanceNorm2d(3)(minidl.ones(2, 3))
    with pytest.raises(ValueError, match="InstanceNorm2d: input has 2 channels, the layer "
                                         "expects 3"):
        nn.InstanceNorm2d(3)(minidl.ones(1, 2, 3, 3))
    with pytest.raises(ValueError, match=r"InstanceNorm2d: expected more than 1 spatial "
                                         r"element per channel .* shape \(2, 3, 1, 1\)"):
        nn.InstanceNorm2d(3)(minidl.ones(2, 3, 1, 1))          # PyTorch refuses it too
