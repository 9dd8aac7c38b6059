"""The fast paths of the ops a ViT training step spends its time in: F.linear on N-D input
(one 2-D product), exact GELU and layer norm in blocks of values on the host threads, scaled
dot-product attention in blocks of batch rows. Forward against a float64 reference and torch,
float64 gradchecks with random upstream gradients with the blocks made tiny and the threads
used for any size (so that a small input crosses many blocks and threads), dtypes kept."""
import importlib
import math

import numpy as np
import pytest

import minidl
import minidl.functional as F
from minidl.functional.attention import scaled_dot_product_attention_with_weights
from minidl.kernels import threads
from tests.helpers import check_op, host, to_tensor
from tests.test_attention import bool_mask, reference

activation = importlib.import_module("minidl.functional.activation")
group_norm = importlib.import_module("minidl.functional.group_norm")
attention = importlib.import_module("minidl.functional.attention")


@pytest.fixture
def small_blocks(monkeypatch, threaded):
    """Blocks of a few values, on 3 threads (conftest's ``threaded``)."""
    monkeypatch.setattr(activation, "_BLOCK", 7)
    monkeypatch.setattr(group_norm, "_BLOCK", 10)
    monkeypatch.setattr(attention, "_BLOCK", 30)


def _torch_grads(torch, fn, arrays, gy):
    """fn's output and its inputs' gradients for upstream gy, by torch in float64."""
    ts = [torch.tensor(a.astype(np.float64), requires_grad=True) for a in arrays]
    y = fn(*ts)
    y.backward(torch.tensor(gy.astype(np.float64)))
    return [y.detach().numpy()] + [t.grad.numpy() for t in ts]


def _minidl_grads(fn, arrays, gy, dtype=np.float32):
    ms = [minidl.tensor(a.astype(dtype), requires_grad=True) for a in arrays]
    y = fn(*ms)
    y.backward(minidl.tensor(gy.astype(dtype)))
    assert y.dtype == dtype and all(m.grad.dtype == dtype for m in ms)
    return [y.numpy()] + [m.grad.numpy() for m in ms]


def _assert_close32(got, want):
    """float32 results against float64 ones: within float32 rounding of their scale."""
    for g, w in zip(got, want):
        assert g.shape == w.shape
        np.testing.assert_allclose(g, w, rtol=1e-5, atol=1e-5 * max(np.abs(w).max(), 1.0))


# -- linear -----------------------------------------------------------------------------------

@pytest.mark.parametrize("xshape", [(2, 3, 5), (5,), (0, 3, 5), (2, 1, 3, 5)])
def test_linear_on_nd_input(device, rng, xshape):
    W, b = rng.standard_normal((4, 5)), rng.standard_normal(4)
    check_op(F.linear, [rng.standard_normal(xshape), W, b], lambda x, W, b: x @ W.T + b, device)
    check_op(lambda x, W: F.linear(x, W), [rng.standard_normal(xshape), W],
             lambda x, W: x @ W.T, device)


def test_linear_on_a_transposed_view(device, rng):
    x = rng.standard_normal((3, 5, 2))
    check_op(lambda x, W, b: F.linear(F.transpose(x, 1, 2), W, b),
             [x, rng.standard_normal((4, 5)), rng.standard_normal(4)],
             lambda x, W, b: np.swapaxes(x, 1, 2) @ W.T + b, device)


def test_linear_matches_torch_at_vit_size(rng):
    torch = pytest.importorskip("torch")
    arrays = [rng.standard_normal((64, 65, 192)), rng.standard_normal((576, 192)) * 0.05,
              rng.standard_normal(576)]
    gy = rng.standard_normal((64, 65, 576))
    _assert_close32(_minidl_grads(F.linear, arrays, gy),
                    _torch_grads(torch, torch.nn.functional.linear, arrays, gy))


# -- GELU -------------------------------------------------------------------------------------

def _gelu_ref(x):
    return x * 0.5 * (1.0 + np.vectorize(math.erf, otypes=[float])(x / math.sqrt(2.0)))


@pytest.mark.parametrize("shape", [(3, 5, 7), (11,)])
def test_gelu_in_blocks(device, rng, small_blocks, shape):
    check_op(F.gelu, [rng.standard_normal(shape) * 2.0], _gelu_ref, device)


def test_gelu_empty(device):
    x = to_tensor(np.zeros((0, 4), np.float32), device, requires_grad=True)
    y = F.gelu(x)
    assert y.shape == (0, 4) and y.dtype == np.float32
    y.sum().backward()
    assert x.grad.shape == (0, 4)


def test_gelu_float32_blocks_and_threads_match_torch(rng):
    """Several blocks of _BLOCK values and a partial last one, on the host threads; float32
    and float16 keep their dtype."""
    torch = pytest.importorskip("torch")
    x = rng.standard_normal((3, 70001)) * 3.0
    gy = rng.standard_normal(x.shape)
    _assert_close32(_minidl_grads(F.gelu, [x], gy),
                    _torch_grads(torch, torch.nn.functional.gelu, [x], gy))
    y16 = F.gelu(minidl.tensor(x.astype(np.float16)))
    assert y16.dtype == np.float16
    np.testing.assert_allclose(y16.numpy(), _gelu_ref(x.astype(np.float16).astype(np.float64)),
                               rtol=4e-3, atol=4e-3)


