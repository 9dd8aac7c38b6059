"""Element-wise losses (binary_cross_entropy(_with_logits), l1, mse, smooth_l1, huber, kl_div)
and the loss modules: values vs NumPy formulas written here, float64 gradchecks on every device,
gradients at the kinks, PyTorch as an extra oracle, argument errors."""
import warnings

import numpy as np
import pytest

import minidl
import minidl.functional as F
import minidl.nn as nn
from tests.helpers import check_op, host, to_tensor

REDUCE = {"mean": np.mean, "sum": np.sum, "none": lambda v: v}
REDUCTIONS = list(REDUCE)


def _sigmoid(z):
    return 1 / (1 + np.exp(-z))


@pytest.mark.parametrize("reduction", REDUCTIONS)
@pytest.mark.parametrize("weighted", [False, True])
def test_binary_cross_entropy(device, rng, reduction, weighted):
    x, t = rng.uniform(0.05, 0.95, (3, 4)), rng.random((3, 4))
    w = rng.random(4) + 0.5 if weighted else np.ones(4)
    ww = to_tensor(w, device) if weighted else None
    check_op(lambda z, y: F.binary_cross_entropy(z, y, weight=ww, reduction=reduction),
             [x, t], lambda z, y: REDUCE[reduction](-w * (y * np.log(z)
                                                          + (1 - y) * np.log(1 - z))),
             device)


def test_binary_cross_entropy_clamps_log_at_minus_100(device):
    x = minidl.tensor([0.0, 1.0, 0.0, 1.0], device=device, requires_grad=True)
    loss = F.binary_cross_entropy(x, minidl.tensor([1.0, 0.0, 0.0, 1.0], device=device),
                                  reduction="none")
    np.testing.assert_array_equal(loss.numpy(), [100.0, 100.0, 0.0, 0.0])
    loss.sum().backward()       # (x - t) / max(x (1 - x), 1e-12), PyTorch's guard
    np.testing.assert_allclose(x.grad.numpy(), [-1e12, 1e12, 0.0, 0.0], rtol=1e-6)


@pytest.mark.parametrize("reduction", REDUCTIONS)
@pytest.mark.parametrize("weights", ["none", "weight", "pos_weight", "both"])
def test_bce_with_logits_weight_and_pos_weight(device, rng, reduction, weights):
    x, t = rng.standard_normal((3, 4)) * 3, rng.random((3, 4))
    w = rng.random((3, 1)) + 0.5 if weights in ("weight", "both") else np.ones((3, 1))
    p = rng.random(4) * 3 if weights in ("pos_weight", "both") else np.ones(4)
    ww = to_tensor(w, device) if weights in ("weight", "both") else None
    pp = to_tensor(p, device) if weights in ("pos_weight", "both") else None
    check_op(lambda z, y: F.binary_cross_entropy_with_logits(z, y, weight=ww, pos_weight=pp,
                                                             reduction=reduction),
             [x, t], lambda z, y: REDUCE[reduction](-w * (p * y * np.log(_sigmoid(z))
                                                          + (1 - y) * np.log(1 - _sigmoid(z)))),
             device)


def test_bce_with_logits_pos_weight_stays_finite_for_huge_logits():
    x = minidl.tensor([1e4, -1e4, 30.0], requires_grad=True)
    loss = F.binary_cross_entropy_with_logits(x, minidl.tensor([0.0, 1.0, 1.0]),
                                              pos_weight=minidl.tensor([2.0, 2.0, 2.0]),
                                              reduction="none")
    loss.sum().backward()
    np.testing.assert_allclose(loss.numpy(), [1e4, 2e4, 2 * np.log1p(np.exp(-30.0))],
                               rtol=1e-6)
    np.testing.assert_allclose(x.grad.numpy(), [1.0, -2.0, -2 * _sigmoid(-30.0)], rtol=1e-5)


def _huber(d, delta):
    a = np.abs(d)
    return np.where(a <= delta, 0.5 * d ** 2, delta * (a - 0.5 * delta))


