"""minidl.optim: SGD, RMSprop, Adam, AdamW against NumPy oracles written from the documented
update rules (every option), dtype and in-place behaviour, param groups, state_dict round trips,
bad input, and parity with torch when it is installed."""
import math

import numpy as np
import pytest

import minidl
import minidl.nn as nn
import minidl.optim as optim
from minidl import backend
from minidl.serialization import load, save

SHAPE = (3, 4)
N_STEPS = 4


def _param(w, device, dtype=np.float64):
    return nn.Parameter(minidl.tensor(np.asarray(w, dtype=dtype), device=device))


def _host(x):
    return backend.as_numpy(x.data if isinstance(x, minidl.Tensor) else x)


def _set_grad(p, g):
    p.grad = minidl.tensor(np.asarray(g, dtype=p.dtype), device=p.device)


def _data(n_steps=N_STEPS, shape=SHAPE, seed=0):
    rng = np.random.default_rng(seed)
    return rng.standard_normal(shape), [rng.standard_normal(shape) for _ in range(n_steps)]


# -- NumPy oracles: one step of each rule on float64 arrays, state in a dict ------------------

def sgd_ref(p, g, s, lr=1e-3, momentum=0.0, dampening=0.0, weight_decay=0.0, nesterov=False):
    g = g + weight_decay * p
    if momentum:
        s["b"] = g.copy() if "b" not in s else momentum * s["b"] + (1 - dampening) * g
        g = g + momentum * s["b"] if nesterov else s["b"]
    return p - lr * g


def rmsprop_ref(p, g, s, lr=1e-2, alpha=0.99, eps=1e-8, weight_decay=0.0, momentum=0.0,
                centered=False):
    g = g + weight_decay * p
    s["v"] = alpha * s.get("v", 0.0) + (1 - alpha) * g ** 2
    if centered:
        s["gbar"] = alpha * s.get("gbar", 0.0) + (1 - alpha) * g
        denom = np.sqrt(s["v"] - s["gbar"] ** 2) + eps
    else:
        denom = np.sqrt(s["v"]) + eps
    if momentum:
        s["b"] = momentum * s.get("b", 0.0) + g / denom
        return p - lr * s["b"]
    return p - lr * g / denom


def adam_ref(p, g, s, lr=1e-3, betas=(0.9, 0.999), eps=1e-8, weight_decay=0.0, amsgrad=False,
             decoupled=False):
    b1, b2 = betas
    s["t"] = t = s.get("t", 0) + 1
    if decoupled:
        p = p * (1 - lr * weight_decay)
    else:
        g = g + weight_decay * p
    s["m"] = b1 * s.get("m", 0.0) + (1 - b1) * g
    s["v"] = b2 * s.get("v", 0.0) + (1 - b2) * g ** 2
    v = s["v"]
    if amsgrad:
        s["vmax"] = v = np.maximum(s.get("vmax", 0.0), v)
    m_hat, v_hat = s["m"] / (1 - b1 ** t), v / (1 - b2 ** t)
    return p - lr * m_hat / (np.sqrt(v_hat) + eps)


def adamw_ref(p, g, s, weight_decay=1e-2, **kw):
    return adam_ref(p, g, s, weight_decay=weight_decay, decoupled=True, **kw)


CASES = [
    (optim.SGD, sgd_ref, dict(lr=0.1)),
    (optim.SGD, sgd_ref, dict(lr=0.1, weight_decay=0.05)),
    (optim.SGD, sgd_ref, dict(lr=0.1, momentum=0.9)),
    (optim.SGD, sgd_ref, dict(lr=0.1, momentum=0.9, dampening=0.25, weight_decay=0.01)),
    (optim.SGD, sgd_ref, dict(lr=0.1, momentum=0.8, nesterov=True, weight_decay=0.01)),
    (optim.RMSprop, rmsprop_ref, dict()),
    (optim.RMSprop, rmsprop_ref, dict(lr=0.05, alpha=0.9, weight_decay=0.1)),
    (optim.RMSprop, rmsprop_ref, dict(lr=0.05, momentum=0.7)),
    (optim.RMSprop, rmsprop_ref, dict(lr=0.05, centered=True)),
    (optim.RMSprop, rmsprop_ref, dict(lr=0.05, alpha=0.8, centered=True, momentum=0.5,
                                      weight_decay=0.01, eps=1e-3)),
    (optim.Adam, adam_ref, dict()),
    (optim.Adam, adam_ref, dict(lr=0.05, betas=(0.8, 0.9), weight_decay=0.1)),
    (optim.Adam, adam_ref, dict(lr=0.05, amsgrad=True, eps=1e-4)),
    (optim.AdamW, adamw_ref, dict()),
    (optim.AdamW, adamw_ref, dict(lr=0.05, weight_decay=0.3, amsgrad=True)),
]
IDS = [f"{c.__name__}-{'-'.join(f'{k}={v}' for k, v in kw.items()) or 'defaults'}"
       for c, _, kw in CASES]


