"""minidl.nn.utils (gradient clipping, parameter vectors) against NumPy formulas and torch, on
every device; minidl.nn.functional as the same objects as minidl.functional."""
import math
import types

import numpy as np
import pytest

import minidl
import minidl.functional
import minidl.nn as nn
from minidl.nn.utils import (clip_grad_norm_, clip_grad_value_, parameters_to_vector,
                             vector_to_parameters)
from tests.helpers import host, to_tensor

SHAPES = [(3, 2), (4,), (2, 1, 2)]


def _params_with_grads(rng, device, dtype=np.float32, scale=1.0):
    params, grads = [], []
    for s in SHAPES:
        p = to_tensor(rng.standard_normal(s).astype(dtype), device, requires_grad=True)
        g = (rng.standard_normal(s) * scale).astype(dtype)
        p.grad = to_tensor(g, device)
        params.append(p)
        grads.append(g.astype(np.float64))
    return params, grads


def _np_total(grads, p):
    flat = np.concatenate([g.ravel() for g in grads])
    if p == math.inf:
        return np.abs(flat).max()
    return (np.abs(flat) ** p).sum() ** (1.0 / p)


@pytest.mark.parametrize("norm_type", [2.0, 1, 3.0, math.inf, "inf"])
@pytest.mark.parametrize("max_norm", [0.5, 100.0])
def test_clip_grad_norm(device, rng, norm_type, max_norm):
    p = math.inf if norm_type == "inf" else float(norm_type)
    params, grads = _params_with_grads(rng, device)
    no_grad = to_tensor(np.ones(3, np.float32), device, requires_grad=True)   # skipped
    total = clip_grad_norm_(params + [no_grad], max_norm, norm_type)
    expected = _np_total(grads, p)
    assert isinstance(total, minidl.Tensor) and total.shape == ()
    assert total.device == params[0].device and total.dtype == np.float32
    np.testing.assert_allclose(host(total), expected, rtol=1e-5)
    coef = min(1.0, max_norm / (expected + 1e-6))
    for q, g in zip(params, grads):
        np.testing.assert_allclose(host(q.grad), g * coef, rtol=1e-5, atol=1e-7)
    assert no_grad.grad is None
    if max_norm < expected:                        # clipped: the new norm is max_norm
        np.testing.assert_allclose(_np_total([host(q.grad) for q in params], p), max_norm,
                                   rtol=1e-5)


def test_clip_grad_norm_float64_single_tensor_and_generator(device, rng):
    params, grads = _params_with_grads(rng, device, np.float64, scale=10.0)
    total = clip_grad_norm_(params[0], 1.0)                  # a single Tensor
    np.testing.assert_allclose(host(total), np.sqrt((grads[0] ** 2).sum()), rtol=1e-12)
    assert total.dtype == np.float64
    model = nn.Linear(3, 2).to(device)
    model(to_tensor(rng.standard_normal((4, 3)).astype(np.float32), device)).sum().backward()
    before = [host(q.grad).astype(np.float64) for q in model.parameters()]
    total = clip_grad_norm_(model.parameters(), 0.1)         # a generator
    np.testing.assert_allclose(host(total), _np_total(before, 2.0), rtol=1e-5)


def test_parameter_listed_twice_is_clipped_once(rng):
    params, grads = _params_with_grads(rng, "cpu")
    total = clip_grad_norm_([params[0], params[0]], 0.1)
    norm = np.sqrt((grads[0] ** 2).sum())
    np.testing.assert_allclose(total.numpy(), norm, rtol=1e-6)
    np.testing.assert_allclose(params[0].grad.numpy(), grads[0] * 0.1 / (norm + 1e-6),
                               rtol=1e-5)


def test_no_gradients_gives_zero():
    total = clip_grad_norm_([minidl.ones(2, requires_grad=True)], 1.0)
    assert total.item() == 0.0 and total.dtype == np.float32


