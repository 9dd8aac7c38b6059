"""Losses: values vs NumPy references, float64 gradchecks, stability at logits of 1e4,
bad labels."""
import warnings

import numpy as np
import pytest

import minidl
import minidl.functional as F
from tests.helpers import check_op, to_tensor


def _np_ce(x, t, s=0.0, reduction="mean"):
    logp = x - x.max(1, keepdims=True)
    logp = logp - np.log(np.exp(logp).sum(1, keepdims=True))
    C = x.shape[1]
    q = np.full_like(x, s / C)
    q[np.arange(len(t)), t] += 1 - s
    loss = -(q * logp).sum(1)
    return {"mean": loss.mean(), "sum": loss.sum(), "none": loss}[reduction]


@pytest.mark.parametrize("reduction", ["mean", "sum", "none"])
@pytest.mark.parametrize("smoothing", [0.0, 0.1])
def test_cross_entropy(device, rng, reduction, smoothing):
    x = rng.standard_normal((5, 4)) * 2
    t = rng.integers(0, 4, 5)
    tt = to_tensor(t, device)
    check_op(lambda z: F.cross_entropy(z, tt, label_smoothing=smoothing, reduction=reduction),
             [x], lambda z: _np_ce(z, t, smoothing, reduction), device)


@pytest.mark.parametrize("reduction", ["mean", "sum", "none"])
def test_nll_loss(device, rng, reduction):
    x = rng.standard_normal((5, 3))
    t = rng.integers(0, 3, 5)
    tt = to_tensor(t, device)
    ref = {"mean": np.mean, "sum": np.sum, "none": lambda v: v}[reduction]
    check_op(lambda z: F.nll_loss(F.log_softmax(z, 1), tt, reduction=reduction), [x],
             lambda z: ref(-(z - np.log(np.exp(z).sum(1, keepdims=True)))[np.arange(5), t]),
             device)


@pytest.mark.parametrize("reduction", ["mean", "sum", "none"])
def test_bce_with_logits(device, rng, reduction):
    x, t = rng.standard_normal((4, 3)) * 3, rng.random((4, 3))
    ref = {"mean": np.mean, "sum": np.sum, "none": lambda v: v}[reduction]
    check_op(lambda z, y: F.binary_cross_entropy_with_logits(z, y, reduction=reduction), [x, t],
             lambda z, y: ref(-(y * np.log(1 / (1 + np.exp(-z)))
                                + (1 - y) * np.log(1 - 1 / (1 + np.exp(-z))))), device)


@pytest.mark.parametrize("reduction", ["mean", "sum", "none"])
def test_mse(device, rng, reduction):
    x, t = rng.standard_normal((4, 3)), rng.standard_normal((4, 3))
    ref = {"mean": np.mean, "sum": np.sum, "none": lambda v: v}[reduction]
    check_op(lambda z, y: F.mse_loss(z, y, reduction=reduction), [x, t],
             lambda z, y: ref((z - y) ** 2), device)


def test_finite_for_huge_logits():
    x = minidl.tensor([[1e4, -1e4, 0.0], [-1e4, 1e4, 1e4]], requires_grad=True)
    t = minidl.tensor([1, 0])
    loss = F.cross_entropy(x, t, label_smoothing=0.1)
    loss.backward()
    assert np.isfinite(loss.item()) and np.isfinite(x.grad.numpy()).all()
    np.testing.assert_allclose(loss.item(), _np_ce(x.numpy().astype(np.float64), [1, 0], 0.1),
                               rtol=1e-6)
    b = minidl.tensor([1e4, -1e4], requires_grad=True)
    loss = F.binary_cross_entropy_with_logits(b, minidl.tensor([0.0, 1.0]))
    loss.backward()
    np.testing.assert_allclose(loss.item(), 1e4)
    assert np.isfinite(b.grad.numpy()).all()


def test_float32_loss_stays_float32():
    x = minidl.randn(4, 3)
    assert F.cross_entropy(x, minidl.tensor([0, 1, 2, 0])).dtype == np.float32