@pytest.mark.parametrize("reduction", REDUCTIONS)
@pytest.mark.parametrize("loss", ["l1", "mse", "smooth_l1", "smooth_l1_b0.5", "smooth_l1_b0",
                                  "huber", "huber_d2"])
def test_regression_losses(device, rng, reduction, loss):
    x, t = rng.standard_normal((3, 4)) * 1.5, rng.standard_normal((3, 4))
    fn, ref = {
        "l1": (F.l1_loss, lambda d: np.abs(d)),
        "mse": (F.mse_loss, lambda d: d ** 2),
        "smooth_l1": (F.smooth_l1_loss, lambda d: np.where(
            np.abs(d) < 1, 0.5 * d ** 2, np.abs(d) - 0.5)),
        "smooth_l1_b0.5": (lambda *a, **k: F.smooth_l1_loss(*a, beta=0.5, **k),
                           lambda d: np.where(np.abs(d) < 0.5, d ** 2, np.abs(d) - 0.25)),
        "smooth_l1_b0": (lambda *a, **k: F.smooth_l1_loss(*a, beta=0.0, **k), np.abs),
        "huber": (F.huber_loss, lambda d: _huber(d, 1.0)),
        "huber_d2": (lambda *a, **k: F.huber_loss(*a, delta=2.0, **k), lambda d: _huber(d, 2.0)),
    }[loss]
    check_op(lambda z, y: fn(z, y, reduction=reduction), [x, t],
             lambda z, y: REDUCE[reduction](ref(z - y)), device)


@pytest.mark.parametrize("reduction", REDUCTIONS + ["batchmean"])
@pytest.mark.parametrize("log_target", [False, True])
def test_kl_div(device, rng, reduction, log_target):
    x = np.log(rng.dirichlet(np.ones(4), 3))
    p = rng.dirichlet(np.ones(4), 3)
    t = np.log(p) if log_target else p

    def ref(z, y):
        pt = np.exp(y) if log_target else y
        loss = pt * (np.log(pt) - z)
        return loss.sum() / 3 if reduction == "batchmean" else REDUCE[reduction](loss)
    check_op(lambda z, y: F.kl_div(z, y, reduction=reduction, log_target=log_target), [x, t],
             ref, device)


def test_kl_div_zero_target_probability_contributes_nothing(device):
    x = minidl.tensor([[-1.0, -2.0, -0.5]], device=device, requires_grad=True)
    t = minidl.tensor([[0.0, 0.25, 0.75]], device=device)
    loss = F.kl_div(x, t, reduction="sum")
    np.testing.assert_allclose(loss.item(), 0.25 * (np.log(0.25) + 2)
                               + 0.75 * (np.log(0.75) + 0.5), rtol=1e-6)
    loss.backward()
    np.testing.assert_array_equal(x.grad.numpy(), [[-0.0, -0.25, -0.75]])
    mean = F.kl_div(x, t).item()           # 'mean': over all 3 elements, not the batch of 1
    np.testing.assert_allclose(mean, loss.item() / 3, rtol=1e-6)


def _grad_at(fn, d, **kw):
    x = minidl.tensor(np.asarray(d, dtype=np.float64), requires_grad=True)
    fn(x, minidl.zeros(len(d), dtype=minidl.float64), reduction="sum", **kw).backward()
    return x.grad.numpy()


def test_gradients_at_the_kinks():
    """l1 at 0: 0; smooth_l1 at |d| = beta: +-1 (both sides agree); beta = 0 is l1; huber at
    |d| = delta: +-delta."""
    np.testing.assert_array_equal(_grad_at(F.l1_loss, [0.0, 2.0, -3.0]), [0.0, 1.0, -1.0])
    np.testing.assert_array_equal(_grad_at(F.smooth_l1_loss, [1.0, -1.0, 0.5, 0.0]),
                                  [1.0, -1.0, 0.5, 0.0])
    np.testing.assert_array_equal(_grad_at(F.smooth_l1_loss, [0.5, -0.5, 0.25], beta=0.5),
                                  [1.0, -1.0, 0.5])
    np.testing.assert_array_equal(_grad_at(F.smooth_l1_loss, [0.0, 1e-3, -2.0], beta=0.0),
                                  [0.0, 1.0, -1.0])
    np.testing.assert_array_equal(_grad_at(F.huber_loss, [2.0, -2.0, 1.0, 3.0], delta=2.0),
                                  [2.0, -2.0, 1.0, 2.0])


