"""The optimizers' fused path (optim/flat.py): all of a group's parameters updated at once
through flat buffers. It must give the per-parameter results bit for bit, whatever happens
between steps (a parameter without a gradient, rebound parameter data, a loaded state dict,
mixed dtypes), and keep state_dict() as it was."""
import numpy as np
import pytest

import minidl
import minidl.functional as F
import minidl.nn as nn
import minidl.optim as optim
from minidl.serialization import load, save
from tests.test_optim import CASES, IDS, _host

SHAPES = [(3, 4), (4,), (2, 3, 3, 3), (1,), (5,)]


def _params(device, dtype=np.float64, seed=0):
    rng = np.random.default_rng(seed)
    return [nn.Parameter(minidl.tensor(rng.standard_normal(s).astype(dtype), device=device))
            for s in SHAPES]


def _grad_steps(n, seed=1):
    rng = np.random.default_rng(seed)
    return [[rng.standard_normal(s) for s in SHAPES] for _ in range(n)]


def _set_grads(params, grads, skip=()):
    for i, (p, g) in enumerate(zip(params, grads)):
        p.grad = None if i in skip else minidl.tensor(g.astype(p.dtype), device=p.device)


def _assert_same(params_a, params_b, opt_a, opt_b):
    for pa, pb in zip(params_a, params_b):
        np.testing.assert_array_equal(_host(pa), _host(pb))
    sa, sb = opt_a.state_dict(), opt_b.state_dict()
    assert sa["param_groups"] == sb["param_groups"]
    assert sorted(sa["state"]) == sorted(sb["state"])
    for i, buffers in sa["state"].items():
        assert sorted(buffers) == sorted(sb["state"][i])
        for name, value in buffers.items():
            other = sb["state"][i][name]
            if isinstance(value, int):
                assert value == other
            else:
                assert value.shape == other.shape
                np.testing.assert_array_equal(_host(value), _host(other))


def _pair(cls, kw, device, dtype=np.float64):
    a, b = _params(device, dtype), _params(device, dtype)
    return a, b, cls(a, fused=False, **kw), cls(b, fused=True, **kw)


def _step_both(a, b, opt_a, opt_b, steps, skips=None):
    """The same gradients into both parameter lists, a step of each optimizer, and the
    results compared after every step."""
    for i, grads in enumerate(steps):
        skip = skips[i] if skips else ()
        _set_grads(a, grads, skip)
        _set_grads(b, grads, skip)
        opt_a.step()
        opt_b.step()
        _assert_same(a, b, opt_a, opt_b)


@pytest.mark.parametrize("cls,ref,kw", CASES, ids=IDS)
def test_fused_equals_per_parameter_bit_for_bit(device, cls, ref, kw):
    a, b, opt_a, opt_b = _pair(cls, kw, device)
    _step_both(a, b, opt_a, opt_b, _grad_steps(4))
    flat = opt_b._flat[0]
    assert all(p.data is view for p, view in zip(b, flat.views))
    assert all(p.data.shape == s for p, s in zip(b, SHAPES))
    for name, views in flat._state_views.items():      # state entries are views of flat buffers
        assert all(opt_b.state[p][name] is v for p, v in zip(b, views))
        assert all(v.base is flat.state[name] for v in views) or device != "cpu"


@pytest.mark.parametrize("cls,kw", [(optim.SGD, dict(lr=0.1, momentum=0.9, nesterov=True,
                                                     weight_decay=5e-4)),
                                    (optim.Adam, dict(lr=0.01, amsgrad=True))])
def test_one_update_per_group_instead_of_one_per_parameter(monkeypatch, cls, kw):
    calls = []
    update = cls._update
    monkeypatch.setattr(cls, "_update", lambda self, *args: calls.append(1) or
                        update(self, *args))
    a, b, opt_a, opt_b = _pair(cls, kw, "cpu")
    grads = _grad_steps(1)[0]
    _set_grads(a, grads)
    opt_a.step()
    assert len(calls) == len(SHAPES)
    calls.clear()
    _set_grads(b, grads)
    opt_b.step()
    assert len(calls) == 1


@pytest.mark.parametrize("cls,kw", [(optim.SGD, dict(lr=0.1, momentum=0.9)),
                                    (optim.Adam, dict(lr=0.01)),
                                    (optim.RMSprop, dict(lr=0.01, centered=True))])
def test_a_parameter_without_gradient_falls_back_exactly(device, cls, kw):
    a, b, opt_a, opt_b = _pair(cls, kw, device)
    _step_both(a, b, opt_a, opt_b, _grad_steps(5), [(), (2,), (), (0, 4), ()])


def test_first_gradient_of_a_parameter_arrives_late():
    """SGD's momentum buffers are created per parameter on its first gradient: until every
    parameter has one, the states are out of step and the fused path must wait."""
    a, b, opt_a, opt_b = _pair(optim.SGD, dict(lr=0.1, momentum=0.9), "cpu")
    _step_both(a, b, opt_a, opt_b, _grad_steps(4), [(1, 3), (), (), ()])
    assert 0 in opt_b._flat


