"""minidl.optim.Adagrad and Adamax: against NumPy oracles written from the documented update
rules (every option), float32 kept in place, the fused path bit for bit equal to the
per-parameter one, state_dict round trips, bad input, and parity with torch when installed."""
import numpy as np
import pytest

import minidl.optim as optim
from minidl.serialization import load, save
from tests.test_optim import _data, _host, _param, _set_grad
from tests.test_optim_fused import _grad_steps, _pair, _step_both


# -- NumPy oracles: one step of each rule on float64 arrays, state in a dict ------------------

def adagrad_ref(p, g, s, lr=1e-2, lr_decay=0.0, weight_decay=0.0, initial_accumulator_value=0.0,
                eps=1e-10):
    s["t"] = t = s.get("t", 0) + 1
    g = g + weight_decay * p
    s["sum"] = s.get("sum", np.full_like(p, initial_accumulator_value)) + g ** 2
    return p - lr / (1 + (t - 1) * lr_decay) * g / (np.sqrt(s["sum"]) + eps)


def adamax_ref(p, g, s, lr=2e-3, betas=(0.9, 0.999), eps=1e-8, weight_decay=0.0):
    b1, b2 = betas
    s["t"] = t = s.get("t", 0) + 1
    g = g + weight_decay * p
    s["m"] = b1 * s.get("m", 0.0) + (1 - b1) * g
    s["u"] = np.maximum(b2 * s.get("u", 0.0), np.abs(g) + eps)
    return p - lr / (1 - b1 ** t) * s["m"] / s["u"]


CASES = [
    (optim.Adagrad, adagrad_ref, dict()),
    (optim.Adagrad, adagrad_ref, dict(lr=0.1, lr_decay=0.3, weight_decay=0.05)),
    (optim.Adagrad, adagrad_ref, dict(lr=0.05, initial_accumulator_value=0.5, eps=1e-3)),
    (optim.Adamax, adamax_ref, dict()),
    (optim.Adamax, adamax_ref, dict(lr=0.05, betas=(0.8, 0.9), weight_decay=0.1, eps=1e-3)),
]
IDS = [f"{c.__name__}-{'-'.join(f'{k}={v}' for k, v in kw.items()) or 'defaults'}"
       for c, _, kw in CASES]


@pytest.mark.parametrize("cls,ref,kw", CASES, ids=IDS)
def test_update_matches_reference(device, cls, ref, kw):
    w0, grads = _data()
    grads[1][0, :2] = 0.0            # a zero gradient (Adagrad's sum and Adamax's max hold)
    p = _param(w0, device)
    opt = cls([p], **kw)
    expected, s = w0.copy(), {}
    for g in grads:
        _set_grad(p, g)
        version = p._version
        opt.step()
        assert p._version == version + 1          # autograd sees the in-place change
        expected = ref(expected, g, s, **kw)
        np.testing.assert_allclose(_host(p), expected, rtol=1e-12, atol=1e-14)
    assert opt.state[p]["step"] == len(grads)


@pytest.mark.parametrize("fused", [False, True])
@pytest.mark.parametrize("cls,ref,kw", CASES, ids=IDS)
def test_float32_stays_float32_in_place(device, cls, ref, kw, fused):
    w0, grads = _data()
    p = _param(w0, device, np.float32)
    kw = {k: (np.float64(v) if isinstance(v, float) else v) for k, v in kw.items()}
    opt = cls([p], fused=fused, **kw)
    expected, s = w0.copy(), {}
    for i, g in enumerate(grads):
        _set_grad(p, g)
        grad_before = _host(p.grad).copy()
        opt.step()
        if i == 0:
            buf = p.data
        assert p.data is buf and p.dtype == np.float32
        np.testing.assert_array_equal(_host(p.grad), grad_before)      # gradient untouched
        expected = ref(expected, g.astype(np.float32).astype(np.float64), s, **kw)
    for value in opt.state[p].values():
        assert isinstance(value, int) or value.dtype == np.float32
    np.testing.assert_allclose(_host(p), expected, rtol=2e-4, atol=2e-5)


@pytest.mark.parametrize("cls,ref,kw", CASES, ids=IDS)
def test_fused_equals_per_parameter_bit_for_bit(device, cls, ref, kw):
    a, b, opt_a, opt_b = _pair(cls, kw, device)
    # steps 2 and 4 leave some parameters without a gradient: the fused optimizer falls back
    # to per-parameter updates there, then resumes fused once the states are in step again
    _step_both(a, b, opt_a, opt_b, _grad_steps(5), [(), (1,), (), (0, 3), ()])
    _step_both(a, b, opt_a, opt_b, _grad_steps(2, seed=7))
    flat = opt_b._flat[0]
    assert all(p.data is view for p, view in zip(b, flat.views))
    for name, views in flat._state_views.items():
        assert all(opt_b.state[p][name] is v for p, v in zip(b, views))