@pytest.mark.parametrize("cls,ref,kw", CASES, ids=IDS)
def test_update_matches_reference(device, cls, ref, kw):
    w0, grads = _data()
    p = _param(w0, device)
    opt = cls([p], **kw)
    expected, s = w0.copy(), {}
    for g in grads:
        _set_grad(p, g)
        opt.step()
        expected = ref(expected, g, s, **kw)
        np.testing.assert_allclose(_host(p), expected, rtol=1e-12, atol=1e-14)


@pytest.mark.parametrize("fused", [False, True])
@pytest.mark.parametrize("cls,ref,kw", CASES, ids=IDS)
def test_float32_stays_float32_in_place(device, cls, ref, kw, fused):
    w0, grads = _data()
    p = _param(w0, device, np.float32)
    # NumPy float64 scalars as hyperparameters must not upcast the float32 update
    kw = {k: (np.float64(v) if isinstance(v, float) else v) for k, v in kw.items()}
    opt = cls([p], fused=fused, **kw)
    buf = p.data
    expected, s = w0.copy(), {}
    for i, g in enumerate(grads):
        _set_grad(p, g)
        grad_before = _host(p.grad).copy()
        grad_array = p.grad.data
        opt.step()
        if fused and i == 0:     # the fused path moves the data into its flat buffer, once
            assert p.data is not buf and p.data.base is not None
            buf = p.data
        assert p.data is buf
        assert p.grad.data is grad_array
        np.testing.assert_array_equal(_host(p.grad), grad_before)   # gradient untouched
        expected = ref(expected, g.astype(np.float32).astype(np.float64), s, **kw)
    assert p.data is buf and p.dtype == np.float32
    for value in opt.state.get(p, {}).values():
        assert isinstance(value, int) or value.dtype == np.float32
    np.testing.assert_allclose(_host(p), expected, rtol=2e-4, atol=2e-5)


def test_adamw_decay_is_decoupled_from_the_gradient():
    # with a zero gradient Adam's moments stay 0, so AdamW only shrinks p by (1 - lr * wd)
    w0 = np.array([1.0, -2.0, 3.0])
    p = _param(w0, "cpu")
    opt = optim.AdamW([p], lr=0.1, weight_decay=0.5)
    _set_grad(p, np.zeros(3))
    opt.step()
    np.testing.assert_allclose(_host(p), w0 * (1 - 0.1 * 0.5), rtol=1e-15)
    # Adam's L2 decay goes through the gradient and its normalization instead: ~lr per step
    q = _param(w0, "cpu")
    adam = optim.Adam([q], lr=0.1, weight_decay=0.5)
    _set_grad(q, np.zeros(3))
    adam.step()
    np.testing.assert_allclose(_host(q), w0 - 0.1 * np.sign(w0), rtol=1e-6)


def test_params_without_grad_are_skipped(device):
    a, b = _param(np.ones(3), device), _param(np.ones(2), device)
    for opt in (optim.SGD([a, b], lr=0.1, momentum=0.9), optim.Adam([a, b]),
                optim.RMSprop([a, b], centered=True)):
        _set_grad(a, np.ones(3))
        b.grad = None
        opt.step()
        np.testing.assert_array_equal(_host(b), np.ones(2))
        assert b not in opt.state
        assert not np.allclose(_host(a), 1.0)


def test_zero_grad(device):
    p = _param(np.ones(3), device)
    opt = optim.SGD([p], lr=0.1)
    _set_grad(p, np.ones(3))
    old = p.grad.data
    opt.zero_grad(set_to_none=False)
    np.testing.assert_array_equal(_host(p.grad), np.zeros(3))
    np.testing.assert_array_equal(_host(old), np.ones(3))   # a shared grad array is not written
    opt.zero_grad()
    assert p.grad is None


