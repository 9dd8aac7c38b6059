"""MixUp, CutMix and MixUpOrCutMix against per-image loop references, on every device."""
import math

import numpy as np
import pytest

import minidl
import minidl.functional as F
from minidl import backend, nn, optim
from minidl.data import CutMix, MixUp, MixUpOrCutMix

from .helpers import host

K = 5   # classes


def batch(device, shape=(6, 3, 5, 7), dtype=np.float32, label_dtype=np.int64, seed=0):
    """Random images and labels, as host arrays and on ``device``. Labels of neighbours differ
    (so a mixed label row really has two classes)."""
    g = np.random.default_rng(seed)
    x = g.standard_normal(shape).astype(dtype)
    i = np.arange(shape[0])
    y = (i % 4 + (i >= 4)).astype(label_dtype)          # 0 1 2 3 1 2 3 4 ...
    assert shape[0] == 1 or (y != np.roll(y, 1)).all()
    return x, y, backend.to_device(x, device), backend.to_device(y, device)


def onehot(y):
    return np.eye(K)[y]                                 # float64 (N, K)


def mixup_reference(x, y, lam):
    """Loop oracle: image and label i mixed with i - 1 (index -1 wraps to the last)."""
    out = np.empty_like(x)
    soft = np.empty((len(x), K))
    for i in range(len(x)):
        out[i] = lam * x[i] + (1 - lam) * x[i - 1]
        soft[i] = lam * onehot(y[i]) + (1 - lam) * onehot(y[i - 1])
    return out, soft


def cutmix_reference(x, y, box):
    """Loop oracle, pixel by pixel: inside the box from image i - 1, outside from image i;
    the label weight is the share of image i's own pixels."""
    y0, x0, y1, x1 = box
    N, C, H, W = x.shape
    out = np.empty_like(x)
    for i in range(N):
        for r in range(H):
            for c in range(W):
                inside = y0 <= r < y1 and x0 <= c < x1
                out[i, :, r, c] = x[i - 1, :, r, c] if inside else x[i, :, r, c]
    own = 1 - sum(y0 <= r < y1 and x0 <= c < x1 for r in range(H) for c in range(W)) / (H * W)
    soft = np.stack([own * onehot(y[i]) + (1 - own) * onehot(y[i - 1]) for i in range(N)])
    return out, soft


def close(dtype):
    """Tolerances for a few roundings in ``dtype``."""
    eps = float(np.finfo(dtype).eps)
    return dict(rtol=4 * eps, atol=4 * eps)


class FixedDraws(np.random.Generator):
    """A Generator whose beta() and integers() return chosen values (to force CutMix boxes)."""

    def __init__(self, lam, *ints):
        super().__init__(np.random.PCG64(0))
        self.lam, self.ints = lam, list(ints)

    def beta(self, a, b, size=None):
        return self.lam

    def integers(self, low, high=None, size=None):
        return self.ints.pop(0)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("label_dtype", [np.int32, np.int64])
def test_mixup_matches_reference(device, dtype, label_dtype):
    x, y, xd, yd = batch(device, dtype=dtype, label_dtype=label_dtype)
    t = MixUp(alpha=0.4, num_classes=K)
    lam = t.get_params(x.shape, np.random.default_rng(3))
    assert lam == np.random.default_rng(3).beta(0.4, 0.4)
    out, soft = t(xd, yd, np.random.default_rng(3))
    ref, ref_soft = mixup_reference(x, y, lam)
    assert out.dtype == dtype and soft.dtype == dtype          # cross_entropy's rule
    assert backend.device_of(out) == device and backend.device_of(soft) == device
    np.testing.assert_allclose(host(out), ref, **close(dtype))
    np.testing.assert_allclose(host(soft), ref_soft, **close(dtype))
    np.testing.assert_allclose(host(soft).sum(axis=1), 1.0, **close(dtype))
    np.testing.assert_array_equal(host(xd), x)        # input untouched


