"""PReLU, logsigmoid, softsign, tanhshrink, soft/hardshrink; normalize, cosine_similarity,
pairwise_distance; embedding; Unflatten. Forward against NumPy expressions written here (and
torch where installed), float64 gradchecks with random upstream gradients, errors."""
import numpy as np
import pytest

import minidl
import minidl.functional as F
import minidl.nn as nn
from minidl.functional.embedding import segment_sum
from tests.helpers import check_op, host, to_tensor


def _away_from(x, points, gap=1e-3):
    """x with entries near the kinks moved off them (finite differences straddle a kink)."""
    for p in points:
        x = np.where(np.abs(x - p) < gap, p + 2 * gap, x)
    return x


# ---------------------------------------------------------------------------------------------
# activations

@pytest.mark.parametrize("shape,nw", [((2, 3, 4), 3), ((2, 3, 4), 1), ((5,), 1), ((2, 4), 4),
                                      ((), 1), ((2, 3, 2, 2, 2), 3)])
def test_prelu(device, rng, shape, nw):
    x = _away_from(rng.standard_normal(shape), [0.0])
    w = rng.standard_normal((nw,))

    def ref(a, w):
        wb = w.reshape((1, nw) + (1,) * (a.ndim - 2)) if nw > 1 else w.reshape(())
        return np.where(a > 0, a, wb * a)
    check_op(F.prelu, [x, w], ref, device)


def test_prelu_layer_and_torch(rng):
    m = nn.PReLU(3, init=0.1)
    assert m.weight.shape == (3,) and np.all(m.weight.numpy() == np.float32(0.1))
    assert nn.PReLU().weight.numpy().tolist() == [0.25]
    x = rng.standard_normal((2, 3, 4)).astype(np.float32)
    y = m(minidl.tensor(x))
    y.sum().backward()
    # gW[c] = sum of x over the entries of channel c that are not positive
    np.testing.assert_allclose(m.weight.grad.numpy(), np.where(x > 0, 0, x).sum(axis=(0, 2)),
                               rtol=1e-6)
    torch = pytest.importorskip("torch")
    np.testing.assert_allclose(
        y.numpy(), torch.nn.functional.prelu(torch.tensor(x), torch.full((3,), 0.1)).numpy(),
        rtol=1e-6)


def test_prelu_errors():
    x = minidl.randn(2, 3)
    with pytest.raises(ValueError, match=r"prelu: 'weight' has 2 entries, expected 1 or the "
                                         r"number of channels of 'input' \(3"):
        F.prelu(x, minidl.randn(2))
    with pytest.raises(ValueError, match=r"prelu: 'weight' must be 0-D or 1-D"):
        F.prelu(x, minidl.randn(1, 3))
    with pytest.raises(TypeError, match=r"prelu: 'weight' has dtype float64, 'input' float32"):
        F.prelu(x, minidl.randn(3, dtype=minidl.float64))
    with pytest.raises(ValueError, match=r"PReLU: 'num_parameters' must be a positive int"):
        nn.PReLU(0)


def _sig(a):
    return 1.0 / (1.0 + np.exp(-a))


POINTWISE = [
    ("logsigmoid", F.logsigmoid, nn.LogSigmoid, lambda a: np.log(_sig(a)), []),
    ("softsign", F.softsign, nn.Softsign, lambda a: a / (1 + np.abs(a)), [0.0]),
    ("tanhshrink", F.tanhshrink, nn.Tanhshrink, lambda a: a - np.tanh(a), []),
    ("softshrink", lambda t: F.softshrink(t, 0.3), lambda: nn.Softshrink(0.3),
     lambda a: np.where(a > 0.3, a - 0.3, np.where(a < -0.3, a + 0.3, 0.0)), [0.3, -0.3]),
    ("hardshrink", lambda t: F.hardshrink(t, 0.3), lambda: nn.Hardshrink(0.3),
     lambda a: np.where(np.abs(a) > 0.3, a, 0.0), [0.3, -0.3]),
]


@pytest.mark.parametrize("name,fn,layer,ref,kinks", POINTWISE, ids=[p[0] for p in POINTWISE])
def test_pointwise(device, rng, name, fn, layer, ref, kinks):
    x = _away_from(rng.standard_normal((3, 4)) * 2, kinks)
    check_op(fn, [x], ref, device)
    np.testing.assert_allclose(host(layer()(to_tensor(x, device))), ref(x), rtol=1e-12)


