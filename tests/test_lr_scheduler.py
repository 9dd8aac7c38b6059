"""minidl.optim.lr_scheduler: every scheduler against its closed form over a full run, OneCycleLR's
phases and momentum, warm-up chaining, warm restarts (also at fractional epochs),
ReduceLROnPlateau traced by hand, state_dict round trips, bad input, torch parity."""
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


def _sgdr(t, b, T_0, T_mult=1, eta_min=0.0):
    """SGDR's lr at (possibly fractional) step t: walk the periods T_0, T_0*T_mult, ..."""
    start, T_i = 0, T_0
    while t >= start + T_i:
        start, T_i = start + T_i, T_i * T_mult
    return eta_min + (b - eta_min) * (1 + math.cos(math.pi * (t - start) / T_i)) / 2


def _mult(t, b, f):
    return b * math.prod(f(s) for s in range(1, t + 1))


def _halving(t):
    return 0.95 if t % 2 else 0.9


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
    ("LambdaLR", lambda o: L.LambdaLR(o, lambda t: 1 / (1 + t)), lambda t, b: b / (1 + t)),
    ("LambdaLR-per-group", lambda o: L.LambdaLR(o, [lambda t: 0.9 ** t, lambda t: t // 4]),
     lambda t, b: b * (0.9 ** t if b == BASE[0] else t // 4)),
    ("MultiplicativeLR", lambda o: L.MultiplicativeLR(o, _halving),
     lambda t, b: _mult(t, b, _halving)),
    ("ExponentialLR", lambda o: L.ExponentialLR(o, 0.8), lambda t, b: b * 0.8 ** t),
    ("ConstantLR-defaults", lambda o: L.ConstantLR(o), lambda t, b: b * (1 / 3 if t < 5 else 1)),
    ("ConstantLR", lambda o: L.ConstantLR(o, factor=0.5, total_iters=3),
     lambda t, b: b * (0.5 if t < 3 else 1)),
    ("PolynomialLR-defaults", lambda o: L.PolynomialLR(o), lambda t, b: b * (1 - min(t, 5) / 5)),
    ("PolynomialLR", lambda o: L.PolynomialLR(o, total_iters=8, power=2.0),
     lambda t, b: b * (1 - min(t, 8) / 8) ** 2),
    ("WarmRestarts", lambda o: L.CosineAnnealingWarmRestarts(o, T_0=4),
     lambda t, b: b * (1 + math.cos(math.pi * (t % 4) / 4)) / 2),
    ("WarmRestarts-T_mult", lambda o: L.CosineAnnealingWarmRestarts(o, 2, T_mult=3,
                                                                      eta_min=0.01),
     lambda t, b: _sgdr(t, b, 2, 3, 0.01)),
    ("Chained", lambda o: L.ChainedScheduler([L.ConstantLR(o, 0.1, total_iters=3),
                                              L.ExponentialLR(o, 0.9)]),
     lambda t, b: b * (0.1 if t < 3 else 1) * 0.9 ** t),
    ("Chained-three", lambda o: L.ChainedScheduler([L.LinearLR(o, 0.5, total_iters=4),
                                                    L.MultiplicativeLR(o, _halving),
                                                    L.PolynomialLR(o, 20, 0.5)], o),
     lambda t, b: b * (0.5 + 0.5 * min(t, 4) / 4) * _mult(t, 1.0, _halving)
     * (1 - min(t, 20) / 20) ** 0.5),
    ("Sequential-restarts", lambda o: L.SequentialLR(
        o, [L.ConstantLR(o, 0.5, total_iters=10), L.CosineAnnealingWarmRestarts(o, 5)], [4]),
     lambda t, b: b * 0.5 if t < 4 else _sgdr(t - 4, b, 5)),
    ("Sequential-exp", lambda o: L.SequentialLR(
        o, [L.ExponentialLR(o, 0.5), L.PolynomialLR(o, 10, 2.0)], [6]),
     lambda t, b: b * 0.5 ** t if t < 6 else b * (1 - min(t - 6, 10) / 10) ** 2),
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
    lambda o: L.LambdaLR(o, [lambda t: 0.9 ** t, lambda t: 1 + t % 3]),
    lambda o: L.MultiplicativeLR(o, _halving),
    lambda o: L.ExponentialLR(o, 0.9),
    lambda o: L.ConstantLR(o, 0.2, total_iters=12),
    lambda o: L.PolynomialLR(o, 15, 1.5),
    lambda o: L.CosineAnnealingWarmRestarts(o, 3, 2, 0.001),
    lambda o: L.ChainedScheduler([L.ConstantLR(o, 0.5, total_iters=11),
                                  L.CosineAnnealingWarmRestarts(o, 4)]),
]
ROUND_TRIP_IDS = ["StepLR", "MultiStepLR", "Cosine", "LinearLR", "OneCycleLR", "SequentialLR",
                  "LambdaLR", "MultiplicativeLR", "ExponentialLR", "ConstantLR", "PolynomialLR",
                  "WarmRestarts", "Chained"]


@pytest.mark.parametrize("make", ROUND_TRIP, ids=ROUND_TRIP_IDS)
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
    sched = ROUND_TRIP[5](opt)
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
    seq = ROUND_TRIP[5](_opt())
    with pytest.raises(ValueError, match="SequentialLR.load_state_dict: expected .*2"):
        seq.load_state_dict(step.state_dict())


# -- bad input ----------------------------------------------------------------------------

def _bad_cases():
    o = _opt()
    return [
        (lambda: L.StepLR("sgd", 3), TypeError, ["StepLR", "optimizer", "str"]),
        (lambda: L.StepLR(o, 0), ValueError, ["StepLR", "'step_size'", "positive int", "0"]),
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
        (lambda: L.OneCycleLR(o, 1.0, total_steps=0), ValueError,
         ["total_steps", "positive int"]),
        (lambda: L.OneCycleLR(o, 1.0, 10, pct_start=1.5), ValueError, ["pct_start", "1.5"]),
        (lambda: L.OneCycleLR(o, 1.0, 10, anneal_strategy="exp"), ValueError,
         ["anneal_strategy", "'cos' or 'linear'", "'exp'"]),
        (lambda: L.OneCycleLR(o, [1.0, 2.0, 3.0], 10), ValueError,
         ["OneCycleLR", "max_lr has 3 values", "2 param group"]),
        (lambda: L.OneCycleLR(o, -1.0, 10), ValueError, ["OneCycleLR", "max_lr", "-1.0"]),
        (lambda: L.OneCycleLR(o, 1.0, 10, div_factor=0), ValueError,
         ["div_factor", "positive number"]),
        (lambda: L.SequentialLR(o, [L.StepLR(o, 2)], [3]), ValueError,
         ["SequentialLR", "0 milestone", "got 1"]),
        (lambda: L.SequentialLR(o, [L.StepLR(_opt(), 2), L.StepLR(o, 2)], [3]), ValueError,
         ["SequentialLR", "schedulers[0]", "another optimizer"]),
        (lambda: L.SequentialLR(o, [L.StepLR(o, 2)] * 3, [5, 5]), ValueError,
         ["SequentialLR", "strictly increasing", "[5, 5]"]),
        (lambda: L.SequentialLR(o, [], []), ValueError, ["SequentialLR", "non-empty"]),
        (lambda: L.SequentialLR(o, [L.ReduceLROnPlateau(o)], []), ValueError,
         ["SequentialLR", "schedulers[0]", "ReduceLROnPlateau", "step(metrics)"]),
        (lambda: L.SequentialLR(o, [L.ChainedScheduler([L.StepLR(o, 2)])], []), ValueError,
         ["SequentialLR", "schedulers[0]", "ChainedScheduler", "not supported"]),
        (lambda: L.LambdaLR(o, 0.5), TypeError, ["LambdaLR", "lr_lambda", "function", "float"]),
        (lambda: L.LambdaLR(o, [abs]), ValueError,
         ["LambdaLR", "lr_lambda has 1 functions", "2 param group"]),
        (lambda: L.MultiplicativeLR(o, [abs, "f"]), TypeError,
         ["MultiplicativeLR", "lr_lambda", "str", "index 1"]),
        (lambda: L.LambdaLR(o, lambda t: t - 1), ValueError,
         ["LambdaLR", "'lr_lambda[0]' (its factor at step 0)", "non-negative number", "-1"]),
        (lambda: L.LambdaLR(o, lambda t: "x"), TypeError,
         ["LambdaLR", "lr_lambda[0]", "number", "str 'x'"]),
        (lambda: L.ExponentialLR(o, -0.5), ValueError, ["ExponentialLR", "gamma", "-0.5"]),
        (lambda: L.ExponentialLR(o, None), TypeError, ["ExponentialLR", "gamma", "NoneType"]),
        (lambda: L.ConstantLR(o, factor=0), ValueError, ["ConstantLR", "factor", "(0, 1]", "0"]),
        (lambda: L.ConstantLR(o, factor=1.5), ValueError, ["ConstantLR", "factor", "1.5"]),
        (lambda: L.ConstantLR(o, total_iters=0), ValueError, ["ConstantLR", "total_iters"]),
        (lambda: L.PolynomialLR(o, total_iters=2.0), TypeError, ["PolynomialLR", "total_iters",
                                                                 "int", "2.0"]),
        (lambda: L.PolynomialLR(o, power=-1), ValueError,
         ["PolynomialLR", "power", "non-negative number"]),
        (lambda: L.CosineAnnealingWarmRestarts(o, 0), ValueError,
         ["CosineAnnealingWarmRestarts", "T_0", "positive int", "0"]),
        (lambda: L.CosineAnnealingWarmRestarts(o, 5, T_mult=1.5), TypeError,
         ["CosineAnnealingWarmRestarts", "T_mult", "int", "1.5"]),
        (lambda: L.CosineAnnealingWarmRestarts(o, 5, eta_min=-0.1), ValueError,
         ["CosineAnnealingWarmRestarts", "eta_min", "-0.1"]),
        (lambda: L.CosineAnnealingWarmRestarts(o, 5).step(-1), ValueError,
         ["CosineAnnealingWarmRestarts.step", "epoch", "non-negative int", "-1"]),
        (lambda: L.CosineAnnealingWarmRestarts(o, 5, 2).step(math.inf), ValueError,
         ["CosineAnnealingWarmRestarts.step", "epoch", "finite", "inf"]),
        (lambda: L.CosineAnnealingWarmRestarts(o, 5).step("3"), TypeError,
         ["CosineAnnealingWarmRestarts.step", "epoch", "number", "str '3'"]),
        (lambda: L.ChainedScheduler([]), ValueError, ["ChainedScheduler", "non-empty"]),
        (lambda: L.ChainedScheduler([L.StepLR(o, 2), "x"]), TypeError,
         ["ChainedScheduler", "schedulers[1]", "str"]),
        (lambda: L.ChainedScheduler([L.StepLR(o, 2), L.StepLR(_opt(), 2)]), ValueError,
         ["ChainedScheduler", "schedulers[1]", "another optimizer"]),
        (lambda: L.ChainedScheduler([L.StepLR(o, 2), L.ReduceLROnPlateau(o)]), ValueError,
         ["ChainedScheduler", "schedulers[1]", "ReduceLROnPlateau"]),
        (lambda: L.ChainedScheduler([L.StepLR(o, 2)], optimizer="sgd"), TypeError,
         ["ChainedScheduler", "optimizer", "str"]),
        (lambda: L.ReduceLROnPlateau("sgd"), TypeError, ["ReduceLROnPlateau", "optimizer"]),
        (lambda: L.ReduceLROnPlateau(o, mode="avg"), ValueError,
         ["ReduceLROnPlateau", "mode", "'min' or 'max'", "'avg'"]),
        (lambda: L.ReduceLROnPlateau(o, threshold_mode="rel_"), ValueError,
         ["ReduceLROnPlateau", "threshold_mode", "'rel' or 'abs'", "'rel_'"]),
        (lambda: L.ReduceLROnPlateau(o, factor=1.0), ValueError,
         ["ReduceLROnPlateau", "factor", "[0, 1)", "1.0"]),
        (lambda: L.ReduceLROnPlateau(o, patience=-1), ValueError,
         ["ReduceLROnPlateau", "patience", "non-negative int", "-1"]),
        (lambda: L.ReduceLROnPlateau(o, cooldown=1.5), TypeError,
         ["ReduceLROnPlateau", "cooldown", "int", "1.5"]),
        (lambda: L.ReduceLROnPlateau(o, threshold=-0.1), ValueError,
         ["ReduceLROnPlateau", "threshold", "-0.1"]),
        (lambda: L.ReduceLROnPlateau(o, threshold=1.0), ValueError,
         ["ReduceLROnPlateau", "threshold", "< 1", "mode='min'", "1.0"]),
        (lambda: L.ReduceLROnPlateau(o, min_lr=[0.1]), ValueError,
         ["ReduceLROnPlateau", "min_lr has 1 values", "2 param group"]),
        (lambda: L.ReduceLROnPlateau(o, min_lr=-1e-3), ValueError,
         ["ReduceLROnPlateau", "min_lr", "-0.001"]),
        (lambda: L.ReduceLROnPlateau(o, eps=-1), ValueError, ["ReduceLROnPlateau", "eps"]),
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
    ("LambdaLR", dict(lr_lambda=lambda t: 0.97 ** t * (1 + t % 4))),
    ("LambdaLR", dict(lr_lambda=[lambda t: 1 / (t + 1), lambda t: 0.5 if t > 3 else 1.0])),
    ("MultiplicativeLR", dict(lr_lambda=_halving)),
    ("MultiplicativeLR", dict(lr_lambda=[_halving, lambda t: 1.05])),
    ("ExponentialLR", dict(gamma=0.85)),
    ("ConstantLR", dict()),
    ("ConstantLR", dict(factor=0.3, total_iters=7)),
    ("PolynomialLR", dict()),
    ("PolynomialLR", dict(total_iters=11, power=0.7)),
    ("CosineAnnealingWarmRestarts", dict(T_0=4)),
    ("CosineAnnealingWarmRestarts", dict(T_0=3, T_mult=2, eta_min=0.01)),
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


# -- CosineAnnealingWarmRestarts at fractional epochs -----------------------------------------

EPOCHS = [0.5, 1.25, 2.9, 3.0, 7.5, 8.0, 20.3, 2.0, 0.1, 44.99, 13.7]


def test_warm_restarts_step_to_fractional_epochs():
    opt = _opt()
    sched = L.CosineAnnealingWarmRestarts(opt, T_0=2, T_mult=3, eta_min=0.01)
    for e in EPOCHS:
        sched.step(e)
        want = [_sgdr(e, b, 2, 3, 0.01) for b in BASE]
        np.testing.assert_allclose(sched.get_last_lr(), want, rtol=1e-12)
        assert sched.last_epoch == math.floor(e)
        sched.step()                     # a plain step after a jump goes on by one
        np.testing.assert_allclose([g["lr"] for g in opt.param_groups],
                                   [_sgdr(e + 1, b, 2, 3, 0.01) for b in BASE], rtol=1e-12)


def test_warm_restarts_jump_lands_exactly_on_a_restart():
    # periods 1, 3, 9, 27, 81: restarts at 0, 1, 4, 13, 40, 121. PyTorch finds the period with
    # a float logarithm (log base 3 of 243 rounds to 4.999...), which puts step 121 at the end
    # of the period before; minidl walks the periods and restarts there
    opt = _opt()
    sched = L.CosineAnnealingWarmRestarts(opt, T_0=1, T_mult=3)
    for e in (1, 4, 13, 40, 121):
        sched.step(e)
        assert sched.get_last_lr() == list(BASE) and sched.T_cur == 0
    sched.step(120)
    assert sched.T_i == 81 and sched.T_cur == 80


def test_warm_restarts_fractional_epochs_match_torch():
    torch = pytest.importorskip("torch")
    mine = _opt()
    ps = [{"params": [torch.nn.Parameter(torch.zeros(2))], "lr": lr} for lr in BASE]
    theirs = torch.optim.SGD(ps, lr=1.0, momentum=0.9)
    sm = L.CosineAnnealingWarmRestarts(mine, T_0=3, T_mult=2, eta_min=0.02)
    st = torch.optim.lr_scheduler.CosineAnnealingWarmRestarts(theirs, T_0=3, T_mult=2,
                                                              eta_min=0.02)
    import warnings
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for e in EPOCHS + [None, None, 6.0, None]:
            sm.step(e)
            st.step(e)
            assert sm.get_last_lr() == pytest.approx(st.get_last_lr(), rel=1e-12)
            assert sm.last_epoch == st.last_epoch


# -- ChainedScheduler ---------------------------------------------------------------------

@pytest.mark.parametrize("which", [0, 1])
def test_chained_matches_torch(which):
    torch = pytest.importorskip("torch")
    mine = _opt()
    ps = [{"params": [torch.nn.Parameter(torch.zeros(2))], "lr": lr} for lr in BASE]
    theirs = torch.optim.SGD(ps, lr=1.0, momentum=0.9)

    def build(mod, o):
        if which == 0:
            return [mod.ConstantLR(o, factor=0.1, total_iters=2), mod.ExponentialLR(o, 0.9)]
        return [mod.LinearLR(o, 0.2, total_iters=5), mod.MultiStepLR(o, [4, 9], 0.5),
                mod.PolynomialLR(o, total_iters=14, power=1.5)]

    sm = L.ChainedScheduler(build(L, mine), mine)
    st = torch.optim.lr_scheduler.ChainedScheduler(build(torch.optim.lr_scheduler, theirs),
                                                   theirs)
    _compare(torch, mine, sm, theirs, st, 20)


# -- LambdaLR / MultiplicativeLR ----------------------------------------------------------

def test_lambdas_are_not_saved_and_a_bad_factor_changes_nothing():
    opt = _opt()
    sched = L.MultiplicativeLR(opt, lambda t: 0.5 if t < 3 else -1.0)
    sched.step(), sched.step()
    sd = sched.state_dict()
    assert sd["lr_lambdas"] == [None, None] and sd["last_epoch"] == 2
    with pytest.raises(ValueError, match=r"MultiplicativeLR: 'lr_lambda\[0\]' \(its factor at "
                                         r"step 3\) must be a non-negative number, got -1.0"):
        sched.step()
    assert sched.last_epoch == 2 and sched.get_last_lr() == [0.1 / 4, 0.4 / 4]
    other = L.MultiplicativeLR(_opt(), lambda t: 0.1)
    other.load_state_dict(sd)
    assert other.last_epoch == 2 and other.state_dict() == sd
    sd["lr_lambdas"] = [{"a": 1}, None]
    with pytest.raises(ValueError, match="MultiplicativeLR.load_state_dict: 'lr_lambdas' "
                                         "must be a list of None"):
        other.load_state_dict(sd)


# -- ReduceLROnPlateau --------------------------------------------------------------------

def test_plateau_traced_by_hand(device):
    opt = _opt(device=device)
    sched = L.ReduceLROnPlateau(opt, factor=0.5, patience=2, threshold=0.1,
                                threshold_mode="abs", cooldown=1, min_lr=[0.02, 0.3])
    assert sched.get_last_lr() == list(BASE)
    metrics = [10, minidl.tensor(9.95, device=device), np.float64(9.0),
               minidl.tensor([9.0], device=device), np.array(9.0)] + [9.0] * 9 + [1.0]
    # 10: best; 9.95: not 0.1 better (bad 1); 9: best; then bad 1, 2, 3 > patience at step 6:
    # halve (group 1 stops at min_lr 0.3), cooldown eats step 7's bad step; bad 1, 2, 3 at
    # steps 8-10: halve group 0 (group 1 would move by 0, under eps: unchanged); step 11 in
    # cooldown; bad 1, 2, 3 at 12-14: group 0 to max(0.0125, 0.02); step 15 improves
    want0 = [0.1] * 5 + [0.05] * 4 + [0.025] * 4 + [0.02] * 2
    want1 = [0.4] * 5 + [0.3] * 10
    got = []
    for m in metrics:
        sched.step(m)
        got.append(sched.get_last_lr())
        assert got[-1] == [g["lr"] for g in opt.param_groups]
    np.testing.assert_allclose(np.array(got), np.array([want0, want1]).T, rtol=1e-15)
    assert sched.best == 1.0 and sched.num_bad_epochs == 0 and sched.last_epoch == 15


def _plateau_ref(metrics, lr, mode, factor, patience, threshold, threshold_mode, cooldown,
                 min_lr):
    """The lr after each metric, from the documented rule (one param group, eps = 0)."""
    sign = 1.0 if mode == "min" else -1.0
    best, bad, cool, out = None, 0, 0, []
    for m in metrics:
        if threshold_mode == "rel":
            better = best is None or sign * m < sign * best * (1 - sign * threshold)
        else:
            better = best is None or sign * m < sign * best - threshold
        if better:
            best, bad = m, 0
        else:
            bad += 1
        if cool > 0:
            cool, bad = cool - 1, 0
        if bad > patience:
            lr, cool, bad = max(lr * factor, min_lr), cooldown, 0
        out.append(lr)
    return out


PLATEAU = [
    dict(mode="min", factor=0.5, patience=1, threshold=0.05, threshold_mode="rel",
         cooldown=0, min_lr=0.0),
    dict(mode="max", factor=0.3, patience=2, threshold=0.02, threshold_mode="rel",
         cooldown=2, min_lr=1e-3),
    dict(mode="min", factor=0.1, patience=0, threshold=0.1, threshold_mode="abs",
         cooldown=1, min_lr=1e-4),
    dict(mode="max", factor=0.7, patience=3, threshold=0.0, threshold_mode="abs",
         cooldown=0, min_lr=0.0),
]


def _metrics(seed=3, n=60):
    rng = np.random.default_rng(seed)      # a noisy curve that flattens out, with repeats
    m = 5 * np.exp(-np.arange(n) / 8) + 0.3 * rng.standard_normal(n)
    m[20:26] = m[19]
    return m.tolist()


@pytest.mark.parametrize("kw", PLATEAU, ids=[f"{k['mode']}-{k['threshold_mode']}"
                                             for k in PLATEAU])
def test_plateau_matches_documented_rule(kw):
    metrics = _metrics() if kw["mode"] == "min" else [-m for m in _metrics()]
    opt = optim.SGD([nn.Parameter(minidl.zeros(2))], lr=0.1)
    sched = L.ReduceLROnPlateau(opt, eps=0.0, **kw)
    got = []
    for m in metrics:
        sched.step(m)
        got.append(sched.get_last_lr()[0])
    want = _plateau_ref(metrics, 0.1, **kw)
    np.testing.assert_allclose(got, want, rtol=1e-15)
    assert len(set(want)) >= 3                     # the run reduced the lr more than once


@pytest.mark.parametrize("kw", PLATEAU, ids=[f"{k['mode']}-{k['threshold_mode']}"
                                             for k in PLATEAU])
def test_plateau_matches_torch(kw):
    torch = pytest.importorskip("torch")
    metrics = _metrics(seed=5) if kw["mode"] == "min" else [-m for m in _metrics(seed=5)]
    mine = _opt()
    ps = [{"params": [torch.nn.Parameter(torch.zeros(2))], "lr": lr} for lr in BASE]
    theirs = torch.optim.SGD(ps, lr=1.0, momentum=0.9)
    sm = L.ReduceLROnPlateau(mine, **kw)
    st = torch.optim.lr_scheduler.ReduceLROnPlateau(theirs, **kw)
    for m in metrics:
        sm.step(minidl.tensor(m))
        st.step(torch.tensor(m))
        assert sm.get_last_lr() == pytest.approx(st.get_last_lr(), rel=1e-15)
        for key in ("best", "num_bad_epochs", "cooldown_counter", "last_epoch"):
            assert getattr(sm, key) == getattr(st, key), key


def test_plateau_state_dict_round_trip_through_a_file(device, tmp_path):
    from minidl.serialization import load, save
    kw = dict(factor=0.5, patience=2, cooldown=1, min_lr=[1e-3, 2e-3])
    metrics = _metrics(seed=7, n=40)
    opt = _opt(device=device)
    sched = L.ReduceLROnPlateau(opt, **kw)
    lrs = []
    for i, m in enumerate(metrics):
        if i == 17:
            save({"opt": opt.state_dict(), "sched": sched.state_dict()}, tmp_path / "ck.npz")
        sched.step(m)
        lrs.append(sched.get_last_lr())
    opt2 = _opt(device=device)
    sched2 = L.ReduceLROnPlateau(opt2, **kw)
    ck = load(tmp_path / "ck.npz")
    opt2.load_state_dict(ck["opt"])
    sched2.load_state_dict(ck["sched"])
    assert sched2.mode_worse == math.inf
    for i, m in enumerate(metrics[17:], 17):
        sched2.step(m)
        assert sched2.get_last_lr() == lrs[i]
    assert sched2.state_dict() == sched.state_dict()
    assert len({tuple(x) for x in lrs[17:]}) >= 2        # it reduced after the checkpoint


def test_plateau_bad_metrics_and_state_dicts():
    opt = _opt()
    sched = L.ReduceLROnPlateau(opt)
    with pytest.raises(ValueError, match=r"ReduceLROnPlateau.step: metrics must be a number "
                                         r"or a one-element Tensor .*shape \(2,\)"):
        sched.step(minidl.tensor([1.0, 2.0]))
    with pytest.raises(TypeError, match="ReduceLROnPlateau.step: metrics must be a real "
                                        "number.*str 'low'"):
        sched.step("low")
    with pytest.raises(TypeError, match="ReduceLROnPlateau.step: metrics"):
        sched.step(None)
    assert sched.last_epoch == 0                 # nothing counted
    sched.step(float("nan"))                     # as PyTorch: NaN is no improvement
    assert sched.num_bad_epochs == 1 and sched.best == math.inf
    sd = sched.state_dict()
    sd["mode"] = "avg"
    with pytest.raises(ValueError, match="ReduceLROnPlateau.load_state_dict: mode must be"):
        L.ReduceLROnPlateau(_opt()).load_state_dict(sd)
    with pytest.raises(ValueError, match="ReduceLROnPlateau.load_state_dict: .*missing"):
        L.ReduceLROnPlateau(_opt()).load_state_dict(L.StepLR(_opt(), 2).state_dict())
    with pytest.raises(NotImplementedError, match="step\\(metrics\\)"):
        sched.get_lr()


def test_sequential_of_new_schedulers_matches_torch():
    torch = pytest.importorskip("torch")
    groups = [{"params": [torch.nn.Parameter(torch.zeros(2))], "lr": lr} for lr in BASE]
    mine, theirs = _opt(), torch.optim.SGD(groups, lr=1.0, momentum=0.9)

    def build(mod, o):
        return mod.SequentialLR(o, [mod.ConstantLR(o, 0.25, total_iters=6),
                                    mod.CosineAnnealingWarmRestarts(o, 3, T_mult=2),
                                    mod.ExponentialLR(o, 0.8)], milestones=[4, 14])

    _compare(torch, mine, build(L, mine), theirs, build(torch.optim.lr_scheduler, theirs), 25)