def test_step_returns_closure_loss():
    p = _param([2.0], "cpu")
    opt = optim.SGD([p], lr=0.25)

    def closure():
        opt.zero_grad()
        loss = (p * p).sum()
        loss.backward()
        return loss

    loss = opt.step(closure)
    assert float(loss) == 4.0
    np.testing.assert_allclose(_host(p), [2.0 - 0.25 * 4.0])


def test_trains_a_linear_model(device):
    rng = np.random.default_rng(0)
    x = minidl.tensor(rng.standard_normal((64, 3)), dtype=minidl.float32, device=device)
    y = x @ minidl.tensor([[1.0], [-2.0], [0.5]], device=device)
    for make in (lambda ps: optim.SGD(ps, lr=0.1, momentum=0.9),
                 lambda ps: optim.Adam(ps, lr=0.05), lambda ps: optim.RMSprop(ps, lr=0.03),
                 lambda ps: optim.AdamW(ps, lr=0.05)):
        model = nn.Linear(3, 1).to(device)
        opt = make(model.parameters())
        losses = []
        for _ in range(60):
            opt.zero_grad()
            loss = ((model(x) - y) ** 2).mean()
            loss.backward()
            opt.step()
            losses.append(float(loss))
        assert losses[-1] < 0.05 * losses[0], (type(opt).__name__, losses[0], losses[-1])


# -- param groups --------------------------------------------------------------------------

def test_param_groups_defaults_and_overrides():
    a, b, c = (_param(np.ones(2), "cpu") for _ in range(3))
    opt = optim.SGD([{"params": [a, b]}, {"params": c, "lr": 0.5, "name": "head"}], lr=0.1,
                    momentum=0.9)
    g0, g1 = opt.param_groups
    assert g0["params"] == [a, b] and g1["params"] == [c]
    assert g0["lr"] == 0.1 and g1["lr"] == 0.5 and g1["momentum"] == 0.9
    assert g1["name"] == "head"                 # extra keys are kept, as in PyTorch
    for p in (a, b, c):
        _set_grad(p, np.ones(2))
    opt.step()
    np.testing.assert_allclose(_host(a), 1 - 0.1)
    np.testing.assert_allclose(_host(c), 1 - 0.5)
    d = _param(np.ones(2), "cpu")
    opt.add_param_group({"params": [d], "momentum": 0.0})
    assert opt.param_groups[2]["lr"] == 0.1 and opt.param_groups[2]["momentum"] == 0.0
    assert opt.defaults == dict(lr=0.1, momentum=0.9, dampening=0, weight_decay=0,
                                nesterov=False)


def test_group_hyperparameters_are_read_every_step():
    p = _param([1.0], "cpu")
    opt = optim.SGD([p], lr=0.1)
    _set_grad(p, [1.0])
    opt.step()
    opt.param_groups[0]["lr"] = 0.01
    opt.step()
    np.testing.assert_allclose(_host(p), [1.0 - 0.1 - 0.01])


# -- state_dict ----------------------------------------------------------------------------

ROUND_TRIP = [
    lambda ps: optim.SGD(ps, lr=0.1, momentum=0.9, nesterov=True),
    lambda ps: optim.RMSprop(ps, lr=0.01, momentum=0.5, centered=True),
    lambda ps: optim.Adam(ps, lr=0.01, amsgrad=True),
    lambda ps: optim.AdamW(ps, lr=0.01),
]


def _groups(ps):
    return [{"params": ps[:2]}, {"params": ps[2:], "lr": 0.002, "weight_decay": 0.1}]