def test_pointwise_torch_and_kinks(rng):
    torch = pytest.importorskip("torch")
    tf = torch.nn.functional
    x = np.concatenate([rng.standard_normal(20) * 3, [0.5, -0.5, 0.0, 60.0, -60.0]])
    for ours, theirs in [(F.logsigmoid, tf.logsigmoid), (F.softsign, tf.softsign),
                         (F.tanhshrink, tf.tanhshrink), (F.softshrink, tf.softshrink),
                         (F.hardshrink, tf.hardshrink)]:
        t = minidl.tensor(x, requires_grad=True)
        ours(t).sum().backward()
        tt = torch.tensor(x, requires_grad=True)
        theirs(tt).sum().backward()
        np.testing.assert_allclose(ours(minidl.tensor(x)).numpy(), theirs(tt).detach().numpy(),
                                   rtol=1e-12, atol=1e-15)
        np.testing.assert_allclose(t.grad.numpy(), tt.grad.numpy(), rtol=1e-12, atol=1e-15)


def test_logsigmoid_is_stable():
    y = F.logsigmoid(minidl.tensor(np.array([-800.0, 800.0], np.float32)))
    np.testing.assert_allclose(y.numpy(), [-800.0, 0.0])


def test_shrink_errors():
    with pytest.raises(ValueError, match=r"softshrink: 'lambd' must be a non-negative number, "
                                         r"got -1.0"):
        F.softshrink(minidl.randn(3), -1.0)
    with pytest.raises(TypeError, match=r"hardshrink: 'lambd' must be a number"):
        F.hardshrink(minidl.randn(3), "0.5")
    with pytest.raises(TypeError, match=r"logsigmoid: argument 'input' must be a floating"):
        F.logsigmoid(minidl.tensor([1, 2]))


# ---------------------------------------------------------------------------------------------
# normalize, cosine_similarity, pairwise_distance

@pytest.mark.parametrize("p,dim", [(2.0, 1), (1.0, -1), (3.0, 0), (np.inf, 1)])
def test_normalize(device, rng, p, dim):
    x = rng.standard_normal((3, 4, 2))

    def ref(a):
        n = np.sum(np.abs(a) ** p, axis=dim, keepdims=True) ** (1 / p) if p != np.inf else \
            np.max(np.abs(a), axis=dim, keepdims=True)
        return a / np.maximum(n, 1e-12)
    check_op(lambda t: F.normalize(t, p, dim), [x], ref, device)


def test_normalize_zero_vector():
    x = minidl.zeros(2, 3, requires_grad=True)
    y = F.normalize(x)
    y.sum().backward()
    assert np.all(y.numpy() == 0) and np.all(np.isfinite(x.grad.numpy()))


@pytest.mark.parametrize("s1,s2,dim", [((3, 4), (3, 4), 1), ((2, 3, 1), (1, 3, 4), 1),
                                       ((5,), (5,), 0), ((2, 3), (3,), -1)])
def test_cosine_similarity(device, rng, s1, s2, dim):
    a, b = rng.standard_normal(s1), rng.standard_normal(s2)

    def ref(a, b):
        a, b = np.broadcast_arrays(a, b)
        na = np.sqrt(np.sum(a * a, axis=dim, keepdims=True))
        nb = np.sqrt(np.sum(b * b, axis=dim, keepdims=True))
        return np.sum(a * b / (na * nb), axis=dim)
    check_op(lambda x, y: F.cosine_similarity(x, y, dim), [a, b], ref, device)


@pytest.mark.parametrize("s1,s2,p,keepdim", [((3, 4), (3, 4), 2.0, False), ((2, 3), (3,), 1.5,
                                                                            True),
                                             ((4,), (4,), 1.0, False),
                                             ((2, 1, 3), (4, 3), 3.0, False)])
def test_pairwise_distance(device, rng, s1, s2, p, keepdim):
    a, b = rng.standard_normal(s1), rng.standard_normal(s2)

    def ref(a, b):
        return np.sum(np.abs(a - b + 1e-6) ** p, axis=-1, keepdims=keepdim) ** (1 / p)
    check_op(lambda x, y: F.pairwise_distance(x, y, p, keepdim=keepdim), [a, b], ref, device)