def test_mixup_is_seeded():
    x, y, _, _ = batch("cpu")
    t = MixUp(num_classes=K)
    a, sa = t(x, y, 7)
    b, sb = t(x, y, np.random.default_rng(7))
    np.testing.assert_array_equal(a, b)
    np.testing.assert_array_equal(sa, sb)
    c, sc = t(x, y, 8)
    assert not np.array_equal(a, c) and not np.array_equal(sa, sc)
    minidl.manual_seed(3)
    d, _ = t(x, y)
    minidl.manual_seed(3)
    np.testing.assert_array_equal(d, t(x, y)[0])
    assert not np.array_equal(d, t(x, y)[0])


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("seed", [0, 1, 2, 3])
def test_cutmix_matches_pixel_reference(device, dtype, seed):
    x, y, xd, yd = batch(device, dtype=dtype, label_dtype=np.int32)
    t = CutMix(alpha=1.0, num_classes=K)
    box = t.get_params(x.shape, np.random.default_rng(seed))
    y0, x0, y1, x1 = box
    assert 0 < (y1 - y0) * (x1 - x0) < 5 * 7          # these seeds give a proper box
    out, soft = t(xd, yd, np.random.default_rng(seed))
    ref, ref_soft = cutmix_reference(x, y, box)
    assert out.dtype == dtype and soft.dtype == dtype          # cross_entropy's rule
    assert backend.device_of(out) == device and backend.device_of(soft) == device
    np.testing.assert_array_equal(host(out), ref)
    np.testing.assert_allclose(host(soft), ref_soft, **close(dtype))
    np.testing.assert_allclose(host(soft).sum(axis=1), 1.0, **close(dtype))
    np.testing.assert_array_equal(host(xd), x)


@pytest.mark.parametrize("box", [(0, 0, 5, 7), (2, 3, 2, 3), (0, 0, 2, 2), (3, 5, 5, 7),
                                 (0, 2, 5, 4), (4, 0, 5, 7)])
def test_cutmix_label_weight_is_the_own_pixel_share(device, box):
    x, y, xd, yd = batch(device)
    out, soft = CutMix(num_classes=K).apply(xd, yd, box)
    ref, ref_soft = cutmix_reference(x, y, box)
    np.testing.assert_array_equal(host(out), ref)
    np.testing.assert_allclose(host(soft), ref_soft, **close(np.float32))
    area = (box[2] - box[0]) * (box[3] - box[1])
    lam = 1 - area / 35
    np.testing.assert_allclose(host(soft)[np.arange(6), y], lam, **close(np.float32))


@pytest.mark.parametrize("lam,cy,cx,box", [
    (0.5, 2, 3, (1, 1, 3, 5)),      # half sides int(sqrt(.5) 5 / 2) = 1, int(sqrt(.5) 7 / 2) = 2
    (0.5, 0, 0, (0, 0, 1, 2)),      # clipped at the top-left corner
    (0.5, 4, 6, (3, 4, 5, 7)),      # clipped at the bottom-right corner
    (0.0, 2, 3, (0, 0, 4, 6)),      # lam 0: half sides int(2.5) = 2, int(3.5) = 3: 4 x 6, not 5 x 7
    (0.9, 2, 3, (2, 2, 2, 4)),      # half sides int(0.79) = 0 and int(1.107) = 1: no rows
])
def test_cutmix_box_rounding_and_clipping(lam, cy, cx, box):
    t = CutMix(num_classes=K)
    assert t.get_params((6, 3, 5, 7), FixedDraws(lam, cy, cx)) == box


def test_mixup_lambda_follows_beta():
    """Beta(a, a) has mean 1/2 and variance 1 / (4 (2a + 1)). Over n draws the sample mean has
    sd sqrt(var / n); as (X - 1/2)^2 <= 1/4, the sample variance has sd <= sqrt(var / (4 n)).
    Checked to 5 sd (n = 20000): 0.011 / 0.0075 at a = 0.2, 0.0102 / 0.0051 at a = 1, while
    the two variances (0.179, 0.083) differ by 0.095."""
    n = 20000
    for alpha in (0.2, 1.0):
        t, rng = MixUp(alpha=alpha, num_classes=K), np.random.default_rng(0)
        lam = np.array([t.get_params((2, 1, 1, 1), rng) for _ in range(n)])
        var = 1 / (4 * (2 * alpha + 1))
        assert abs(lam.mean() - 0.5) < 5 * math.sqrt(var / n)
        assert abs(lam.var() - var) < 5 * math.sqrt(var / (4 * n))
        assert lam.min() >= 0 and lam.max() <= 1


def test_mixup_or_cutmix_choice(device):
    t = MixUpOrCutMix(mixup_alpha=0.5, cutmix_alpha=2.0, num_classes=K, p_cutmix=0.3)
    rng = np.random.default_rng(0)
    picks = [t.get_params((6, 3, 5, 7), rng)[0] for _ in range(4000)]
    # fraction of CutMix: sd sqrt(0.3 * 0.7 / 4000) = 0.0072, checked to 5 sd
    assert abs(picks.count("cutmix") / 4000 - 0.3) < 0.037
    x, y, xd, yd = batch(device)
    for seed in range(6):
        which, inner = t.get_params(x.shape, np.random.default_rng(seed))
        out, soft = t(xd, yd, np.random.default_rng(seed))
        ref = getattr(t, which).apply(x, y, inner)
        np.testing.assert_array_equal(host(out), ref[0])
        np.testing.assert_array_equal(host(soft), ref[1])
    assert {MixUpOrCutMix(num_classes=K, p_cutmix=p).get_params(x.shape, 0)[0]
            for p in (0.0, 1.0)} == {"mixup", "cutmix"}