@pytest.mark.parametrize("make", ROUND_TRIP, ids=["SGD", "RMSprop", "Adam", "AdamW"])
def test_state_dict_round_trip_continues_like_uninterrupted(device, make):
    rng = np.random.default_rng(1)
    shapes = [(3, 2), (2,), (4,)]
    w0 = [rng.standard_normal(s) for s in shapes]
    grads = [[rng.standard_normal(s) for s in shapes] for _ in range(6)]

    ps = [_param(w, device) for w in w0]
    opt = make(_groups(ps))
    for step, gs in enumerate(grads):
        for p, g in zip(ps, gs):
            _set_grad(p, g)
        opt.step()
        if step == 2:   # checkpoint: host copies, as an .npz file would give back
            sd = opt.state_dict()
            sd = {"state": {i: {k: _host(v).copy() if hasattr(v, "shape") else v
                                for k, v in s.items()} for i, s in sd["state"].items()},
                  "param_groups": [dict(g) for g in sd["param_groups"]]}
            saved_w = [_host(p).copy() for p in ps]

    qs = [_param(w, device) for w in saved_w]
    opt2 = make(_groups(qs))
    opt2.load_state_dict(sd)
    for gs in grads[3:]:
        for q, g in zip(qs, gs):
            _set_grad(q, g)
        opt2.step()
    for p, q in zip(ps, qs):
        np.testing.assert_allclose(_host(q), _host(p), rtol=1e-13, atol=1e-15)
        for k, v in opt2.state[q].items():   # buffers live on the parameter's device
            assert isinstance(v, int) or backend.device_of(v) == q.device


def test_state_dict_layout():
    ps = [_param(np.ones(2), "cpu") for _ in range(3)]
    opt = optim.Adam(_groups(ps))
    for p in ps[1:]:
        _set_grad(p, np.ones(2))
    opt.step()
    sd = opt.state_dict()
    assert set(sd) == {"state", "param_groups"}
    assert [g["params"] for g in sd["param_groups"]] == [[0, 1], [2]]
    assert sd["param_groups"][1]["lr"] == 0.002 and sd["param_groups"][0]["lr"] == 1e-3
    assert sd["param_groups"][0]["betas"] == (0.9, 0.999)
    assert sorted(sd["state"]) == [1, 2]          # parameter 0 had no gradient: no state
    assert sd["state"][1]["step"] == 1 and type(sd["state"][1]["step"]) is int
    assert set(sd["state"][1]) == {"step", "exp_avg", "exp_avg_sq"}


def test_state_dict_saves_and_loads_as_npz(tmp_path):
    ps = [_param(np.arange(3.0), "cpu"), _param(np.ones((2, 2)), "cpu")]
    opt = optim.Adam(_groups(ps), amsgrad=True)
    for p in ps:
        _set_grad(p, np.ones(p.shape))
    opt.step()
    save(opt.state_dict(), tmp_path / "opt.npz")
    opt2 = optim.Adam(_groups([_param(np.arange(3.0), "cpu"), _param(np.ones((2, 2)), "cpu")]),
                      amsgrad=True)
    opt2.load_state_dict(load(tmp_path / "opt.npz"))
    for p, q in zip(ps, [p for g in opt2.param_groups for p in g["params"]]):
        for k, v in opt.state[p].items():
            np.testing.assert_array_equal(opt2.state[q][k], v)
    assert opt2.param_groups[0]["betas"] == (0.9, 0.999)


def test_load_copies_buffers():
    p = _param(np.ones(2), "cpu")
    opt = optim.SGD([p], lr=0.1, momentum=0.9)
    _set_grad(p, np.ones(2))
    opt.step()
    opt2 = optim.SGD([_param(np.ones(2), "cpu")], lr=0.1, momentum=0.9)
    opt2.load_state_dict(opt.state_dict())
    opt.step()
    (q,) = opt2.param_groups[0]["params"]
    np.testing.assert_array_equal(opt2.state[q]["momentum_buffer"], np.ones(2))


def _stepped_adam(shapes=((2,), (3,))):
    ps = [_param(np.ones(s), "cpu") for s in shapes]
    opt = optim.Adam(ps)
    for p in ps:
        _set_grad(p, np.ones(p.shape))
    opt.step()
    return opt


@pytest.mark.parametrize("target,match", [
    (lambda: optim.Adam([_param(np.ones(2), "cpu")]),
     "group 0 of the state dict has 2 parameter.*has 1"),
    (lambda: optim.Adam([{"params": [_param(np.ones(2), "cpu")]},
                         {"params": [_param(np.ones(3), "cpu")]}]),
     "state dict has 1 parameter group.*has 2"),
    (lambda: optim.Adam([_param(np.ones(2), "cpu"), _param(np.ones(4), "cpu")]),
     r"'exp_avg' of parameter 1 has shape \(3,\), the parameter has shape \(4,\)"),
    (lambda: optim.SGD([_param(np.ones(2), "cpu"), _param(np.ones(3), "cpu")]),
     "lacks.*'momentum'.*another kind of optimizer"),
])
def test_load_state_dict_mismatch(target, match):
    opt = target()
    before = [dict(g) for g in opt.param_groups]
    with pytest.raises(ValueError, match=match):
        opt.load_state_dict(_stepped_adam().state_dict())
    assert opt.param_groups == before and not opt.state   # nothing changed


