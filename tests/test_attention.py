"""F.scaled_dot_product_attention: forward against a NumPy reference and torch, float64
gradcheck of query, key, value (and a float mask) with and without masks, causal, scale,
broadcast batch axes, L != S and E != Ev; fully masked rows; dropout statistics; dtype; bad
input."""
import math

import numpy as np
import pytest

import minidl
import minidl.functional as F
from minidl.functional.attention import scaled_dot_product_attention_with_weights
from tests.helpers import check_op, host, to_tensor


def reference(q, k, v, mask=None, causal=False, scale=None):
    """softmax(q k^T scale + mask) v in NumPy, masked pairs at -inf, fully masked rows 0."""
    scale = 1.0 / math.sqrt(q.shape[-1]) if scale is None else scale
    s = np.matmul(q, np.swapaxes(k, -1, -2)) * scale
    if mask is not None:
        s = np.where(mask, s, -np.inf) if mask.dtype == bool else s + mask
    if causal:
        s = np.where(np.tril(np.ones(s.shape[-2:], bool)), s, -np.inf)
    allowed = np.isfinite(s).any(axis=-1, keepdims=True)
    e = np.exp(s - np.where(allowed, s.max(axis=-1, keepdims=True), 0))
    p = e / np.where(allowed, e.sum(axis=-1, keepdims=True), 1)
    return np.matmul(p, v), p


def bool_mask(rng, shape):
    """A random boolean mask with at least one True per row."""
    m = rng.random(shape) > 0.4
    m[..., 0] = True
    return m


# (query, key, value) shapes: plain, L != S and E != Ev, broadcast batch axes, no batch
SHAPES = [((2, 3, 4), (2, 5, 4), (2, 5, 6)),
          ((2, 3, 4, 5), (3, 6, 5), (2, 1, 6, 7)),
          ((3, 4), (5, 4), (5, 2))]


@pytest.mark.parametrize("sq,sk,sv", SHAPES)
@pytest.mark.parametrize("kind", ["none", "bool", "float", "causal", "scale"])
def test_forward_and_gradcheck(device, rng, sq, sk, sv, kind):
    arrays = [rng.standard_normal(s) for s in (sq, sk, sv)]
    L, S = sq[-2], sk[-2]
    kw = {}
    if kind == "bool":
        arrays.append(bool_mask(rng, (L, S)))
    elif kind == "float":
        arrays.append(rng.standard_normal((L, S)))      # additive; its gradient is checked
    elif kind == "causal":
        kw["is_causal"] = True
    elif kind == "scale":
        kw["scale"] = 0.7

    def fn(q, k, v, mask=None):
        return F.scaled_dot_product_attention(q, k, v, attn_mask=mask, **kw)

    def ref(q, k, v, mask=None):
        return reference(q, k, v, mask, kw.get("is_causal", False), kw.get("scale"))[0]
    check_op(fn, arrays, ref, device)


def test_mask_broadcast_over_heads(device, rng):
    """A key padding mask (N, 1, 1, S) against (N, H, L, S) weights, and an (N, 1, L, S)
    float mask."""
    q, k, v = (rng.standard_normal((2, 3, 4, 5)) for _ in range(3))
    m = bool_mask(rng, (2, 1, 1, 4))
    check_op(lambda q, k, v: F.scaled_dot_product_attention(q, k, v, to_tensor(m, device)),
             [q, k, v], lambda q, k, v: reference(q, k, v, m)[0], device)
    f = rng.standard_normal((2, 1, 4, 4))
    check_op(lambda q, k, v, f: F.scaled_dot_product_attention(q, k, v, f), [q, k, v, f],
             lambda q, k, v, f: reference(q, k, v, f)[0], device)


def test_fully_masked_rows_are_zero_with_zero_gradients(device, rng):
    q, k, v = (rng.standard_normal(s) for s in ((2, 3, 4), (2, 5, 4), (2, 5, 6)))
    m = bool_mask(rng, (2, 3, 5))
    m[0, 1] = False                       # query 1 of sample 0 may see no key
    f = np.where(m, 0.0, -np.inf)         # the same as an additive mask
    for mask in (m, f):
        tq, tk, tv = (to_tensor(a, device, requires_grad=True) for a in (q, k, v))
        out, w = scaled_dot_product_attention_with_weights(tq, tk, tv, to_tensor(mask, device))
        o = host(out)
        assert np.isfinite(o).all() and np.isfinite(host(w)).all()
        np.testing.assert_array_equal(o[0, 1], 0.0)
        np.testing.assert_array_equal(host(w)[0, 1], 0.0)
        np.testing.assert_allclose(o, reference(q, k, v, m)[0], atol=1e-12)
        (out * to_tensor(rng.standard_normal(o.shape), device)).sum().backward()
        np.testing.assert_array_equal(host(tq.grad)[0, 1], 0.0)
        assert all(np.isfinite(host(t.grad)).all() for t in (tq, tk, tv))
    check_op(lambda q, k, v: F.scaled_dot_product_attention(q, k, v, to_tensor(m, device)),
             [q, k, v], device=device)