def test_fused_runs_one_update_per_group(monkeypatch):
    calls = []
    update = optim.Adagrad._update
    monkeypatch.setattr(optim.Adagrad, "_update",
                        lambda self, *args: calls.append(1) or update(self, *args))
    a, b, opt_a, opt_b = _pair(optim.Adagrad, dict(lr=0.1), "cpu")
    _step_both(a, b, opt_a, opt_b, _grad_steps(1))
    assert len(calls) == len(a) + 1          # once per parameter, then once for the group


def _groups(ps):
    return [{"params": ps[:2]}, {"params": ps[2:], "lr": 0.02, "weight_decay": 0.1}]


ROUND_TRIP = [
    lambda ps, **kw: optim.Adagrad(ps, lr=0.1, lr_decay=0.05, initial_accumulator_value=0.1,
                                   **kw),
    lambda ps, **kw: optim.Adamax(ps, lr=0.01, betas=(0.8, 0.95), **kw),
]


@pytest.mark.parametrize("fused", [False, True])
@pytest.mark.parametrize("make", ROUND_TRIP, ids=["Adagrad", "Adamax"])
def test_state_dict_round_trip_continues_like_uninterrupted(device, make, fused, tmp_path):
    rng = np.random.default_rng(1)
    shapes = [(3, 2), (2,), (4,)]
    w0 = [rng.standard_normal(s) for s in shapes]
    grads = [[rng.standard_normal(s) for s in shapes] for _ in range(6)]
    ps = [_param(w, device) for w in w0]
    opt = make(_groups(ps), fused=fused)
    for step, gs in enumerate(grads):
        for p, g in zip(ps, gs):
            _set_grad(p, g)
        opt.step()
        if step == 2:                     # checkpoint through an .npz file
            save(opt.state_dict(), tmp_path / "opt.npz")
            saved_w = [_host(p).copy() for p in ps]
    qs = [_param(w, device) for w in saved_w]
    opt2 = make(_groups(qs), fused=fused)
    opt2.load_state_dict(load(tmp_path / "opt.npz"))
    assert opt2.param_groups[1]["lr"] == 0.02 and opt2.state[qs[0]]["step"] == 3
    for gs in grads[3:]:
        for q, g in zip(qs, gs):
            _set_grad(q, g)
        opt2.step()
    for p, q in zip(ps, qs):
        np.testing.assert_array_equal(_host(q), _host(p))


def test_load_state_dict_rejects_another_optimizers_state():
    ps = [_param(np.ones(2), "cpu")]
    adam = optim.Adam(ps)
    _set_grad(ps[0], np.ones(2))
    adam.step()
    with pytest.raises(ValueError, match="Adagrad.load_state_dict: .*lacks.*lr_decay"):
        optim.Adagrad([_param(np.ones(2), "cpu")]).load_state_dict(adam.state_dict())
    sd = optim.Adagrad(ps).state_dict()
    sd["state"] = {0: {"step": 1, "exp_avg": np.zeros(2)}}
    with pytest.raises(ValueError, match="'exp_avg'; Adagrad keeps only"):
        optim.Adagrad([_param(np.ones(2), "cpu")]).load_state_dict(sd)
    sd["state"] = {0: {"step": 1, "exp_avg": np.zeros(2)}}
    with pytest.raises(ValueError, match=r"Adamax.load_state_dict: .*lacks \['exp_inf'\]"):
        opt = optim.Adamax([_param(np.ones(2), "cpu")])
        sd["param_groups"] = opt.state_dict()["param_groups"]
        opt.load_state_dict(sd)


def _p():
    return _param(np.ones(2), "cpu")


BAD = [
    (lambda: optim.Adagrad([_p()], lr=-0.1), ValueError,
     ["Adagrad", "lr", "non-negative number", "-0.1"]),
    (lambda: optim.Adagrad([_p()], lr_decay=-1), ValueError, ["Adagrad", "lr_decay", "-1"]),
    (lambda: optim.Adagrad([_p()], weight_decay=-1), ValueError, ["Adagrad", "weight_decay"]),
    (lambda: optim.Adagrad([_p()], initial_accumulator_value=-0.5), ValueError,
     ["Adagrad", "initial_accumulator_value", "non-negative number", "-0.5"]),
    (lambda: optim.Adagrad([_p()], eps=0.0), ValueError,
     ["Adagrad", "eps", "positive number", "0.0"]),
    (lambda: optim.Adagrad([_p()], lr="1"), TypeError, ["Adagrad", "'lr'", "number", "str '1'"]),
    (lambda: optim.Adagrad([{"params": [_p()], "lr_decay": float("nan")}]), ValueError,
     ["Adagrad", "'lr_decay' in param group 0", "nan"]),
    (lambda: optim.Adagrad([_p()], fused=1), TypeError, ["Adagrad", "'fused'", "a bool", "int 1"]),
    (lambda: optim.Adamax([_p()], betas=(0.9, 1.0)), ValueError,
     ["Adamax", "betas[1]", "[0, 1)", "1.0"]),
    (lambda: optim.Adamax([_p()], betas=0.9), TypeError, ["Adamax", "betas", "pair", "0.9"]),
    (lambda: optim.Adamax([_p()], eps=-1e-8), ValueError, ["Adamax", "eps", "positive number"]),
    (lambda: optim.Adamax([_p()], lr=-1), ValueError, ["Adamax", "lr", "-1"]),
    (lambda: optim.Adamax([_p()], weight_decay=-1), ValueError, ["Adamax", "weight_decay"]),
]