def test_load_state_dict_rejects_foreign_buffers_and_non_dicts():
    sd = _stepped_adam().state_dict()
    sd["state"][0]["momentum_buffer"] = np.zeros(2)
    with pytest.raises(ValueError, match="'momentum_buffer'.*Adam keeps only"):
        optim.Adam([_param(np.ones(2), "cpu"), _param(np.ones(3), "cpu")]).load_state_dict(sd)
    with pytest.raises(ValueError, match="Adam.load_state_dict: expected a dict with keys"):
        optim.Adam([_param(np.ones(2), "cpu")]).load_state_dict({"state": {}})


def _malformed(edit):
    sd = _stepped_adam().state_dict()
    edit(sd)
    return sd


@pytest.mark.parametrize("edit,match", [
    (lambda sd: sd["state"][0].pop("step"), r"state of parameter 0 lacks \['step'\]"),
    (lambda sd: sd["state"][1].pop("exp_avg_sq"), r"parameter 1 lacks \['exp_avg_sq'\]"),
    (lambda sd: sd.update(state=[1, 2]), "'state' must be a dict.*got list"),
    (lambda sd: sd.update(param_groups=3), "'param_groups' must be a list of dicts, got int"),
    (lambda sd: sd["param_groups"][0].update(params=[0, 0]), "index 0 is listed twice"),
    (lambda sd: sd["param_groups"][0].update(params=["a", 1]),
     "a parameter index in param group 0 must be a non-negative integer, got 'a'"),
    (lambda sd: sd["state"][0].update(step=2.7),
     "state 'step' of parameter 0 must be a non-negative integer, got 2.7"),
    (lambda sd: sd["state"][0].update(exp_avg=np.array(["a", "b"])),
     "'exp_avg' of parameter 0 must be a real numeric array, got dtype <U1"),
    (lambda sd: sd["state"].update({0: [1.0]}), "state of parameter 0 must be a dict.*list"),
])
def test_load_state_dict_rejects_malformed_state(edit, match):
    opt = optim.Adam([_param(np.ones(2), "cpu"), _param(np.ones(3), "cpu")])
    with pytest.raises(ValueError, match=match):
        opt.load_state_dict(_malformed(edit))
    assert not opt.state                                   # nothing changed


def test_load_state_dict_takes_integral_numpy_indices_and_steps():
    sd = _malformed(lambda sd: sd["state"][0].update(step=np.float64(1.0)))
    sd["param_groups"][0]["params"] = np.array([0, 1])
    opt = optim.Adam([_param(np.ones(2), "cpu"), _param(np.ones(3), "cpu")])
    opt.load_state_dict(sd)
    assert [opt.state[p]["step"] for p in opt.param_groups[0]["params"]] == [1, 1]


# -- bad input ----------------------------------------------------------------------------

def _p():
    return _param(np.ones(2), "cpu")