def test_gelu_blocked_on_the_host_equals_one_block(rng, monkeypatch):
    """The block and thread split does not change a value."""
    x = rng.standard_normal(5000).astype(np.float32) * 3
    gy = rng.standard_normal(5000).astype(np.float32)
    whole = _minidl_grads(F.gelu, [x], gy)
    monkeypatch.setattr(activation, "_BLOCK", 37)
    monkeypatch.setattr(threads, "_MIN_ITEMS", 1)
    for a, b in zip(_minidl_grads(F.gelu, [x], gy), whole):
        np.testing.assert_array_equal(a, b)


# -- layer norm -------------------------------------------------------------------------------

def _layer_norm_ref(x, shape, w=None, b=None, eps=1e-5):
    axes = tuple(range(x.ndim - len(shape), x.ndim))
    mu = x.mean(axis=axes, keepdims=True)
    var = ((x - mu) ** 2).mean(axis=axes, keepdims=True)
    y = (x - mu) / np.sqrt(var + eps)
    return y * (1 if w is None else w) + (0 if b is None else b)


@pytest.mark.parametrize("xshape,nshape", [((4, 3, 5), (5,)), ((2, 3, 2), (3, 2)),
                                           ((7, 1), (1,))])
@pytest.mark.parametrize("affine", ["both", "weight", "bias", "none"])
def test_layer_norm_in_blocks(device, rng, small_blocks, xshape, nshape, affine):
    x = rng.standard_normal(xshape) * 2 + 0.5
    w = rng.uniform(0.5, 1.5, nshape) if affine in ("both", "weight") else None
    b = rng.standard_normal(nshape) if affine in ("both", "bias") else None
    arrays = [x] + [a for a in (w, b) if a is not None]

    def split(p):
        return (p[0] if w is not None else None), (p[-1] if b is not None else None)

    check_op(lambda x, *p: F.layer_norm(x, nshape, *split(p), eps=1e-3), arrays,
             lambda x, *p: _layer_norm_ref(x, nshape, *split(p), eps=1e-3), device)


def test_layer_norm_matches_torch_at_vit_size(rng):
    torch = pytest.importorskip("torch")
    arrays = [rng.standard_normal((64, 65, 192)) * 2 + 3, rng.uniform(0.5, 1.5, 192),
              rng.standard_normal(192)]
    gy = rng.standard_normal((64, 65, 192))
    _assert_close32(
        _minidl_grads(lambda x, w, b: F.layer_norm(x, 192, w, b, 1e-6), arrays, gy),
        _torch_grads(torch, lambda x, w, b: torch.nn.functional.layer_norm(x, (192,), w, b,
                                                                            1e-6), arrays, gy))


# -- scaled dot-product attention -------------------------------------------------------------

@pytest.mark.parametrize("kind", ["none", "bool", "float", "causal", "padding"])
def test_attention_in_blocks(device, rng, small_blocks, kind):
    """Batch rows in blocks (and a broadcast batch axis of k)."""
    q, v = rng.standard_normal((5, 2, 4, 3)), rng.standard_normal((5, 2, 6, 2))
    k = rng.standard_normal((1, 2, 6, 3))
    arrays, kw = [q, k, v], {}
    if kind == "bool":
        arrays.append(bool_mask(rng, (4, 6)))
    elif kind == "float":
        arrays.append(rng.standard_normal((5, 1, 4, 6)))
    elif kind == "padding":
        arrays.append(bool_mask(rng, (5, 1, 1, 6)))
    elif kind == "causal":
        kw["is_causal"] = True

    def fn(q, k, v, mask=None):
        return F.scaled_dot_product_attention(q, k, v, attn_mask=mask, **kw)

    check_op(fn, arrays, lambda q, k, v, m=None: reference(q, k, v, m, kind == "causal")[0],
             device)


def test_attention_weights_in_blocks(device, rng, small_blocks):
    """Both outputs, and a gradient through the weights."""
    arrays = [rng.standard_normal(s) for s in ((3, 2, 4, 3), (3, 2, 5, 3), (3, 2, 5, 2))]
    check_op(lambda q, k, v: scaled_dot_product_attention_with_weights(q, k, v), arrays,
             lambda q, k, v: reference(q, k, v), device)


def test_attention_dropout_in_blocks_is_reproducible(device, rng, small_blocks):
    q = to_tensor(rng.standard_normal((4, 2, 5, 3)), device)
    outs = []
    for _ in range(2):
        minidl.manual_seed(3)
        out, w = scaled_dot_product_attention_with_weights(q, q, q, dropout_p=0.5)
        outs.append((host(out), host(w)))
    for a, b in zip(*outs):
        np.testing.assert_array_equal(a, b)
    out, w = outs[0]
    assert (w == 0).any() and np.allclose(out, w @ host(q))


def test_attention_matches_torch_at_vit_size(rng):
    """(N, H, L, D) views of one qkv product, as MultiheadAttention passes them."""
    torch = pytest.importorskip("torch")
    qkv = rng.standard_normal((64, 65, 3, 3, 64))
    gy = rng.standard_normal((64, 3, 65, 64))

    def run(lib, t, f):
        return f(*lib.unbind(lib.permute(t, (2, 0, 3, 1, 4)), 0))

    got = _minidl_grads(lambda t: run(F, t, F.scaled_dot_product_attention), [qkv], gy)
    want = _torch_grads(torch, lambda t: run(torch, t, torch.nn.functional.
                                             scaled_dot_product_attention), [qkv], gy)
    _assert_close32(got, want)