def test_rebound_parameter_data_is_adopted(device):
    a, b, opt_a, opt_b = _pair(optim.SGD, dict(lr=0.1, momentum=0.9, weight_decay=0.01), device)
    steps = _grad_steps(3)
    for i, grads in enumerate(steps):
        if i == 1:   # e.g. model.load_state_dict, or user code assigning p.data
            new = np.full(SHAPES[2], 0.5)
            a[2].data = minidl.tensor(new, device=device).data
            b[2].data = minidl.tensor(new, device=device).data
        _set_grads(a, grads)
        _set_grads(b, grads)
        opt_a.step()
        opt_b.step()
        _assert_same(a, b, opt_a, opt_b)
    assert b[2].data is opt_b._flat[0].views[2]


def test_loading_a_state_dict_between_fused_steps(tmp_path):
    a, b, opt_a, opt_b = _pair(optim.Adam, dict(lr=0.01, weight_decay=0.1), "cpu")
    steps = _grad_steps(4)
    _step_both(a, b, opt_a, opt_b, steps[:2])
    path = tmp_path / "opt.npz"
    save(opt_b.state_dict(), path)                       # fused state saves as usual ...
    c = _params("cpu")
    for pc, pb in zip(c, b):
        pc.data = pb.data.copy()
    opt_c = optim.Adam(c, fused=True, lr=0.01, weight_decay=0.1)
    opt_c.load_state_dict(load(path))                    # ... and loads into a fused optimizer
    opt_b.load_state_dict(opt_a.state_dict())            # replaces the flat state's arrays
    for grads in steps[2:]:
        for params, opt in ((a, opt_a), (b, opt_b), (c, opt_c)):
            _set_grads(params, grads)
            opt.step()
        _assert_same(a, b, opt_a, opt_b)
        _assert_same(a, c, opt_a, opt_c)


def test_mixed_dtypes_in_a_group_run_per_parameter():
    a = _params("cpu") + [nn.Parameter(minidl.tensor(np.ones(3, np.float32)))]
    b = _params("cpu") + [nn.Parameter(minidl.tensor(np.ones(3, np.float32)))]
    opt_a = optim.SGD(a, lr=0.1, momentum=0.5, fused=False)
    opt_b = optim.SGD(b, lr=0.1, momentum=0.5, fused=True)
    rng = np.random.default_rng(3)
    for grads in _grad_steps(3):
        grads = grads + [rng.standard_normal(3)]
        for params, opt in ((a, opt_a), (b, opt_b)):
            for p, g in zip(params, grads):
                p.grad = minidl.tensor(g.astype(p.dtype))
            opt.step()
        _assert_same(a, b, opt_a, opt_b)
    assert opt_b._flat == {} and b[-1].dtype == np.float32


def test_param_groups_get_a_buffer_each():
    a, b = _params("cpu"), _params("cpu")
    groups = lambda ps: [{"params": ps[:2]}, {"params": ps[2:], "lr": 0.01, "momentum": 0.5}]
    opt_a = optim.SGD(groups(a), lr=0.1, fused=False)
    opt_b = optim.SGD(groups(b), lr=0.1, fused=True)
    _step_both(a, b, opt_a, opt_b, _grad_steps(3))
    assert sorted(opt_b._flat) == [0, 1]
    assert opt_b._flat[0].size == 16 and opt_b._flat[1].size == 54 + 1 + 5


def test_training_a_model_with_backward_is_identical(device):
    def run(fused):
        minidl.manual_seed(5)
        model = nn.Sequential(nn.Conv2d(2, 3, 3, padding=1), nn.BatchNorm2d(3), nn.ReLU(),
                              nn.Flatten(), nn.Linear(3 * 4 * 4, 4)).to(device)
        opt = optim.SGD(model.parameters(), lr=0.1, momentum=0.9, nesterov=True,
                        weight_decay=5e-4, fused=fused)
        rng = np.random.default_rng(0)
        x = minidl.tensor(rng.standard_normal((6, 2, 4, 4), dtype=np.float32), device=device)
        y = minidl.tensor(rng.integers(0, 4, 6), device=device)
        losses = []
        for _ in range(4):
            loss = F.cross_entropy(model(x), y)
            opt.zero_grad()
            loss.backward()
            opt.step()
            losses.append(float(loss.item()))
        return losses, [_host(p) for p in model.parameters()]

    (la, pa), (lb, pb) = run(False), run(True)
    assert la == lb and la[-1] < la[0]
    for x, y in zip(pa, pb):
        np.testing.assert_array_equal(x, y)


def test_fused_default_is_off_on_the_cpu_and_checked():
    ps = _params("cpu")
    before = [p.data for p in ps]
    opt = optim.SGD(ps, lr=0.1)
    assert opt.fused is None
    _set_grads(ps, _grad_steps(1)[0])
    opt.step()
    assert all(p.data is d for p, d in zip(ps, before)) and opt._flat == {}
    with pytest.raises(TypeError, match="Adam: 'fused' must be a bool, got str 'yes'"):
        optim.Adam(ps, fused="yes")