BAD = [
    (lambda: optim.SGD([_p()], lr=-0.1), ValueError,
     ["SGD", "'lr'", "non-negative number", "-0.1"]),
    (lambda: optim.SGD([_p()], lr="0.1"), TypeError, ["SGD", "'lr'", "number", "str '0.1'"]),
    (lambda: optim.SGD([_p()], lr=0.1, momentum=-0.9), ValueError, ["SGD", "momentum", "-0.9"]),
    (lambda: optim.SGD([_p()], lr=0.1, dampening=1.5), ValueError,
     ["SGD", "dampening", "[0, 1]", "1.5"]),
    (lambda: optim.SGD([_p()], lr=0.1, weight_decay=-1), ValueError, ["SGD", "weight_decay"]),
    (lambda: optim.SGD([_p()], lr=0.1, nesterov=True), ValueError,
     ["SGD", "nesterov", "momentum > 0", "momentum=0.0"]),
    (lambda: optim.SGD([_p()], lr=0.1, momentum=0.9, dampening=0.1, nesterov=True), ValueError,
     ["SGD", "nesterov", "dampening = 0", "dampening=0.1"]),
    (lambda: optim.SGD([_p()], lr=0.1, nesterov=1), TypeError,
     ["SGD", "'nesterov'", "a bool", "int 1"]),
    (lambda: optim.SGD([_p()], lr=float("nan")), ValueError, ["SGD", "lr", "nan"]),
    (lambda: optim.Adam([_p()], betas=(0.9, 1.0)), ValueError,
     ["Adam", "betas[1]", "[0, 1)", "1.0"]),
    (lambda: optim.Adam([_p()], betas=(-0.1, 0.9)), ValueError, ["Adam", "betas[0]", "-0.1"]),
    (lambda: optim.Adam([_p()], betas=0.9), TypeError, ["Adam", "betas", "pair", "0.9"]),
    (lambda: optim.Adam([_p()], eps=0.0), ValueError, ["Adam", "eps", "positive number", "0.0"]),
    (lambda: optim.AdamW([_p()], weight_decay=-0.01), ValueError, ["AdamW", "weight_decay"]),
    (lambda: optim.AdamW([_p()], amsgrad="yes"), TypeError, ["AdamW", "amsgrad"]),
    (lambda: optim.RMSprop([_p()], alpha=1.5), ValueError, ["RMSprop", "alpha", "1.5"]),
    (lambda: optim.RMSprop([_p()], eps=-1e-8), ValueError, ["RMSprop", "eps", "positive number"]),
    (lambda: optim.RMSprop([_p()], momentum=-1), ValueError, ["RMSprop", "momentum"]),
    (lambda: optim.RMSprop([_p()], centered=None), TypeError, ["RMSprop", "centered"]),
    (lambda: optim.SGD([], lr=0.1), ValueError, ["SGD", "empty parameter list"]),
    (lambda: optim.Adam(iter([])), ValueError, ["Adam", "empty parameter list"]),
    (lambda: optim.SGD(_p(), lr=0.1), TypeError, ["SGD", "iterable", "Parameter"]),
    (lambda: optim.SGD({_p()}, lr=0.1), TypeError, ["SGD", "set"]),
    (lambda: optim.SGD([_p(), np.ones(2)], lr=0.1), TypeError,
     ["SGD", "Parameters", "entry 1", "ndarray"]),
    (lambda: optim.SGD([_p() * 2], lr=0.1), ValueError, ["SGD", "leaf"]),
    (lambda: optim.SGD([minidl.tensor([1, 2])], lr=0.1), TypeError, ["SGD", "int64"]),
    (lambda: optim.SGD([_p(), {"params": [_p()]}], lr=0.1), TypeError, ["SGD", "mix"]),
    (lambda: optim.SGD([{"lr": 0.1}], lr=0.1), ValueError, ["SGD", "'params'"]),
    (lambda: optim.SGD([{"params": [_p()]}, {"params": [_p()], "lr": -1}], lr=0.1),
     ValueError, ["SGD", "'lr' in param group 1", "-1"]),
]


@pytest.mark.parametrize("make,exc,words", BAD, ids=[" ".join(w) for _, _, w in BAD])
def test_bad_construction(make, exc, words):
    with pytest.raises(exc) as info:
        make()
    for w in words:
        assert w in str(info.value), (w, str(info.value))


def test_parameter_in_two_groups_or_twice():
    p = _p()
    with pytest.raises(ValueError, match="SGD: .*another param group"):
        optim.SGD([{"params": [p]}, {"params": [p]}], lr=0.1)
    with pytest.raises(ValueError, match="SGD: .*appears twice"):
        optim.SGD([p, p], lr=0.1)
    opt = optim.SGD([p], lr=0.1)
    with pytest.raises(ValueError, match="another param group"):
        opt.add_param_group({"params": [p]})
    assert len(opt.param_groups) == 1


def test_plain_leaf_tensors_are_accepted():
    # as in PyTorch, any floating-point leaf tensor can be optimized, not only Parameters
    x = minidl.tensor([3.0], requires_grad=True)
    opt = optim.SGD([x], lr=0.5)
    (x * x).sum().backward()
    opt.step()
    np.testing.assert_allclose(_host(x), [0.0])


