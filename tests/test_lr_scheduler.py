"""minidl.optim.lr_scheduler: every scheduler against its closed form over a full run, OneCycleLR's
phases and momentum, warm-up chaining, state_dict round trips, bad input, torch parity."""
import math

import numpy as np
import pytest

import minidl
import minidl.nn as nn
import minidl.optim as optim
from minidl.optim import lr_scheduler as L

BASE = (0.1, 0.4)       # two param groups with different lrs


def _opt(kind="sgd", lrs=BASE, device="cpu"):
    groups = [{"params": [nn.Parameter(minidl.zeros(2, device=device))], "lr": lr}
              for lr in lrs]
    if kind == "adam":
        return optim.Adam(groups)
    return optim.SGD(groups, lr=1.0, momentum=0.9)


def _run(opt, sched, n):
    """The lrs in effect for steps 0..n-1 (read before each step, as a training loop uses)."""
    out = []
    for _ in range(n):
        lrs = [g["lr"] for g in opt.param_groups]
        assert sched.get_last_lr() == lrs
        out.append(lrs)
        opt.step()
        sched.step()
    return np.array(out)


def _closed(fn, n, lrs=BASE):
    return np.array([[fn(t, b) for b in lrs] for t in range(n)])


CLOSED_FORMS = [
    ("StepLR", lambda o: L.StepLR(o, step_size=3, gamma=0.5),
     lambda t, b: b * 0.5 ** (t // 3)),
    ("MultiStepLR", lambda o: L.MultiStepLR(o, milestones=[9, 4, 9, 15], gamma=0.1),
     lambda t, b: b * 0.1 ** sum(m <= t for m in (4, 9, 9, 15))),
    ("CosineAnnealingLR", lambda o: L.CosineAnnealingLR(o, T_max=10, eta_min=0.01),
     lambda t, b: 0.01 + (b - 0.01) * (1 + math.cos(math.pi * t / 10)) / 2),
    ("LinearLR", lambda o: L.LinearLR(o, start_factor=0.25, end_factor=0.75, total_iters=8),
     lambda t, b: b * (0.25 + 0.5 * min(t, 8) / 8)),
    ("LinearLR-defaults", lambda o: L.LinearLR(o),
     lambda t, b: b * (1 / 3 + (2 / 3) * min(t, 5) / 5)),
    ("warmup+cosine", lambda o: L.SequentialLR(o, [L.LinearLR(o, 0.1, total_iters=5),
                                                   L.CosineAnnealingLR(o, T_max=20)], [5]),
     lambda t, b: (b * (0.1 + 0.9 * t / 5) if t < 5
                   else b * (1 + math.cos(math.pi * (t - 5) / 20)) / 2)),
    ("three-stage", lambda o: L.SequentialLR(o, [L.LinearLR(o, 0.5, total_iters=2),
                                                 L.StepLR(o, 4, 0.1),
                                                 L.CosineAnnealingLR(o, 6, 0.001)], [3, 10]),
     lambda t, b: (b * (0.5 + 0.5 * min(t, 2) / 2) if t < 3
                   else b * 0.1 ** ((t - 3) // 4) if t < 10
                   else 0.001 + (b - 0.001) * (1 + math.cos(math.pi * (t - 10) / 6)) / 2)),
]


@pytest.mark.parametrize("make,closed", [c[1:] for c in CLOSED_FORMS],
                         ids=[c[0] for c in CLOSED_FORMS])
def test_full_run_matches_closed_form(make, closed):
    opt = _opt()
    got = _run(opt, make(opt), 30)
    np.testing.assert_allclose(got, _closed(closed, 30), rtol=1e-12, atol=1e-15)


def test_cosine_continues_past_T_max_like_pytorch():
    # past T_max the closed form keeps following the cosine (back up, period 2 * T_max)
    opt = _opt()
    got = _run(opt, L.CosineAnnealingLR(opt, T_max=4, eta_min=0.02), 17)
    np.testing.assert_allclose(
        got, _closed(lambda t, b: 0.02 + (b - 0.02) * (1 + math.cos(math.pi * t / 4)) / 2, 17),
        rtol=1e-12, atol=1e-15)


def test_chainable_schedulers_compose():
    # stepped together, a warm-up and a step decay multiply, as in PyTorch
    opt = _opt()
    warm, decay = L.LinearLR(opt, 0.2, total_iters=4), L.StepLR(opt, 3, 0.5)
    got = []
    for _ in range(12):
        got.append([g["lr"] for g in opt.param_groups])
        warm.step()
        decay.step()
    want = _closed(lambda t, b: b * (0.2 + 0.8 * min(t, 4) / 4) * 0.5 ** (t // 3), 12)
    np.testing.assert_allclose(got, want, rtol=1e-12)


# -- OneCycleLR ----------------------------------------------------------------------------

def _one_cycle_run(opt, sched, n):
    lrs, moms = [], []
    for _ in range(n):
        lrs.append(sched.get_last_lr()[0])
        g = opt.param_groups[0]
        moms.append(g["betas"][0] if "betas" in g else g["momentum"])
        opt.step()
        sched.step()
    return np.array(lrs), np.array(moms)


@pytest.mark.parametrize("strategy", ["cos", "linear"])
def test_one_cycle_two_phases(strategy):
    T, max_lr, p = 40, 2.0, 10          # pct_start * T = 10: the peak is at step 9
    opt = _opt()
    sched = L.OneCycleLR(opt, max_lr=max_lr, total_steps=T, pct_start=0.25,
                         anneal_strategy=strategy, div_factor=20.0, final_div_factor=50.0)
    lrs, moms = _one_cycle_run(opt, sched, T)
    initial, low = max_lr / 20.0, max_lr / 20.0 / 50.0

    def anneal(a, b, x):
        return b + (a - b) * (1 + math.cos(math.pi * x)) / 2 if strategy == "cos" else \
            a + (b - a) * x

    want_lr = [anneal(initial, max_lr, t / (p - 1)) if t <= p - 1
               else anneal(max_lr, low, (t - p + 1) / (T - p)) for t in range(T)]
    want_m = [anneal(0.95, 0.85, t / (p - 1)) if t <= p - 1
              else anneal(0.85, 0.95, (t - p + 1) / (T - p)) for t in range(T)]
    np.testing.assert_allclose(lrs, want_lr, rtol=1e-12)
    np.testing.assert_allclose(moms, want_m, rtol=1e-12)
    assert lrs[0] == pytest.approx(initial) and lrs.argmax() == p - 1
    assert lrs[p - 1] == pytest.approx(max_lr) and lrs[-1] == pytest.approx(low)
    # the second group got the same max_lr (a single number applies to every group)
    assert opt.param_groups[1]["max_lr"] == max_lr


def test_one_cycle_three_phases_per_group_max_lr_and_adam_beta1():
    T = 30                               # p = 0.3 * 30 = 9: up to 8, down to 16, then to min
    opt = _opt("adam")
    sched = L.OneCycleLR(opt, max_lr=[1.0, 3.0], total_steps=T, three_phase=True,
                         anneal_strategy="linear")
    lrs, beta1 = _one_cycle_run(opt, sched, T)
    initial, low = 1.0 / 25, 1.0 / 25 / 1e4
    assert lrs[0] == pytest.approx(initial) and lrs[8] == pytest.approx(1.0)
    assert lrs[16] == pytest.approx(initial) and lrs[-1] == pytest.approx(low)
    np.testing.assert_allclose(lrs[:9], np.linspace(initial, 1.0, 9), rtol=1e-12)
    np.testing.assert_allclose(lrs[8:17], np.linspace(1.0, initial, 9), rtol=1e-12)
    np.testing.assert_allclose(lrs[16:], np.linspace(initial, low, 14), rtol=1e-9)
    assert beta1[0] == pytest.approx(0.95) and beta1[8] == pytest.approx(0.85)
    assert np.allclose(beta1[16:], 0.95)
    assert opt.param_groups[1]["max_lr"] == 3.0
    assert opt.param_groups[0]["betas"][1] == 0.999      # beta2 untouched


def test_one_cycle_epochs_times_steps_and_stepping_past_the_end():
    opt = _opt()
    sched = L.OneCycleLR(opt, max_lr=1.0, epochs=3, steps_per_epoch=4, cycle_momentum=False)
    assert sched.total_steps == 12
    for _ in range(12):                  # a loop of total_steps batches steps 12 times: fine
        opt.step()
        sched.step()
    assert opt.param_groups[0]["momentum"] == 0.9      # cycle_momentum=False leaves it
    last, lrs = sched.last_epoch, sched.get_last_lr()
    with pytest.raises(ValueError, match="OneCycleLR: tried to step 13 times, but "
                                         "total_steps is 12"):
        sched.step()
    assert sched.last_epoch == last and sched.get_last_lr() == lrs   # state unchanged


# -- state_dict ----------------------------------------------------------------------------

ROUND_TRIP = [
    lambda o: L.StepLR(o, 4, 0.5),
    lambda o: L.MultiStepLR(o, [3, 7], 0.3),
    lambda o: L.CosineAnnealingLR(o, 12, 0.001),
    lambda o: L.LinearLR(o, 0.1, total_iters=6),
    lambda o: L.OneCycleLR(o, max_lr=[0.5, 1.0], total_steps=20),
    lambda o: L.SequentialLR(o, [L.LinearLR(o, 0.1, total_iters=4),
                                 L.CosineAnnealingLR(o, 16)], [4]),
]


@pytest.mark.parametrize("make", ROUND_TRIP, ids=["StepLR", "MultiStepLR", "Cosine",
                                                  "LinearLR", "OneCycleLR", "SequentialLR"])
def test_state_dict_round_trip(device, make):
    opt = _opt(device=device)
    sched = make(opt)
    full = _run(opt, sched, 9)
    opt_sd, sched_sd = opt.state_dict(), sched.state_dict()
    full = np.concatenate([full, _run(opt, sched, 10)])

    opt2 = _opt(device=device)
    sched2 = make(opt2)                   # a fresh run, restored from the checkpoint
    opt2.load_state_dict(opt_sd)
    sched2.load_state_dict(sched_sd)
    np.testing.assert_allclose(_run(opt2, sched2, 10), full[9:], rtol=1e-12)
    assert opt2.param_groups[0]["momentum"] == opt.param_groups[0]["momentum"]


def test_state_dict_is_plain_python():
    opt = _opt()
    sched = ROUND_TRIP[-1](opt)
    sd = sched.state_dict()

    def check(x):
        if isinstance(x, dict):
            return all(isinstance(k, str) and check(v) for k, v in x.items())
        if isinstance(x, (list, tuple)):
            return all(check(v) for v in x)
        return x is None or isinstance(x, (bool, int, float, str))

    assert check(sd) and "optimizer" not in sd and len(sd["_schedulers"]) == 2
    sd["last_epoch"] = np.int64(sd["last_epoch"])   # as a checkpoint reader may give back
    sched.load_state_dict(sd)
    assert type(sched.last_epoch) is int


def test_load_state_dict_mismatch():
    opt = _opt()
    step = L.StepLR(opt, 3)
    with pytest.raises(ValueError, match="StepLR.load_state_dict: .*missing.*T_max"):
        step.load_state_dict(L.CosineAnnealingLR(_opt(), 5).state_dict())
    with pytest.raises(ValueError, match="3 base_lrs, the optimizer has 2 param group"):
        step.load_state_dict(L.StepLR(_opt(lrs=(1, 2, 3)), 3).state_dict())
    seq = ROUND_TRIP[-1](_opt())
    with pytest.raises(ValueError, match="SequentialLR.load_state_dict: expected .*2"):
        seq.load_state_dict(step.state_dict())


# -- bad input ----------------------------------------------------------------------------

def _bad_cases():
    o = _opt()
    return [
        (lambda: L.StepLR("sgd", 3), TypeError, ["StepLR", "optimizer", "str"]),
        (lambda: L.StepLR(o, 0), ValueError, ["StepLR", "step_size", ">= 1", "0"]),
        (lambda: L.StepLR(o, 2.5), TypeError, ["StepLR", "step_size", "int", "2.5"]),
        (lambda: L.StepLR(o, 3, gamma=-0.1), ValueError, ["StepLR", "gamma", "-0.1"]),
        (lambda: L.MultiStepLR(o, 5), TypeError, ["MultiStepLR", "milestones", "list"]),
        (lambda: L.MultiStepLR(o, [3, 0]), ValueError, ["MultiStepLR", "milestones[1]"]),
        (lambda: L.CosineAnnealingLR(o, 0), ValueError, ["CosineAnnealingLR", "T_max"]),
        (lambda: L.CosineAnnealingLR(o, 5, eta_min=-1), ValueError, ["eta_min", "-1"]),
        (lambda: L.LinearLR(o, start_factor=0), ValueError,
         ["LinearLR", "start_factor", "(0, 1]", "0"]),
        (lambda: L.LinearLR(o, end_factor=1.5), ValueError, ["LinearLR", "end_factor"]),
        (lambda: L.LinearLR(o, total_iters=0), ValueError, ["LinearLR", "total_iters"]),
        (lambda: L.OneCycleLR(o, 1.0), ValueError, ["OneCycleLR", "total_steps", "epochs"]),
        (lambda: L.OneCycleLR(o, 1.0, total_steps=0), ValueError, ["total_steps", ">= 1"]),
        (lambda: L.OneCycleLR(o, 1.0, 10, pct_start=1.5), ValueError, ["pct_start", "1.5"]),
        (lambda: L.OneCycleLR(o, 1.0, 10, anneal_strategy="exp"), ValueError,
         ["anneal_strategy", "'cos' or 'linear'", "'exp'"]),
        (lambda: L.OneCycleLR(o, [1.0, 2.0, 3.0], 10), ValueError,
         ["OneCycleLR", "max_lr has 3 values", "2 param group"]),
        (lambda: L.OneCycleLR(o, -1.0, 10), ValueError, ["OneCycleLR", "max_lr", "-1.0"]),
        (lambda: L.OneCycleLR(o, 1.0, 10, div_factor=0), ValueError, ["div_factor", "> 0"]),
        (lambda: L.SequentialLR(o, [L.StepLR(o, 2)], [3]), ValueError,
         ["SequentialLR", "0 milestone", "got 1"]),
        (lambda: L.SequentialLR(o, [L.StepLR(_opt(), 2), L.StepLR(o, 2)], [3]), ValueError,
         ["SequentialLR", "schedulers[0]", "another optimizer"]),
        (lambda: L.SequentialLR(o, [L.StepLR(o, 2)] * 3, [5, 5]), ValueError,
         ["SequentialLR", "strictly increasing", "[5, 5]"]),
        (lambda: L.SequentialLR(o, [], []), ValueError, ["SequentialLR", "non-empty"]),
    ]


@pytest.mark.parametrize("i", range(len(_bad_cases())))
def test_bad_construction(i):
    make, exc, words = _bad_cases()[i]
    with pytest.raises(exc) as info:
        make()
    for w in words:
        assert w in str(info.value), (w, str(info.value))


def test_one_cycle_validation_happens_before_changing_the_optimizer():
    opt = _opt()
    before = [dict(g) for g in opt.param_groups]
    with pytest.raises(ValueError):
        L.OneCycleLR(opt, 1.0, 10, max_momentum=[0.9, 0.9, 0.9])
    assert opt.param_groups == before


# -- parity with torch ---------------------------------------------------------------------

PARITY = [
    ("StepLR", dict(step_size=3, gamma=0.5)),
    ("MultiStepLR", dict(milestones=[2, 5, 5, 11], gamma=0.3)),
    ("CosineAnnealingLR", dict(T_max=7, eta_min=0.005)),
    ("LinearLR", dict(start_factor=0.2, end_factor=0.9, total_iters=6)),
    ("OneCycleLR", dict(max_lr=[0.8, 2.0], total_steps=25)),
    ("OneCycleLR", dict(max_lr=1.0, total_steps=25, pct_start=0.4, three_phase=True,
                        anneal_strategy="linear", div_factor=10.0, final_div_factor=100.0)),
    ("OneCycleLR", dict(max_lr=1.0, epochs=5, steps_per_epoch=5, cycle_momentum=False)),
]


def _torch_pair(torch, name, kw, adam=False):
    mine = _opt("adam" if adam else "sgd")
    ps = [{"params": [torch.nn.Parameter(torch.zeros(2))], "lr": lr} for lr in BASE]
    theirs = (torch.optim.Adam(ps) if adam else torch.optim.SGD(ps, lr=1.0, momentum=0.9))
    return (mine, getattr(L, name)(mine, **kw),
            theirs, getattr(torch.optim.lr_scheduler, name)(theirs, **kw))


def _compare(torch, mine, sm, theirs, st, n):
    import warnings
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")          # torch's "step order" warning
        for _ in range(n):
            for g, h in zip(mine.param_groups, theirs.param_groups):
                assert g["lr"] == pytest.approx(h["lr"], rel=1e-12, abs=1e-15)
                if "betas" in g:
                    assert g["betas"][0] == pytest.approx(h["betas"][0], rel=1e-12)
                else:
                    assert g["momentum"] == pytest.approx(h["momentum"], rel=1e-12)
            assert sm.get_last_lr() == pytest.approx(st.get_last_lr(), rel=1e-12, abs=1e-15)
            mine.step(), theirs.step()
            sm.step(), st.step()


@pytest.mark.parametrize("name,kw", PARITY, ids=[f"{n}-{i}" for i, (n, _) in enumerate(PARITY)])
def test_matches_torch(name, kw):
    torch = pytest.importorskip("torch")
    n = 25 if name == "OneCycleLR" else 30
    _compare(torch, *_torch_pair(torch, name, kw), n)
    if name == "OneCycleLR":
        _compare(torch, *_torch_pair(torch, name, kw, adam=True), n)


def test_sequential_matches_torch():
    torch = pytest.importorskip("torch")
    groups = [{"params": [torch.nn.Parameter(torch.zeros(2))], "lr": lr} for lr in BASE]
    mine, theirs = _opt(), torch.optim.SGD(groups, lr=1.0, momentum=0.9)
    TL = torch.optim.lr_scheduler
    sm = L.SequentialLR(mine, [L.LinearLR(mine, 0.1, total_iters=4), L.StepLR(mine, 3, 0.5),
                               L.CosineAnnealingLR(mine, 8, 0.01)], milestones=[4, 10])
    st = TL.SequentialLR(theirs, [TL.LinearLR(theirs, 0.1, total_iters=4),
                                  TL.StepLR(theirs, 3, 0.5),
                                  TL.CosineAnnealingLR(theirs, 8, 0.01)], milestones=[4, 10])
    _compare(torch, mine, sm, theirs, st, 30)