def test_bad_labels():
    x = minidl.randn(3, 4)
    with pytest.raises(ValueError,
                       match=r"cross_entropy: 'target' holds label 4, outside \[0, 4\)"):
        F.cross_entropy(x, minidl.tensor([0, 4, 1]))
    with pytest.raises(ValueError, match="label -1"):
        F.nll_loss(x, minidl.tensor([0, -1, 1]))
    with pytest.raises(ValueError, match=r"cross_entropy: a float 'target' holds class "
                                         r"probabilities and must have input's shape \(3, 4\)"):
        F.cross_entropy(x, minidl.tensor([0.0, 1.0, 1.0]))
    with pytest.raises(TypeError, match="nll_loss: 'target' must hold integer class labels"):
        F.nll_loss(x, minidl.tensor([0.0, 1.0, 1.0]))
    with pytest.raises(ValueError, match=r"'target' must have shape \(3,\)"):
        F.cross_entropy(x, minidl.tensor([0, 1]))
    with pytest.raises(ValueError, match="'reduction' must be one of"):
        F.cross_entropy(x, minidl.tensor([0, 1, 2]), reduction="avg")
    with pytest.raises(ValueError, match="label_smoothing"):
        F.cross_entropy(x, minidl.tensor([0, 1, 2]), label_smoothing=1.5)
    with pytest.raises(ValueError, match="mse_loss: 'target' shape"):
        F.mse_loss(x, minidl.randn(3))


@pytest.fixture
def deferring(monkeypatch):
    """Checks of device data deferred as on a GPU, on whatever device the test runs."""
    from minidl import backend
    backend.check_deferred()                 # whatever earlier tests left pending
    monkeypatch.setattr(backend, "_defers", lambda flag: True)
    yield backend
    backend._deferred.clear()


def test_bad_labels_on_a_gpu_raise_at_the_next_sync_not_in_the_step(deferring):
    x = minidl.randn(3, 5, requires_grad=True)
    loss = F.cross_entropy(x, minidl.tensor([0, 7, 1]))     # queued, no wait for the device
    loss.backward()
    assert len(deferring._deferred) == 1
    with pytest.raises(ValueError, match=r"cross_entropy: 'target' holds label 7, outside "
                                         r"\[0, 5\) for 5 classes \(found on the GPU after"):
        loss.item()
    assert deferring._deferred == []
    assert np.isfinite(F.cross_entropy(x, minidl.tensor([0, 4, 1])).item())
    F.nll_loss(x, minidl.tensor([0, -2, 1]))
    with pytest.raises(ValueError, match="label -2"):
        minidl.synchronize()
    F.nll_loss(x, minidl.tensor([0, -2, 1]))
    with pytest.raises(ValueError, match="label -2"):
        x.numpy()


def test_deferred_checks_are_bounded(deferring):
    x = minidl.randn(2, 3)
    for _ in range(deferring.MAX_DEFERRED - 1):
        F.cross_entropy(x, minidl.tensor([0, 2]))
    assert len(deferring._deferred) == deferring.MAX_DEFERRED - 1
    F.cross_entropy(x, minidl.tensor([0, 2]))
    assert deferring._deferred == []
    for _ in range(deferring.MAX_DEFERRED - 1):
        F.cross_entropy(x, minidl.tensor([0, 2]))
    with pytest.raises(ValueError, match="label 3"):
        F.cross_entropy(x, minidl.tensor([3, 2]))       # the 64th: all read back now


@pytest.mark.cuda
def test_bad_labels_on_the_gpu_surface_at_item():
    from minidl import backend
    backend.check_deferred()                 # whatever earlier tests left pending
    x = minidl.randn(3, 5, device="cuda")
    loss = F.cross_entropy(x, minidl.tensor([0, 7, 1], device="cuda"))
    assert len(backend._deferred) == 1
    with pytest.raises(ValueError, match="holds label 7"):
        loss.item()


@pytest.mark.parametrize("loss", [
    lambda x: F.cross_entropy(x, minidl.zeros(0, dtype=minidl.int64)),
    lambda x: F.nll_loss(x, minidl.zeros(0, dtype=minidl.int64)),
    lambda x: F.mse_loss(x, minidl.zeros(0, 3)),
    lambda x: F.binary_cross_entropy_with_logits(x, minidl.zeros(0, 3)),
])
def test_empty_batch_mean_is_nan_and_backward_gives_an_empty_gradient(loss):
    """As in PyTorch: the mean over no values is NaN, and backward (which divided by the
    batch size, 0) gives an empty gradient instead of a ZeroDivisionError."""
    x = minidl.zeros(0, 3, requires_grad=True)
    with np.errstate(invalid="ignore"), warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        y = loss(x)
        assert np.isnan(y.item())
        y.backward()
    assert x.grad.shape == (0, 3)


# ---------------------------------------------------------------------------------------------
# class weights, ignore_index, label smoothing with weights, spatial and unbatched inputs,
# probability targets: against loops written here, and torch where installed

def _logsoftmax_row(r):
    m = r.max()
    return r - m - np.log(np.exp(r - m).sum())