def test_pointwise_losses_match_torch(rng):
    torch = pytest.importorskip("torch")
    tf = torch.nn.functional
    d = np.array([0.0, 1.0, -1.0, 0.5, -2.0, 3.0])       # includes the kinks
    x, t = rng.standard_normal(6) + d, rng.standard_normal(6)
    x[:3] = t[:3] + d[:3]
    prob, lab = rng.uniform(0.01, 0.99, 6), rng.random(6)
    logq, p = np.log(rng.dirichlet(np.ones(6))), rng.dirichlet(np.ones(6))
    w = rng.random(6) + 0.5
    cases = [("l1_loss", x, t, {}), ("mse_loss", x, t, {}),
             ("smooth_l1_loss", x, t, {"beta": 1.0}), ("smooth_l1_loss", x, t, {"beta": 0.0}),
             ("huber_loss", x, t, {"delta": 1.0}), ("huber_loss", x, t, {"delta": 0.5}),
             ("binary_cross_entropy", prob, lab, {"weight": w}),
             ("binary_cross_entropy_with_logits", x, lab, {"weight": w, "pos_weight": w[::-1]}),
             ("kl_div", logq, p, {}), ("kl_div", logq, np.log(p), {"log_target": True})]
    for name, a, b, kw in cases:
        for reduction in REDUCTIONS + (["batchmean"] if name == "kl_div" else []):
            am, bm = (minidl.tensor(v, requires_grad=True) for v in (a, b))
            at, bt = (torch.tensor(v, requires_grad=True) for v in (a, b))
            ours = getattr(F, name)(am, bm, reduction=reduction, **{
                k: minidl.tensor(v.copy()) if isinstance(v, np.ndarray) else v
                for k, v in kw.items()})
            with warnings.catch_warnings():          # torch warns about kl_div's 'mean'
                warnings.simplefilter("ignore", UserWarning)
                theirs = getattr(tf, name)(at, bt, reduction=reduction, **{
                    k: torch.tensor(v.copy()) if isinstance(v, np.ndarray) else v
                    for k, v in kw.items()})
            np.testing.assert_allclose(ours.numpy(), theirs.detach().numpy(), rtol=1e-10,
                                       err_msg=f"{name} {kw} {reduction}")
            up = rng.standard_normal(ours.shape)
            ours.backward(minidl.tensor(up))
            theirs.backward(torch.tensor(up))
            for g, gt in ((am.grad, at.grad), (bm.grad, bt.grad)):
                np.testing.assert_allclose(g.numpy(), gt.numpy(), rtol=1e-9, atol=1e-12,
                                           err_msg=f"{name} {kw} {reduction}")