def test_grad_shape_mismatch_is_reported():
    p = _p()
    opt = optim.SGD([p], lr=0.1)
    with pytest.raises(ValueError, match=r"grad: the gradient must match the tensor \(\(2,\)"):
        p.grad = minidl.tensor(np.ones(3))               # refused when assigned
    p.grad = minidl.tensor(np.ones(2))
    p.grad.data = np.ones(3)                             # changed behind the check
    with pytest.raises(RuntimeError, match=r"SGD.step: .*shape \(2,\).*gradient of shape \(3,\)"):
        opt.step()


def test_repr_lists_groups():
    text = repr(optim.Adam([_p()], lr=0.01))
    assert text.startswith("Adam (") and "Parameter Group 0" in text and "lr: 0.01" in text


# -- parity with torch ---------------------------------------------------------------------

@pytest.mark.parametrize("cls,ref,kw", CASES, ids=IDS)
def test_matches_torch(cls, ref, kw):
    torch = pytest.importorskip("torch")
    w0, grads = _data(n_steps=6)
    p = _param(w0, "cpu")
    q = torch.nn.Parameter(torch.tensor(w0))
    groups = lambda a, b: [{"params": [a]}, {"params": [b], "lr": 0.003}]  # noqa: E731
    p2, q2 = _param(w0[0], "cpu"), torch.nn.Parameter(torch.tensor(w0[0]))
    mine = cls(groups(p, p2), **kw)
    theirs = getattr(torch.optim, cls.__name__)(groups(q, q2), **kw)
    for g in grads:
        _set_grad(p, g), _set_grad(p2, g[0])
        q.grad, q2.grad = torch.tensor(g), torch.tensor(g[0])
        mine.step()
        theirs.step()
    np.testing.assert_allclose(_host(p), q.detach().numpy(), rtol=1e-12, atol=1e-14)
    np.testing.assert_allclose(_host(p2), q2.detach().numpy(), rtol=1e-12, atol=1e-14)
    assert math.isclose(mine.param_groups[1]["lr"], theirs.param_groups[1]["lr"])


def test_load_state_dict_takes_a_tensor_step():
    """PyTorch's optimizers keep ``step`` as a 0-d tensor; such a state dict loads."""
    sd = _stepped_adam().state_dict()
    for st in sd["state"].values():
        st["step"] = minidl.tensor(float(st["step"]))
    opt = optim.Adam([_param(np.ones(2), "cpu"), _param(np.ones(3), "cpu")])
    opt.load_state_dict(sd)
    assert [opt.state[p]["step"] for p in opt.param_groups[0]["params"]] == [1, 1]


@pytest.mark.parametrize("fused", [False, True])
def test_sgd_momentum_on_a_0d_parameter_with_weight_decay(device, fused):
    """g + wd * p of 0-d arrays is a NumPy scalar: the momentum buffer made from it must still
    be an array updated in place (it kept its first value, so the steps went wrong)."""
    p = nn.Parameter(np.array(1.0))
    p.data = backend.to_device(p.data, device)
    opt = optim.SGD([p], lr=0.1, momentum=0.9, weight_decay=0.1, fused=fused)
    w, b = 1.0, None
    for _ in range(3):
        p.grad = minidl.tensor(np.array(1.0), device=device)
        opt.step()
        g = 1.0 + 0.1 * w                       # the update written out
        b = g if b is None else 0.9 * b + g
        w -= 0.1 * b
    np.testing.assert_allclose(float(p.data), w, rtol=1e-12)
    assert opt.state[p]["momentum_buffer"].shape == ()


def test_a_state_dict_whose_schedule_ended_just_below_zero_loads():
    """Chained schedules can leave the lr a rounding below 0; PyTorch saves and loads it, and
    so must we (a negative lr is still refused when given to the constructor)."""
    o = optim.SGD([nn.Parameter(np.zeros(1))], lr=1.0)
    sched = optim.lr_scheduler
    s = sched.ChainedScheduler([sched.StepLR(o, 1, gamma=0.1),
                                sched.CosineAnnealingLR(o, T_max=5, eta_min=1e-3)])
    for _ in range(10):
        s.step()
    lr = o.param_groups[0]["lr"]
    assert -1e-4 < lr < 0
    fresh = optim.SGD([nn.Parameter(np.zeros(1))], lr=0.1)
    fresh.load_state_dict(o.state_dict())
    assert fresh.param_groups[0]["lr"] == lr
    with pytest.raises(ValueError, match="lr"):
        optim.SGD([nn.Parameter(np.zeros(1))], lr=-1e-5)