def _as_rows(x):
    """(N, C, d...) -> (rows, C); (C,) -> (1, C)."""
    if x.ndim == 1:
        return x[None]
    return np.moveaxis(x, 1, -1).reshape(-1, x.shape[1])


def _ref_ce_index(x, t, w=None, ignore=-100, s=0.0, reduction="mean", log_probs=False):
    """PyTorch's definition, one row at a time."""
    C = x.shape[min(1, x.ndim - 1)]
    w = np.ones(C) if w is None else w
    rows, labels = _as_rows(x), np.reshape(t, -1)
    losses, total = [], 0.0
    for r, c in zip(rows, labels):
        if c == ignore:
            losses.append(0.0)
            continue
        lp = r if log_probs else _logsoftmax_row(r)
        losses.append(-(1 - s) * w[c] * lp[c] - s / C * (w * lp).sum())
        total += w[c]
    loss = np.array(losses)
    if reduction == "mean":
        return loss.sum() / total if total else np.nan
    return loss.sum() if reduction == "sum" else loss.reshape(np.shape(t))


def _ref_ce_prob(x, p, w=None, s=0.0, reduction="mean"):
    C = x.shape[min(1, x.ndim - 1)]
    w = np.ones(C) if w is None else w
    loss = np.array([-(w * ((1 - s) * q + s / C) * _logsoftmax_row(r)).sum()
                     for r, q in zip(_as_rows(x), _as_rows(p))])
    if reduction == "mean":
        return loss.mean()
    if reduction == "sum":
        return loss.sum()
    return loss.reshape(x.shape[:1] + x.shape[2:] if x.ndim > 1 else ())


# (input shape, target, ignore_index): rows (N, C), spatial (N, C, d1, d2), unbatched (C,)
_CASES = {
    "2d": ((5, 4), np.array([1, -100, 3, 0, 1]), -100),
    "spatial": ((2, 3, 2, 2), np.array([[[0, 1], [2, 1]], [[1, 1], [0, 2]]]), 1),
    "unbatched": ((4,), np.array(2), -100),
}


@pytest.mark.parametrize("case", list(_CASES))
@pytest.mark.parametrize("weighted", [False, True])
@pytest.mark.parametrize("smoothing", [0.0, 0.2])
@pytest.mark.parametrize("reduction", ["mean", "sum", "none"])
def test_cross_entropy_weight_ignore_smoothing(device, rng, case, weighted, smoothing,
                                               reduction):
    shape, t, ignore = _CASES[case]
    x = rng.standard_normal(shape) * 2
    C = shape[min(1, len(shape) - 1)]
    w = rng.random(C) + 0.5 if weighted else None
    tt = to_tensor(t, device)
    ww = None if w is None else to_tensor(w, device)
    check_op(lambda z: F.cross_entropy(z, tt, weight=ww, ignore_index=ignore,
                                       reduction=reduction, label_smoothing=smoothing),
             [x], lambda z: _ref_ce_index(z, t, w, ignore, smoothing, reduction), device)


@pytest.mark.parametrize("case", ["2d", "spatial"])
@pytest.mark.parametrize("weighted", [False, True])
@pytest.mark.parametrize("reduction", ["mean", "sum", "none"])
def test_nll_loss_weight_ignore(device, rng, case, weighted, reduction):
    shape, t, ignore = _CASES[case]
    x = rng.standard_normal(shape)
    w = rng.random(shape[1]) + 0.5 if weighted else None
    tt = to_tensor(t, device)
    ww = None if w is None else to_tensor(w, device)
    check_op(lambda z: F.nll_loss(z, tt, weight=ww, ignore_index=ignore, reduction=reduction),
             [x], lambda z: _ref_ce_index(z, t, w, ignore, 0.0, reduction, log_probs=True),
             device, check_float32=False)


@pytest.mark.parametrize("shape", [(4, 3), (2, 3, 2, 1), (3,)])
@pytest.mark.parametrize("weighted", [False, True])
@pytest.mark.parametrize("smoothing", [0.0, 0.3])
@pytest.mark.parametrize("reduction", ["mean", "sum", "none"])
def test_cross_entropy_probability_targets(device, rng, shape, weighted, smoothing,
                                           reduction):
    """Mixup/cutmix targets; the target gets a gradient too (float64 gradcheck of both)."""
    x = rng.standard_normal(shape)
    p = rng.random(shape)
    p /= p.sum(axis=min(1, len(shape) - 1), keepdims=True)
    C = shape[min(1, len(shape) - 1)]
    w = rng.random(C) + 0.5 if weighted else None
    ww = None if w is None else to_tensor(w, device)
    check_op(lambda z, q: F.cross_entropy(z, q, weight=ww, reduction=reduction,
                                          label_smoothing=smoothing),
             [x, p], lambda z, q: _ref_ce_prob(z, q, w, smoothing, reduction), device,
             check_float32=not weighted)