def test_pointwise_loss_errors():
    x = minidl.rand(3, 4)
    with pytest.raises(ValueError, match=r"mse_loss: 'target' shape \(4,\) must equal 'input' "
                                         r"shape \(3, 4\) \(minidl does not broadcast"):
        F.mse_loss(x, minidl.rand(4))
    with pytest.raises(ValueError, match="l1_loss: 'target' shape"):
        F.l1_loss(x, minidl.rand(1, 4))
    with pytest.raises(TypeError, match="huber_loss: 'target' has dtype float64, 'input' "
                                        "float32"):
        F.huber_loss(x, minidl.tensor(np.ones((3, 4))))
    with pytest.raises(TypeError, match="kl_div: argument 'target' must be a Tensor"):
        F.kl_div(x, np.ones((3, 4)))
    with pytest.raises(ValueError, match="smooth_l1_loss: 'beta' must be a non-negative"):
        F.smooth_l1_loss(x, x, beta=-1.0)
    with pytest.raises(ValueError, match="huber_loss: 'delta' must be a positive number, "
                                         "got 0"):
        F.huber_loss(x, x, delta=0)
    with pytest.raises(ValueError, match=r"mse_loss: 'reduction' must be one of \('mean', "
                                         r"'sum', 'none'\), got 'batchmean'"):
        F.mse_loss(x, x, reduction="batchmean")
    with pytest.raises(ValueError, match="kl_div: 'reduction' must be one of"):
        F.kl_div(x, x, reduction="avg")
    with pytest.raises(TypeError, match="kl_div: 'log_target' must be a bool, got str 'yes'"):
        F.kl_div(x, x, log_target="yes")
    with pytest.raises(ValueError, match="l1_loss: 'size_average' is deprecated"):
        F.l1_loss(x, x, False)
    with pytest.raises(ValueError, match=r"binary_cross_entropy: all elements of 'input' must "
                                         r"be probabilities in \[0, 1\]"):
        F.binary_cross_entropy(x * 2 - 0.5, x)
    with pytest.raises(ValueError, match="binary_cross_entropy: all elements"):
        F.binary_cross_entropy(minidl.tensor([0.5, float("nan")]), minidl.tensor([0.0, 1.0]))
    with pytest.raises(ValueError, match=r"binary_cross_entropy: all elements of 'target' "
                                         r"must be probabilities in \[0, 1\], found values "
                                         "outside$"):
        F.binary_cross_entropy(x, x * 2 - 0.5)
    with pytest.raises(ValueError, match=r"binary_cross_entropy_with_logits: 'pos_weight' of "
                                         r"shape \(3,\) must broadcast to input's shape "
                                         r"\(3, 4\)"):
        F.binary_cross_entropy_with_logits(x, x, pos_weight=minidl.ones(3))
    with pytest.raises(ValueError, match="'weight' requires grad"):
        F.binary_cross_entropy(x, x, weight=minidl.ones(4, requires_grad=True))


def test_bce_input_range_check_is_deferred_on_a_gpu(monkeypatch):
    from minidl import backend
    backend.check_deferred()
    monkeypatch.setattr(backend, "_defers", lambda flag: True)
    try:
        loss = F.binary_cross_entropy(minidl.tensor([0.5, 1.5]), minidl.tensor([0.0, 1.0]))
        assert len(backend._deferred) == 2                  # the input's and the target's
        with pytest.raises(ValueError, match="binary_cross_entropy: all elements of 'input'"):
            loss.item()
        loss = F.binary_cross_entropy(minidl.tensor([0.5, 0.5]), minidl.tensor([0.0, -0.5]))
        with pytest.raises(ValueError, match="binary_cross_entropy: all elements of 'target'"):
            loss.item()
    finally:
        backend._deferred.clear()


# ---------------------------------------------------------------------------------------------
# modules

def test_modules_call_their_functional(rng):
    x = minidl.tensor(rng.standard_normal((4, 3)))
    probs = minidl.tensor(rng.uniform(0.1, 0.9, (4, 3)))
    y = minidl.tensor(rng.random((4, 3)))
    labels = minidl.tensor([0, 2, -100, 1])
    w = minidl.tensor(rng.random(3) + 0.5)
    pairs = [
        (nn.CrossEntropyLoss(w, ignore_index=-100, label_smoothing=0.1, reduction="sum"),
         F.cross_entropy(x, labels, weight=w, label_smoothing=0.1, reduction="sum"), labels),
        (nn.NLLLoss(w, ignore_index=2), F.nll_loss(x, labels.clamp(0, 2), weight=w,
                                                   ignore_index=2), labels.clamp(0, 2)),
        (nn.BCELoss(w), F.binary_cross_entropy(probs, y, weight=w), y),
        (nn.BCEWithLogitsLoss(pos_weight=w, reduction="none"),
         F.binary_cross_entropy_with_logits(x, y, pos_weight=w, reduction="none"), y),
        (nn.L1Loss(reduction="sum"), F.l1_loss(x, y, reduction="sum"), y),
        (nn.MSELoss(), F.mse_loss(x, y), y),
        (nn.SmoothL1Loss(beta=0.5), F.smooth_l1_loss(x, y, beta=0.5), y),
        (nn.HuberLoss(delta=0.5), F.huber_loss(x, y, delta=0.5), y),
        (nn.KLDivLoss(reduction="batchmean"), F.kl_div(x, y, reduction="batchmean"), y),
        (nn.KLDivLoss(log_target=True), F.kl_div(x, y, log_target=True), y),
    ]
    for module, expected, target in pairs:
        inp = probs if isinstance(module, nn.BCELoss) else x
        np.testing.assert_array_equal(module(inp, target).numpy(), expected.numpy(),
                                      err_msg=repr(module))