def test_weights_output_and_its_gradient(device, rng):
    q, k, v = (rng.standard_normal(s) for s in ((2, 3, 4), (2, 5, 4), (2, 5, 2)))
    m = bool_mask(rng, (3, 5))
    check_op(lambda q, k, v: scaled_dot_product_attention_with_weights(
        q, k, v, to_tensor(m, device)), [q, k, v], lambda q, k, v: reference(q, k, v, m),
        device)


@pytest.mark.parametrize("p", [0.2, 0.6])
def test_dropout_keep_rate_and_scaling(device, p):
    """Zero q and k make every weight 1/S; value = identity shows the dropped weights."""
    N, L, S = 8, 50, 40
    q, k = to_tensor(np.zeros((N, L, 3)), device), to_tensor(np.zeros((N, S, 3)), device)
    v = to_tensor(np.broadcast_to(np.eye(S), (N, S, S)).copy(), device)
    out, w = scaled_dot_product_attention_with_weights(q, k, v, dropout_p=p)
    o = host(out)
    np.testing.assert_array_equal(o, host(w))
    kept = o != 0
    np.testing.assert_allclose(o[kept], 1.0 / S / (1.0 - p), rtol=1e-12)
    n = o.size
    assert abs(kept.mean() - (1.0 - p)) < 5 * math.sqrt(p * (1 - p) / n)
    assert (host(F.scaled_dot_product_attention(q, k, v, dropout_p=0.0)) == 1.0 / S).all()


def test_dropout_follows_the_seed_and_is_gradchecked(device, rng):
    q, k, v = (rng.standard_normal(s) for s in ((2, 3, 4), (2, 5, 4), (2, 5, 2)))
    tq, tk, tv = (to_tensor(a, device) for a in (q, k, v))
    minidl.manual_seed(5)
    a = host(F.scaled_dot_product_attention(tq, tk, tv, dropout_p=0.5))
    minidl.manual_seed(5)
    b = host(F.scaled_dot_product_attention(tq, tk, tv, dropout_p=0.5))
    c = host(F.scaled_dot_product_attention(tq, tk, tv, dropout_p=0.5))
    np.testing.assert_array_equal(a, b)
    assert (a != c).any()

    def seeded(q, k, v):
        minidl.manual_seed(11)            # the same dropout mask in every forward
        return scaled_dot_product_attention_with_weights(q, k, v, dropout_p=0.4)
    check_op(seeded, [q, k, v], device=device)


def test_batched_matmul_gradients(device, rng):
    """F.matmul with broadcast batch axes, as attention built from ops would use it."""
    a, b = rng.standard_normal((2, 3, 4, 5)), rng.standard_normal((3, 5, 6))
    check_op(F.matmul, [a, b], np.matmul, device)
    check_op(lambda a, b: F.matmul(a, F.transpose(b, -1, -2)),
             [a, rng.standard_normal((1, 3, 6, 5))], lambda a, b: a @ np.swapaxes(b, -1, -2),
             device)


@pytest.mark.parametrize("kind", ["none", "bool", "float", "causal", "scale"])
def test_matches_torch(rng, kind):
    torch = pytest.importorskip("torch")
    q, k, v = (rng.standard_normal(s) for s in ((2, 2, 3, 4), (2, 1, 5, 4), (2, 2, 5, 6)))
    g = rng.standard_normal((2, 2, 3, 6))
    mask = None
    kw = {}
    if kind == "bool":
        mask = bool_mask(rng, (2, 1, 3, 5))
        mask[1, 0, 2] = False             # a fully masked row (torch gives zeros there too)
    elif kind == "float":
        mask = rng.standard_normal((3, 5))
    elif kind == "causal":
        kw["is_causal"] = True
    elif kind == "scale":
        kw["scale"] = 0.3
    tt = [torch.tensor(a, requires_grad=True) for a in (q, k, v)]
    ref = torch.nn.functional.scaled_dot_product_attention(
        *tt, attn_mask=None if mask is None else torch.tensor(mask), **kw)
    ref.backward(torch.tensor(g))
    mt = [to_tensor(a, requires_grad=True) for a in (q, k, v)]
    out = F.scaled_dot_product_attention(*mt, attn_mask=None if mask is None
                                         else to_tensor(mask), **kw)
    out.backward(to_tensor(g))
    np.testing.assert_allclose(host(out), ref.detach().numpy(), atol=1e-12)
    for m, t in zip(mt, tt):
        np.testing.assert_allclose(host(m.grad), t.grad.numpy(), atol=1e-12)