def test_ignored_rows_get_no_gradient_and_all_ignored_mean_is_nan(device):
    x = minidl.tensor(np.arange(12.0).reshape(3, 4) / 5, device=device, requires_grad=True)
    t = minidl.tensor([2, -100, 1], device=device)
    F.cross_entropy(x, t, label_smoothing=0.1).backward()
    g = x.grad.numpy()
    assert (g[1] == 0).all() and (g[[0, 2]] != 0).all()
    x.grad = None
    none = minidl.tensor([-100, -100, -100], device=device)
    w = minidl.tensor([1.0, 2.0, 3.0, 4.0], device=device)
    for loss in (F.cross_entropy(x, none), F.cross_entropy(x, none, weight=w),
                 F.nll_loss(x, none, weight=w)):
        assert np.isnan(loss.item())
        loss.backward()
        assert (x.grad.numpy() == 0).all()          # no gradient, not NaN (as PyTorch)
        x.grad = None
    assert F.cross_entropy(x, none, reduction="sum").item() == 0.0
    np.testing.assert_array_equal(F.nll_loss(x, none, reduction="none").numpy(), 0.0)


@pytest.mark.parametrize("fn, smoothing", [("cross_entropy", 0.0), ("cross_entropy", 0.3),
                                           ("nll_loss", 0.0)])
def test_zero_total_weight_mean_is_nan_with_nan_gradients_on_rows_not_ignored(device, fn,
                                                                            smoothing):
    """The kept rows all weigh 0: the 'mean' divides by 0. PyTorch's loss is NaN and so is the
    gradient of every row not ignored (at its label's column for nll_loss); ignored rows get 0.
    Label smoothing must not make the loss +-inf while the gradient stays finite."""
    x = minidl.tensor(np.arange(12.0).reshape(3, 4) / 5, device=device, requires_grad=True)
    w = minidl.tensor([0.0, 1.0, 1.0, 1.0], device=device)
    t = minidl.tensor([0, -100, 0], device=device)
    extra = {"label_smoothing": smoothing} if fn == "cross_entropy" else {}
    loss = getattr(F, fn)(x, t, weight=w, **extra)
    assert np.isnan(loss.item())
    loss.backward()
    g = x.grad.numpy()
    assert (g[1] == 0).all()
    if fn == "nll_loss":
        assert np.isnan(g[[0, 2], 0]).all() and (g[[0, 2], 1:] == 0).all()
    else:
        assert np.isnan(g[[0, 2]]).all()


def test_the_plain_case_keeps_the_fast_path():
    """No weight and no ignored label: the single-Function path that saves only log-probs and
    labels (what train_cifar runs); a -100 label or a weight takes the masked path."""
    x = minidl.randn(4, 3, requires_grad=True)
    assert len(F.cross_entropy(x, minidl.tensor([0, 1, 2, 0]),
                               label_smoothing=0.1).grad_fn.saved) == 2
    assert len(F.cross_entropy(x, minidl.tensor([0, -100, 2, 0])).grad_fn.saved) == 6
    assert len(F.cross_entropy(x, minidl.tensor([0, 1, 2, 0]),
                               weight=minidl.ones(3)).grad_fn.saved) == 6


def test_ignore_index_and_weight_on_a_gpu_are_masked_not_synced(deferring):
    """Deferred label checks (as on a GPU): the labels are not read on the host, so rows whose
    label is ignore_index are masked on the device; the result equals the host path's."""
    x = minidl.tensor(np.linspace(-2, 2, 15).reshape(5, 3), requires_grad=True)
    t = minidl.tensor([0, -100, 2, 1, -100])
    loss = F.cross_entropy(x, t, label_smoothing=0.1)
    loss.backward()
    assert len(deferring._deferred) == 1
    ref = _ref_ce_index(x.numpy(), t.numpy(), s=0.1)
    np.testing.assert_allclose(loss.item(), ref, rtol=1e-6)
    assert (x.grad.numpy()[[1, 4]] == 0).all()
    loss = F.cross_entropy(x, minidl.tensor([0, 1, 2, 1, 0]))   # nothing ignored: same value
    np.testing.assert_allclose(loss.item(), _ref_ce_index(x.numpy(), [0, 1, 2, 1, 0]),
                               rtol=1e-6)
    F.cross_entropy(x, minidl.tensor([0, -100, 5, 1, 1]))
    with pytest.raises(ValueError, match="holds label 5, outside"):   # not the ignored -100
        minidl.synchronize()
    F.nll_loss(x, minidl.tensor([0, 1, 1, 1, 1]), ignore_index=1)
    F.nll_loss(x, minidl.tensor([0, 1, -1, 1, 1]), ignore_index=1)
    with pytest.raises(ValueError, match="label -1"):
        minidl.synchronize()