def test_distances_torch_and_layers(rng):
    a, b = rng.standard_normal((4, 5)), rng.standard_normal((4, 5))
    tiny = np.array([[1e-5, 2e-5, 0.0]]), np.array([[3e-5, -1e-5, 2e-5]])
    cos = nn.CosineSimilarity(dim=1)(minidl.tensor(a), minidl.tensor(b)).numpy()
    dist = nn.PairwiseDistance(p=1.0)(minidl.tensor(a), minidl.tensor(b)).numpy()
    np.testing.assert_allclose(dist, np.sum(np.abs(a - b + 1e-6), axis=-1))
    torch = pytest.importorskip("torch")
    tf = torch.nn.functional
    np.testing.assert_allclose(cos, tf.cosine_similarity(torch.tensor(a), torch.tensor(b)))
    np.testing.assert_allclose(
        F.cosine_similarity(minidl.tensor(tiny[0]), minidl.tensor(tiny[1])).numpy(),
        tf.cosine_similarity(torch.tensor(tiny[0]), torch.tensor(tiny[1])).numpy())
    np.testing.assert_allclose(dist, tf.pairwise_distance(torch.tensor(a), torch.tensor(b), 1.0))
    np.testing.assert_allclose(F.normalize(minidl.tensor(a), 3.0, 0).numpy(),
                               tf.normalize(torch.tensor(a), 3.0, 0).numpy())


def test_distance_errors():
    with pytest.raises(ValueError, match=r"cosine_similarity: shapes \(2, 3\) and \(2, 4\)"):
        F.cosine_similarity(minidl.randn(2, 3), minidl.randn(2, 4))
    with pytest.raises(ValueError, match=r"normalize: 'eps' must be a positive number"):
        F.normalize(minidl.randn(2, 3), eps=0)
    with pytest.raises(IndexError, match=r"normalize: 'dim'=1 is out of range"):
        F.normalize(minidl.randn(3))
    with pytest.raises(ValueError, match=r"pairwise_distance: 'p' must be a number >= 0"):
        F.pairwise_distance(minidl.randn(2, 3), minidl.randn(2, 3), p=-1)


# ---------------------------------------------------------------------------------------------
# embedding

def _embedding_grad_ref(idx, gy, V):
    g = np.zeros((V, gy.shape[-1]))
    for k, v in enumerate(idx.ravel()):
        g[v] += gy.reshape(-1, gy.shape[-1])[k]
    return g