def test_module_weights_are_buffers_and_arguments_are_checked_at_construction():
    w = minidl.ones(3)
    loss = nn.CrossEntropyLoss(weight=w)
    assert loss.weight is w and list(loss.state_dict()) == ["weight"]
    assert list(nn.BCEWithLogitsLoss(pos_weight=w).state_dict()) == ["pos_weight"]
    assert list(nn.MSELoss().state_dict()) == []
    assert repr(nn.SmoothL1Loss(beta=0.5)) == "SmoothL1Loss(reduction='mean', beta=0.5)"
    with pytest.raises(ValueError, match="CrossEntropyLoss: 'reduction' must be one of"):
        nn.CrossEntropyLoss(reduction="avg")
    with pytest.raises(ValueError, match="MSELoss: 'reduction' must be one of"):
        nn.MSELoss(reduction="batchmean")
    with pytest.raises(ValueError, match="L1Loss: 'size_average' is deprecated"):
        nn.L1Loss(size_average=True)
    with pytest.raises(ValueError, match="CrossEntropyLoss: 'label_smoothing'"):
        nn.CrossEntropyLoss(label_smoothing=2.0)
    with pytest.raises(TypeError, match="NLLLoss: 'ignore_index' must be an int"):
        nn.NLLLoss(ignore_index=None)
    with pytest.raises(TypeError, match="BCELoss: argument 'weight' must be a Tensor"):
        nn.BCELoss(weight=[1.0, 2.0])
    with pytest.raises(ValueError, match="HuberLoss: 'delta' must be a positive number"):
        nn.HuberLoss(delta=-1.0)
    with pytest.raises(ValueError, match="SmoothL1Loss: 'beta' must be a non-negative"):
        nn.SmoothL1Loss(beta=-0.1)
    with pytest.raises(TypeError, match="KLDivLoss: 'log_target' must be a bool, got int 1"):
        nn.KLDivLoss(log_target=1)


@pytest.mark.parametrize("dtype", [np.uint8, np.int8, np.int32])
def test_small_integer_labels_work_with_the_default_ignore_index(device, dtype):
    """uint8 labels (segmentation masks) against ignore_index=-100: CuPy 14 raises
    OverflowError for a comparison with an int its dtype cannot hold (the emulated GPU does
    too), so labels are compared as int64."""
    x = to_tensor(np.random.default_rng(0).standard_normal((4, 3)), device, requires_grad=True)
    t = to_tensor(np.array([0, 2, 1, 2], dtype), device)
    want = F.cross_entropy(x, t.long())
    np.testing.assert_allclose(host(F.cross_entropy(x, t)), host(want), rtol=1e-12)
    np.testing.assert_allclose(host(F.nll_loss(F.log_softmax(x, 1), t)),
                               host(F.nll_loss(F.log_softmax(x, 1), t.long())), rtol=1e-12)
    assert host(F.one_hot(t, 300)).shape == (4, 300)
    w = to_tensor(np.random.default_rng(1).standard_normal((300, 2)), device,
                  requires_grad=True)
    F.embedding(t, w).sum().backward()
    assert host(w.grad)[:3].sum() == pytest.approx(8.0)
    F.gather(x, 1, to_tensor(np.array([[0], [2], [1], [1]], dtype), device))