def test_class_loss_errors():
    x = minidl.randn(3, 4)
    t = minidl.tensor([0, 1, 2])
    with pytest.raises(TypeError, match=r"cross_entropy: 'weight' must be a float Tensor of "
                                        r"shape \(4,\) or None, got float \(label_smoothing "
                                        r"is the keyword argument label_smoothing=0.1\)"):
        F.cross_entropy(x, t, 0.1)
    with pytest.raises(ValueError, match=r"nll_loss: 'weight' must have shape \(4,\)"):
        F.nll_loss(x, t, weight=minidl.ones(3))
    with pytest.raises(ValueError, match="'weight' requires grad"):
        F.cross_entropy(x, t, weight=minidl.ones(4, requires_grad=True))
    with pytest.raises(TypeError, match="cross_entropy: 'ignore_index' must be an int"):
        F.cross_entropy(x, t, ignore_index=1.0)
    with pytest.raises(ValueError, match="cross_entropy: 'size_average' is deprecated"):
        F.cross_entropy(x, t, size_average=True)
    with pytest.raises(ValueError, match="nll_loss: 'reduce' is deprecated"):
        F.nll_loss(x, t, reduce=False)
    with pytest.raises(ValueError, match=r"'target' must have shape \(2, 5\) to match input "
                                         r"\(2, 4, 5\)"):
        F.cross_entropy(minidl.randn(2, 4, 5), minidl.tensor([0, 1]))
    with pytest.raises(ValueError, match="label 4, outside"):
        F.cross_entropy(x, minidl.tensor([0, 4, 1]), ignore_index=0)
    with pytest.raises(TypeError, match="probability 'target' has dtype float64"):
        F.cross_entropy(x, minidl.tensor(np.full((3, 4), 0.25)))
    with pytest.raises(ValueError, match="cross_entropy: 'input' must be .* got a 0-d"):
        F.cross_entropy(minidl.tensor(1.0), minidl.tensor(0))
    for fn in ("cross_entropy", "nll_loss"):
        with pytest.raises(ValueError, match=fr"{fn}: 'input' \(3, 0\) has no classes"):
            getattr(F, fn)(minidl.zeros(3, 0), minidl.tensor([-100, -100, -100]))
    p = minidl.full((3, 4), 0.25)
    with pytest.raises(ValueError, match=r"cross_entropy: 'ignore_index' \(0\) is not "
                                         "supported with class-probability targets"):
        F.cross_entropy(x, p, ignore_index=0)
    F.cross_entropy(x, p, ignore_index=-1)          # a negative one ignores nothing (PyTorch)


def test_class_losses_match_torch(rng):
    torch = pytest.importorskip("torch")
    x = rng.standard_normal((6, 4, 3))
    t = rng.integers(0, 4, (6, 3))
    t[1, 2] = t[4, 0] = 3              # ignored: ignore_index=3 lies inside [0, C)
    w = rng.random(4) + 0.1
    p = rng.random((6, 4, 3))
    p /= p.sum(1, keepdims=True)
    for target, tt, kw in [(t, torch.tensor(t), dict(ignore_index=3)),
                           (t, torch.tensor(t), dict(ignore_index=-100)),
                           (p, torch.tensor(p), {})]:
        for reduction in ("mean", "sum", "none"):
            for fn in ("cross_entropy", "nll_loss"):
                if fn == "nll_loss" and target is p:
                    continue
                extra = {"label_smoothing": 0.15} if fn == "cross_entropy" else {}
                xm = minidl.tensor(x, requires_grad=True)
                xt = torch.tensor(x, requires_grad=True)
                ours = getattr(F, fn)(xm, minidl.tensor(target), weight=minidl.tensor(w),
                                      reduction=reduction, **kw, **extra)
                theirs = getattr(torch.nn.functional, fn)(
                    xt, tt, weight=torch.tensor(w), reduction=reduction, **kw, **extra)
                np.testing.assert_allclose(ours.numpy(), theirs.detach().numpy(), rtol=1e-10)
                up = rng.standard_normal(ours.shape)
                ours.backward(minidl.tensor(up))
                theirs.backward(torch.tensor(up))
                np.testing.assert_allclose(xm.grad.numpy(), xt.grad.numpy(), rtol=1e-9,
                                           atol=1e-12)