@pytest.mark.parametrize("idx_shape,pad", [((5,), None), ((2, 3), 1), ((3, 1, 2), -1), ((), 0)])
def test_embedding(device, rng, idx_shape, pad):
    V, D = 4, 3
    idx = rng.integers(0, V, idx_shape)
    W = rng.standard_normal((V, D))
    check_op(F.embedding, [idx, W], lambda i, w: w[i], device)
    # with padding_idx, forward is the same but that row gets no gradient (so no gradcheck:
    # by design it is not the derivative); the others the sum over their positions
    t = to_tensor(W, device, requires_grad=True)
    y = F.embedding(to_tensor(idx, device), t, pad)
    np.testing.assert_array_equal(host(y), W[idx])
    gy = rng.standard_normal(y.shape)
    y.backward(to_tensor(gy, device))
    expect = _embedding_grad_ref(idx, gy, V)
    if pad is not None:
        expect[pad] = 0
    np.testing.assert_allclose(host(t.grad), expect, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("M", [1, 2, 7, 33])
def test_segment_sum_matches_add_at(device, rng, M):
    ids = rng.integers(0, 5, M)
    ids[: M // 2] = 3                              # one id repeated many times
    rows = rng.standard_normal((M, 2))
    out = segment_sum(to_tensor(ids, device).data, to_tensor(rows, device).data, 6)
    expect = np.zeros((6, 2))
    np.add.at(expect, ids, rows)
    np.testing.assert_allclose(host(out), expect, rtol=1e-12, atol=1e-12)
    counts = np.bincount(ids, minlength=6)[ids][:, None]
    scaled = segment_sum(to_tensor(ids, device).data, to_tensor(rows, device).data, 6, True)
    expect = np.zeros((6, 2))
    np.add.at(expect, ids, rows / counts)
    np.testing.assert_allclose(host(scaled), expect, rtol=1e-12, atol=1e-12)


def test_embedding_layer(rng):
    emb = nn.Embedding(200, 50, padding_idx=3)
    w = emb.weight.numpy()
    assert w.dtype == np.float32 and np.all(w[3] == 0)
    assert abs(w.mean()) < 0.05 and abs(w.std() - 1) < 0.05      # N(0, 1)
    idx = minidl.tensor(np.array([[3, 5, 5], [0, 3, 199]]))
    y = emb(idx)
    assert y.shape == (2, 3, 50)
    y.sum().backward()
    g = emb.weight.grad.numpy()
    assert g[5].tolist() == [2.0] * 50 and np.all(g[3] == 0) and g[1].tolist() == [0.0] * 50
    pre = nn.Embedding.from_pretrained(minidl.tensor(w[:4]))
    assert not pre.weight.requires_grad and np.array_equal(pre(idx[:, :1]).numpy()[:, 0],
                                                           w[[3, 0]])
    torch = pytest.importorskip("torch")
    tw = torch.tensor(w, requires_grad=True)
    ty = torch.nn.functional.embedding(torch.tensor(idx.numpy()), tw, padding_idx=3,
                                       scale_grad_by_freq=True)
    (ty * torch.tensor(np.arange(300.0).reshape(2, 3, 50))).sum().backward()
    t2 = minidl.tensor(w, requires_grad=True)
    y2 = F.embedding(idx, t2, 3, scale_grad_by_freq=True)
    (y2 * minidl.tensor(np.arange(300.0, dtype=np.float32).reshape(2, 3, 50))).sum().backward()
    np.testing.assert_allclose(t2.grad.numpy(), tw.grad.numpy(), rtol=1e-6)


def test_embedding_errors():
    W = minidl.randn(4, 3)
    with pytest.raises(IndexError, match=r"embedding: index 4 is out of range for a weight "
                                         r"of 4 rows"):
        F.embedding(minidl.tensor([0, 4]), W)
    with pytest.raises(TypeError, match=r"embedding: 'input' must hold integer indices"):
        F.embedding(minidl.tensor([0.0]), W)
    with pytest.raises(ValueError, match=r"embedding: 'padding_idx' must be within \[-4, 4\)"):
        F.embedding(minidl.tensor([0]), W, padding_idx=4)
    with pytest.raises(ValueError, match=r"embedding: max_norm is not supported"):
        F.embedding(minidl.tensor([0]), W, max_norm=1.0)
    with pytest.raises(ValueError, match=r"embedding: 'weight' must be 2-D"):
        F.embedding(minidl.tensor([0]), minidl.randn(4))
    with pytest.raises(ValueError, match=r"Embedding: 'num_embeddings' must be a non-negative"):
        nn.Embedding(-1, 3)


# ---------------------------------------------------------------------------------------------
# Unflatten

def test_unflatten(rng):
    x = rng.standard_normal((2, 12, 3))
    y = nn.Unflatten(1, (3, -1))(minidl.tensor(x))
    np.testing.assert_array_equal(y.numpy(), x.reshape(2, 3, 4, 3))
    z = nn.Sequential(nn.Flatten(), nn.Unflatten(-1, (12, 3)))(minidl.tensor(x))
    np.testing.assert_array_equal(z.numpy(), x)
    with pytest.raises(ValueError, match=r"Unflatten: dim 1 of size 12 .* cannot be "
                                         r"unflattened into \(5, 2\)"):
        nn.Unflatten(1, (5, 2))(minidl.tensor(x))
    with pytest.raises(TypeError, match=r"Unflatten: 'unflattened_size' must be"):
        nn.Unflatten(1, (-1, -1))
    assert "unflattened_size=(3, -1)" in repr(nn.Unflatten(1, (3, -1)))


@pytest.mark.parametrize("fn", ["hardshrink", "softshrink"])
def test_shrink_keeps_nan_and_passes_its_gradient(device, fn):
    """A NaN is not inside [-lambd, lambd]: it stays NaN and gets the upstream gradient, as in
    PyTorch (it was silently turned into 0)."""
    x = to_tensor(np.array([np.nan, 0.7, 0.5]), device, requires_grad=True)
    y = getattr(F, fn)(x)
    y.sum().backward()
    assert np.isnan(host(y)[0]) and host(y)[2] == 0.0
    np.testing.assert_array_equal(host(x.grad), [1.0, 1.0, 0.0])


def test_fold_checks_its_arguments_under_its_own_name():
    with pytest.raises(ValueError, match="Fold: 'kernel_size' must be positive"):
        nn.Fold(4, kernel_size=0)
    assert not isinstance(nn.Fold(4, 2), nn.Unfold)
    assert nn.PixelShuffle(np.int64(2)).upscale_factor == 2