@pytest.mark.parametrize("make", [lambda: MixUp(num_classes=K), lambda: CutMix(num_classes=K),
                                  lambda: MixUpOrCutMix(num_classes=K)])
def test_tensors_in_tensors_out_arrays_in_arrays_out(device, make):
    x, y, xd, yd = batch(device)
    t = make()
    out, soft = t(minidl.tensor(x, device=device), minidl.tensor(y, device=device), 0)
    assert isinstance(out, minidl.Tensor) and isinstance(soft, minidl.Tensor)
    assert out.device == device and soft.device == device
    assert out.dtype == np.float32 and soft.dtype == np.float32 and soft.shape == (6, K)
    a, sa = t(xd, y, 0)                    # host labels with a device batch
    assert type(a) is type(xd) and type(sa) is type(xd)
    assert backend.device_of(sa) == device
    np.testing.assert_array_equal(host(out), host(a))
    np.testing.assert_array_equal(host(soft), host(sa))


@pytest.mark.parametrize("make", [lambda: MixUp(num_classes=K), lambda: CutMix(num_classes=K),
                                  lambda: MixUpOrCutMix(num_classes=K)])
def test_batch_of_one_is_mixed_with_itself(device, make):
    x, y, xd, yd = batch(device, shape=(1, 3, 5, 7))
    for seed in range(4):
        out, soft = make()(xd, yd, seed)
        np.testing.assert_allclose(host(out), x, **close(np.float32))
        np.testing.assert_allclose(host(soft), onehot(y), **close(np.float32))


@pytest.mark.cuda
@pytest.mark.parametrize("make", [lambda: MixUp(alpha=0.3, num_classes=K),
                                  lambda: CutMix(alpha=0.7, num_classes=K),
                                  lambda: MixUpOrCutMix(num_classes=K)])
def test_cuda_equals_cpu(make):
    x, y, xd, yd = batch("cuda", shape=(8, 3, 16, 16))
    t = make()
    for seed in range(5):
        out, soft = t(x, y, np.random.default_rng(seed))
        out_d, soft_d = t(xd, yd, np.random.default_rng(seed))
        np.testing.assert_array_equal(host(out_d), out)
        np.testing.assert_array_equal(host(soft_d), soft)


def test_constructor_errors():
    for cls in (MixUp, CutMix):
        name = cls.__name__
        with pytest.raises(ValueError, match=rf"{name}: 'alpha' must be a number in \(0, inf\), "
                                             "got 0.0"):
            cls(alpha=0, num_classes=K)
        with pytest.raises(ValueError, match=rf"{name}: 'alpha' must .* got -1.0"):
            cls(alpha=-1.0, num_classes=K)
        with pytest.raises(TypeError, match=rf"{name}: 'alpha' must .* got str '1'"):
            cls(alpha="1", num_classes=K)
        with pytest.raises(TypeError, match=rf"{name}: 'num_classes' must be a positive int, "
                                            "got NoneType None"):
            cls()
        with pytest.raises(ValueError, match=rf"{name}: 'num_classes' must be a positive int, "
                                             "got 0"):
            cls(num_classes=0)
    with pytest.raises(ValueError, match=r"MixUpOrCutMix: 'cutmix_alpha' must .* got 0.0"):
        MixUpOrCutMix(cutmix_alpha=0.0, num_classes=K)
    with pytest.raises(ValueError, match=r"MixUpOrCutMix: 'mixup_alpha' must .* got nan"):
        MixUpOrCutMix(mixup_alpha=float("nan"), num_classes=K)
    with pytest.raises(ValueError, match=r"MixUpOrCutMix: 'p_cutmix' must be a number in "
                                         r"\[0, 1\], got 1.5"):
        MixUpOrCutMix(num_classes=K, p_cutmix=1.5)
    with pytest.raises(TypeError, match="MixUpOrCutMix: 'num_classes' must be a positive int"):
        MixUpOrCutMix(num_classes=2.0)


@pytest.mark.parametrize("make", [lambda: MixUp(num_classes=K), lambda: CutMix(num_classes=K),
                                  lambda: MixUpOrCutMix(num_classes=K)])
