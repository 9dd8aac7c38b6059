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
    check_op(lambda z: F.cross_entropy(z, tt, smoothing, reduction), [x],
             lambda z: _np_ce(z, t, smoothing, reduction), device)


@pytest.mark.parametrize("reduction", ["mean", "sum", "none"])
def test_nll_loss(device, rng, reduction):
    x = rng.standard_normal((5, 3))
    t = rng.integers(0, 3, 5)
    tt = to_tensor(t, device)
    ref = {"mean": np.mean, "sum": np.sum, "none": lambda v: v}[reduction]
    check_op(lambda z: F.nll_loss(F.log_softmax(z, 1), tt, reduction), [x],
             lambda z: ref(-(z - np.log(np.exp(z).sum(1, keepdims=True)))[np.arange(5), t]),
             device)


@pytest.mark.parametrize("reduction", ["mean", "sum", "none"])
def test_bce_with_logits(device, rng, reduction):
    x, t = rng.standard_normal((4, 3)) * 3, rng.random((4, 3))
    ref = {"mean": np.mean, "sum": np.sum, "none": lambda v: v}[reduction]
    check_op(lambda z, y: F.binary_cross_entropy_with_logits(z, y, reduction), [x, t],
             lambda z, y: ref(-(y * np.log(1 / (1 + np.exp(-z)))
                                + (1 - y) * np.log(1 - 1 / (1 + np.exp(-z))))), device)


@pytest.mark.parametrize("reduction", ["mean", "sum", "none"])
def test_mse(device, rng, reduction):
    x, t = rng.standard_normal((4, 3)), rng.standard_normal((4, 3))
    ref = {"mean": np.mean, "sum": np.sum, "none": lambda v: v}[reduction]
    check_op(lambda z, y: F.mse_loss(z, y, reduction), [x, t], lambda z, y: ref((z - y) ** 2),
             device)


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
    with pytest.raises(TypeError, match="'target' must hold integer class labels, got dtype "
                                        "float32"):
        F.cross_entropy(x, minidl.tensor([0.0, 1.0, 1.0]))
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