def test_nonfinite_norm(device, rng):
    params, _ = _params_with_grads(rng, device)
    with minidl.no_grad():
        params[1].grad.data[0] = np.nan
    with pytest.raises(RuntimeError, match="clip_grad_norm_: the total norm of order 2.0 of "
                                           "the gradients is non-finite"):
        clip_grad_norm_(params, 1.0, error_if_nonfinite=True)
    assert np.isfinite(host(params[0].grad)).all()          # refused before scaling
    total = clip_grad_norm_(params, 1.0)                    # PyTorch's default: scale anyway
    assert np.isnan(host(total)) and np.isnan(host(params[0].grad)).all()


def test_clip_grad_value(device, rng):
    params, grads = _params_with_grads(rng, device, scale=2.0)
    assert clip_grad_value_(params, 0.7) is None
    for q, g in zip(params, grads):
        np.testing.assert_allclose(host(q.grad), np.clip(g, -0.7, 0.7), rtol=1e-6)
        assert q.grad.dtype == np.float32


def test_matches_torch(rng):
    torch = pytest.importorskip("torch")
    for p in (2.0, 1.0, 3.5, math.inf):
        params, grads = _params_with_grads(rng, "cpu", np.float64)
        tp = [torch.tensor(q.numpy(), requires_grad=True) for q in params]
        for t, g in zip(tp, grads):
            t.grad = torch.tensor(g)
        t_total = torch.nn.utils.clip_grad_norm_(tp, 0.9, p)
        total = clip_grad_norm_(params, 0.9, p)
        np.testing.assert_allclose(total.numpy(), t_total.numpy(), rtol=1e-12)
        for q, t in zip(params, tp):
            np.testing.assert_allclose(q.grad.numpy(), t.grad.numpy(), rtol=1e-12)
        torch.nn.utils.clip_grad_value_(tp, 0.05)
        clip_grad_value_(params, 0.05)
        for q, t in zip(params, tp):
            np.testing.assert_allclose(q.grad.numpy(), t.grad.numpy())
    tv = torch.nn.utils.parameters_to_vector(tp)
    np.testing.assert_array_equal(parameters_to_vector(params).numpy(), tv.detach().numpy())


def test_parameter_vectors(device, rng):
    params = [to_tensor(rng.standard_normal(s), device, requires_grad=True) for s in SHAPES]
    vec = parameters_to_vector(params)
    np.testing.assert_array_equal(host(vec), np.concatenate([host(q).ravel() for q in params]))
    assert minidl.gradcheck(lambda *ps: parameters_to_vector(ps), params)

    new = rng.standard_normal(vec.shape[0])
    vector_to_parameters(to_tensor(new, device), params)
    lo = 0
    for q in params:
        np.testing.assert_array_equal(host(q), new[lo:lo + q.numel()].reshape(q.shape))
        lo += q.numel()
    np.testing.assert_array_equal(host(parameters_to_vector(params)), new)


def test_vector_to_parameters_keeps_dtype_and_flags_stale_graphs(rng):
    w = minidl.tensor(rng.standard_normal(3).astype(np.float32), requires_grad=True)
    y = (w * w).sum()                        # saved w for backward
    vector_to_parameters(minidl.tensor(np.arange(3.0)), [w])
    assert w.dtype == np.float32 and w.requires_grad
    np.testing.assert_array_equal(w.numpy(), [0.0, 1.0, 2.0])
    with pytest.raises(RuntimeError, match="modified in place"):
        y.backward()


def test_bad_arguments():
    params = [minidl.ones(2, requires_grad=True)]
    with pytest.raises(ValueError, match="clip_grad_norm_: 'max_norm' must be a non-negative"):
        clip_grad_norm_(params, -1.0)
    with pytest.raises(ValueError, match="clip_grad_norm_: 'norm_type' must be a positive"):
        clip_grad_norm_(params, 1.0, 0)
    with pytest.raises(TypeError, match="clip_grad_norm_: 'parameters' must hold Tensors, "
                                        "item 1 is ndarray"):
        clip_grad_norm_([params[0], np.ones(2)], 1.0)
    with pytest.raises(TypeError, match="clip_grad_value_: 'parameters' must be a Tensor or "
                                        "an iterable"):
        clip_grad_value_(3, 1.0)
    with pytest.raises(TypeError, match="clip_grad_value_: 'clip_value' must be a non-negative "
                                        "number, got str 'big'"):
        clip_grad_value_(params, "big")
    with pytest.raises(TypeError, match="vector_to_parameters: 'vec' must be a Tensor"):
        vector_to_parameters(np.ones(2), params)
    with pytest.raises(ValueError, match="vector_to_parameters: 'vec' has 3 values, the "
                                         "parameters 2"):
        vector_to_parameters(minidl.ones(3), params)
    with pytest.raises(ValueError, match="vector_to_parameters: 'vec' must be 1-D"):
        vector_to_parameters(minidl.ones(1, 2), params)
    with pytest.raises(ValueError, match="parameters_to_vector: 'parameters' is empty"):
        parameters_to_vector([])