def test_input_errors(make):
    t = make()
    name = type(t).__name__
    x, y, _, _ = batch("cpu")
    cases = [
        ((x.astype(np.uint8), y), TypeError, r"'images' must be a float batch, got dtype uint8 "
                                             r"\(.*mix after Normalize\)"),
        ((x[0], y), ValueError, r"'images' must be a non-empty batch of shape \(N, C, H, W\), "
                                r"got shape \(3, 5, 7\)"),
        ((x[:0], y[:0]), ValueError, r"'images' must be a non-empty batch"),
        ((x.tolist(), y), TypeError, r"'images' must be a batch .* got list"),
        ((x, y[:4]), ValueError, r"'labels' must have shape \(6,\) to match images "
                                 r"\(6, 3, 5, 7\), got \(4,\)"),
        ((x, onehot(y).astype(np.int64)), ValueError, r"'labels' must have shape \(6,\)"),
        ((x, y.astype(np.float32)), TypeError, r"'labels' must hold integer class indices, "
                                               r"got dtype float32"),
        ((x, list(y)), TypeError, r"'labels' must be an array or Tensor .* got list"),
        ((x, y, "seed"), TypeError, r"rng must be a numpy.random.Generator"),
    ]
    for args, exc, pattern in cases:
        with pytest.raises(exc, match=f"{name}: {pattern}"):
            t(*args)


def test_labels_out_of_range(device):
    """On the host at once; on a GPU at the next synchronization (as the losses do)."""
    x, y, xd, _ = batch(device)
    for bad, shown in ((K, K), (-2, -2)):
        labels = backend.to_device(np.where(np.arange(6) == 3, bad, y), device)
        with pytest.raises(ValueError, match=rf"MixUp: 'labels' holds {shown}, outside "
                                             rf"\[0, {K}\) for num_classes={K}"):
            host(MixUp(num_classes=K)(xd, labels, 0)[1])


def test_bad_params():
    x, y, _, _ = batch("cpu")
    with pytest.raises(ValueError, match=r"CutMix: 'params' must be a box \(y0, x0, y1, x1\) "
                                         r"of ints with 0 <= y0 <= y1 <= 5 and 0 <= x0 <= x1 "
                                         r"<= 7 .* got \(0, 0, 6, 7\)"):
        CutMix(num_classes=K).apply(x, y, (0, 0, 6, 7))
    with pytest.raises(ValueError, match=r"CutMix: 'params' must be a box .* got \(3, 0, 2, 7\)"):
        CutMix(num_classes=K).apply(x, y, (3, 0, 2, 7))
    with pytest.raises(ValueError, match=r"MixUp: 'params' must be a number in \[0, 1\], "
                                         "got 1.5"):
        MixUp(num_classes=K).apply(x, y, 1.5)
    with pytest.raises(ValueError, match=r"MixUpOrCutMix: 'params' must be \('mixup', lam\) "
                                         r"or \('cutmix', box\), got 0.5"):
        MixUpOrCutMix(num_classes=K).apply(x, y, 0.5)
    with pytest.raises(ValueError, match=r"MixUpOrCutMix: 'params' must be a box"):
        MixUpOrCutMix(num_classes=K).apply(x, y, ("cutmix", 0.5))


def test_training_on_mixed_batches_lowers_the_loss():
    """A linear classifier of 2x4x4 images (three classes, one prototype each, plus noise),
    trained by SGD on MixUp/CutMix batches with soft-label cross-entropy."""
    g = np.random.default_rng(0)
    protos = g.standard_normal((3, 2, 4, 4)).astype(np.float32)
    labels = g.integers(0, 3, 64)
    images = protos[labels] + 0.3 * g.standard_normal((64, 2, 4, 4)).astype(np.float32)
    model = nn.Linear(32, 3)
    opt = optim.SGD(model.parameters(), lr=0.1)
    mix, rng = MixUpOrCutMix(num_classes=3), np.random.default_rng(1)
    x, y = minidl.tensor(images), minidl.tensor(labels)

    def clean_loss():
        with minidl.no_grad():
            return F.cross_entropy(model(x.reshape(64, -1)), y).item()

    before, mixed_losses = clean_loss(), []
    for step in range(30):
        xm, targets = mix(x, y, rng)
        loss = F.cross_entropy(model(xm.reshape(64, -1)), targets)
        opt.zero_grad()
        loss.backward()
        opt.step()
        mixed_losses.append(loss.item())
    after = clean_loss()
    assert after < 0.5 * before, (before, after)
    assert np.mean(mixed_losses[-5:]) < np.mean(mixed_losses[:5]), mixed_losses