@pytest.mark.parametrize("make,exc,words", BAD, ids=[" ".join(w) for _, _, w in BAD])
def test_bad_construction(make, exc, words):
    with pytest.raises(exc) as info:
        make()
    for w in words:
        assert w in str(info.value), (w, str(info.value))


def test_defaults_match_pytorch_signatures():
    assert optim.Adagrad([_p()]).defaults == dict(
        lr=1e-2, lr_decay=0, weight_decay=0, initial_accumulator_value=0, eps=1e-10)
    assert optim.Adamax([_p()]).defaults == dict(lr=2e-3, betas=(0.9, 0.999), eps=1e-8,
                                                 weight_decay=0)


def test_works_with_a_scheduler_and_graph_capture_is_refused():
    p = _p()
    opt = optim.Adagrad([p], lr=0.5)
    sched = optim.lr_scheduler.ExponentialLR(opt, gamma=0.5)
    assert not opt._capturable               # the step count is host-side state
    expected, s = _host(p).copy(), {}
    for t in range(3):
        g = np.array([1.0, -2.0]) * (t + 1)
        _set_grad(p, g)
        opt.step()
        expected = adagrad_ref(expected, g, s, lr=0.5 * 0.5 ** t)
        sched.step()
    np.testing.assert_allclose(_host(p), expected, rtol=1e-12)


# -- parity with torch ---------------------------------------------------------------------

@pytest.mark.parametrize("cls,ref,kw", CASES, ids=IDS)
def test_matches_torch(cls, ref, kw):
    torch = pytest.importorskip("torch")
    w0, grads = _data(n_steps=6)
    p, p2 = _param(w0, "cpu"), _param(w0[0], "cpu")
    q, q2 = (torch.nn.Parameter(torch.tensor(w0)), torch.nn.Parameter(torch.tensor(w0[0])))
    groups = lambda a, b: [{"params": [a]}, {"params": [b], "lr": 0.003}]  # noqa: E731
    mine = cls(groups(p, p2), **kw)
    theirs = getattr(torch.optim, cls.__name__)(groups(q, q2), **kw)
    for g in grads:
        _set_grad(p, g), _set_grad(p2, g[0])
        q.grad, q2.grad = torch.tensor(g), torch.tensor(g[0])
        mine.step()
        theirs.step()
        np.testing.assert_allclose(_host(p), q.detach().numpy(), rtol=1e-12, atol=1e-14)
        np.testing.assert_allclose(_host(p2), q2.detach().numpy(), rtol=1e-12, atol=1e-14)
    for name, value in mine.state[p].items():
        other = theirs.state[q][name]
        if isinstance(value, int):
            assert value == int(other)
        else:
            np.testing.assert_allclose(_host(value), other.numpy(), rtol=1e-12, atol=1e-14)


def test_state_dict_loads_into_torch_and_back():
    torch = pytest.importorskip("torch")
    w0, grads = _data(n_steps=3)
    p = _param(w0, "cpu")
    mine = optim.Adagrad([p], lr=0.1, lr_decay=0.01)
    for g in grads[:2]:
        _set_grad(p, g)
        mine.step()
    sd = mine.state_dict()
    q = torch.nn.Parameter(torch.tensor(_host(p)))
    theirs = torch.optim.Adagrad([q], lr=0.1, lr_decay=0.01)
    theirs.load_state_dict({"state": {0: {"step": torch.tensor(float(sd["state"][0]["step"])),
                                          "sum": torch.tensor(sd["state"][0]["sum"])}},
                            "param_groups": [dict(theirs.param_groups[0], params=[0])]})
    _set_grad(p, grads[2])
    q.grad = torch.tensor(grads[2])
    mine.step()
    theirs.step()
    np.testing.assert_allclose(_host(p), q.detach().numpy(), rtol=1e-12, atol=1e-14)
    back = optim.Adagrad([_param(w0, "cpu")], lr=0.1, lr_decay=0.01)
    tsd = theirs.state_dict()
    back.load_state_dict({"state": {0: {k: v.numpy() for k, v in tsd["state"][0].items()}},
                          "param_groups": [{k: v for k, v in tsd["param_groups"][0].items()
                                            if k in back.defaults or k == "params"}]})
    assert back.state[back.param_groups[0]["params"][0]]["step"] == 3