def test_float32_stays_float32(device, rng):
    q = to_tensor(rng.standard_normal((2, 3, 4)), device, dtype=np.float32)
    m = to_tensor(rng.standard_normal((3, 3)), device, dtype=np.float32)
    for kw in ({}, {"attn_mask": m}, {"is_causal": True}, {"dropout_p": 0.3}):
        assert F.scaled_dot_product_attention(q, q, q, **kw).dtype == np.float32


def test_bad_input():
    q, k, v = minidl.zeros(2, 3, 4), minidl.zeros(2, 5, 4), minidl.zeros(2, 5, 6)
    sdpa = F.scaled_dot_product_attention
    op = "scaled_dot_product_attention"
    with pytest.raises(ValueError, match=rf"{op}: 'key' must have the embedding size E=4 .*"
                                         r"got key \(2, 5, 3\)"):
        sdpa(q, minidl.zeros(2, 5, 3), v)
    with pytest.raises(ValueError, match=rf"{op}: 'value' must have the source length S=5"):
        sdpa(q, k, minidl.zeros(2, 4, 6))
    with pytest.raises(ValueError, match=rf"{op}: the batch dimensions"):
        sdpa(q, minidl.zeros(3, 5, 4), minidl.zeros(3, 5, 6))
    with pytest.raises(ValueError, match=rf"{op}: 'query' must have at least 2 dimensions"):
        sdpa(minidl.zeros(4), k, v)
    with pytest.raises(TypeError, match=rf"{op}: argument 'key' must be a floating-point"):
        sdpa(q, minidl.tensor(np.zeros((2, 5, 4), np.int64)), v)
    with pytest.raises(TypeError, match=rf"{op}: 'value' has dtype float64, 'query' float32"):
        sdpa(q, k, v.double())
    with pytest.raises(ValueError, match=rf"{op}: 'attn_mask' of shape \(4, 5\) must broadcast "
                                         r"to the attention weights' shape \(2, 3, 5\)"):
        sdpa(q, k, v, attn_mask=minidl.ones(4, 5))
    with pytest.raises(ValueError, match=rf"{op}: 'attn_mask' of shape \(3, 3, 5\)"):
        sdpa(q, k, v, attn_mask=minidl.ones(3, 3, 5))        # would enlarge the batch
    with pytest.raises(TypeError, match=rf"{op}: 'attn_mask' must be a bool tensor or have "
                                        r"the query's dtype float32, got int64"):
        sdpa(q, k, v, attn_mask=minidl.tensor(np.ones((3, 5), np.int64)))
    with pytest.raises(TypeError, match=rf"{op}: 'attn_mask' must be a bool tensor .* got "
                                        r"float64"):
        sdpa(q, k, v, attn_mask=minidl.zeros(3, 5).double())
    with pytest.raises(TypeError, match=rf"{op}: 'attn_mask' must be a Tensor or None, got "
                                        "ndarray"):
        sdpa(q, k, v, attn_mask=np.ones((3, 5), bool))
    for p in (1.0, -0.1, 2):
        with pytest.raises(ValueError, match=rf"{op}: 'dropout_p' must be a number in "
                                             r"\[0, 1\), got"):
            sdpa(q, k, v, dropout_p=p)
    with pytest.raises(TypeError, match=rf"{op}: 'dropout_p' must be"):
        sdpa(q, k, v, dropout_p="0.1")
    with pytest.raises(ValueError, match=rf"{op}: give either 'attn_mask' or is_causal=True"):
        sdpa(q, k, v, attn_mask=minidl.ones(3, 5), is_causal=True)
    with pytest.raises(TypeError, match=rf"{op}: 'is_causal' must be a bool"):
        sdpa(q, k, v, is_causal=1)
    with pytest.raises(TypeError, match=rf"{op}: 'scale' must be a number"):
        sdpa(q, k, v, scale="2")
    with pytest.raises(ValueError, match=rf"{op}: 'scale' must be finite"):
        sdpa(q, k, v, scale=math.inf)


def test_float16_scores_and_softmax_are_computed_in_float32(rng):
    """float16 in, float16 out, but the scores, max, exp and sum of the softmax in float32
    (as PyTorch accumulates): over 256 keys with large scores the result is as close to the
    float64 one as float16 rounding of the inputs allows, not several times further off."""
    q, k = rng.standard_normal((2, 16, 32)) * 3, rng.standard_normal((2, 256, 32)) * 3
    v = rng.standard_normal((2, 256, 32))
    half = [a.astype(np.float16) for a in (q, k, v)]
    exact = reference(*(a.astype(np.float64) for a in half))[0]   # same inputs, float64 math
    out = F.scaled_dot_product_attention(*(to_tensor(a) for a in half))
    assert out.dtype == np.float16
    # the result's own float16 rounding is at most 2**-11 relative (|out| < 2 here)
    assert np.abs(host(out).astype(np.float64) - exact).max() < 2e-3