# -- minidl.nn.functional ---------------------------------------------------------------------

def test_nn_functional_is_minidl_functional(monkeypatch):
    import minidl.nn.functional as NF
    assert minidl.nn.functional is NF
    G = minidl.functional
    public = [k for k, v in vars(G).items()
              if not k.startswith("_") and not isinstance(v, types.ModuleType)]
    assert {"relu", "conv2d", "batch_norm", "layer_norm", "group_norm", "silu"} <= set(public)
    for k in public:
        assert getattr(NF, k) is getattr(G, k), k
    assert sorted(NF.__all__) == sorted(public)
    assert set(public) <= set(dir(NF))
    namespace = {}
    exec("from minidl.nn.functional import *", namespace)
    for k in public:
        assert namespace[k] is getattr(G, k), k
    monkeypatch.setattr(G, "made_later", lambda x: x, raising=False)   # a name added later
    assert NF.made_later is G.made_later and "made_later" in NF.__all__
    with pytest.raises(AttributeError, match="'minidl.nn.functional' has no attribute 'nope'"):
        NF.nope
    assert not hasattr(NF, "__path__")          # a module, not a second view of the package


@pytest.mark.cuda
def test_clip_grad_norm_in_a_graphed_step_equals_eager():
    """Nothing in clip_grad_norm_ waits for the device: a captured step that clips replays
    to the eager results (a host read or a cuBLAS call would be refused in the capture)."""
    from minidl.cuda_graph import GraphedStep

    def setup():
        minidl.manual_seed(5)
        model = nn.Linear(4, 3).double().to("cuda")
        opt = minidl.optim.SGD(model.parameters(), lr=0.5)

        def step(x):
            opt.zero_grad()
            (model(x) ** 2).sum().backward()
            total = clip_grad_norm_(model.parameters(), 0.3)
            opt.step()
            return total
        return model, step

    eager_model, eager_step = setup()
    graph_model, graph_step = setup()
    graphed = GraphedStep(graph_step, warmup=1)
    rng = np.random.default_rng(3)
    for _ in range(4):
        x = minidl.tensor(rng.standard_normal((5, 4)) * 3, device="cuda")
        assert graphed(x).item() == pytest.approx(eager_step(x).item(), rel=1e-12)
    assert graphed.captures == 1
    for a, b in zip(eager_model.parameters(), graph_model.parameters()):
        np.testing.assert_allclose(host(b), host(a), rtol=1e-12)


def test_clip_grad_norm_of_float16_gradients_sums_in_float32(device):
    """Squares of float16 values above 256 overflow float16 (65504): summed there, the norm
    was inf and every gradient was scaled to 0."""
    g = np.full(16, 200.0, np.float16)               # total 2-norm 800
    p = to_tensor(np.zeros(16, np.float16), device, requires_grad=True)
    p.grad = to_tensor(g, device)
    total = clip_grad_norm_([p], 1.0)
    assert total.dtype == np.float16 and host(total).item() == pytest.approx(800.0, rel=1e-3)
    np.testing.assert_allclose(host(p.grad), np.full(16, 0.25), rtol=2e-3)


def test_vector_to_parameters_checks_every_device_before_writing(device):
    if device == "cpu":
        pytest.skip("needs a second device")
    a = minidl.zeros(2, requires_grad=True)
    b = minidl.zeros(2, device="cuda", requires_grad=True)
    with pytest.raises(ValueError, match="vector_to_parameters: a parameter is on cuda"):
        vector_to_parameters(minidl.arange(4.0), [a, b])
    np.testing.assert_array_equal(a.numpy(), [0.0, 0.0])        # nothing half-written
