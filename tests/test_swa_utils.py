"""minidl.optim.swa_utils: SWA/EMA averages against hand-computed formulas, buffers, update_bn
statistics, SWALR's lrs, state dict round trips, bad input, GPU (CUDA-graph capture without
host reads) and parity with torch.optim.swa_utils."""
import math
import warnings

import numpy as np
import pytest

import minidl
import minidl.nn as nn
from minidl import backend
from minidl.optim import SGD
from minidl.optim.swa_utils import (SWALR, AveragedModel, get_ema_avg_fn, get_ema_multi_avg_fn,
                                    get_swa_avg_fn, get_swa_multi_avg_fn, update_bn)
from tests.helpers import host


def _net(dtype=np.float32):
    """Linear -> BatchNorm1d -> ReLU -> Linear: parameters, float buffers and an int buffer."""
    return nn.Sequential(nn.Linear(3, 4), nn.BatchNorm1d(4), nn.ReLU(),
                         nn.Linear(4, 2)).to(dtype=dtype)


def _randomize(model, rng, buffers=True):
    """New random values for every parameter (and buffer) of ``model``, in place; returns
    {name: float64/int64 host copy} of what was set."""
    values = {}
    named = list(model.named_parameters()) + (list(model.named_buffers()) if buffers else [])
    for name, t in named:
        if t.dtype.kind == "f":
            v = rng.standard_normal(t.shape)
            if name.endswith("running_var"):
                v = rng.uniform(0.5, 2.0, t.shape)
        else:
            v = rng.integers(0, 100, t.shape)
        t.data[...] = backend.to_device(v.astype(t.dtype), t.device)
        values[name] = v.astype(t.dtype).astype(np.float64 if t.dtype.kind == "f" else np.int64)
    return values


def _state(module):
    return {k: host(v) for k, v in module.state_dict().items()}


TOL = {np.float32: dict(rtol=1e-6, atol=1e-6), np.float64: dict(rtol=1e-12, atol=1e-12)}
KINDS = {"swa": {}, "swa_single": dict(avg_fn=get_swa_avg_fn()),
         "swa_multi": dict(multi_avg_fn=get_swa_multi_avg_fn()),
         "ema_single": dict(avg_fn=get_ema_avg_fn(0.7)),
         "ema_multi": dict(multi_avg_fn=get_ema_multi_avg_fn(0.7))}


# -- the averages against their formulas ------------------------------------------------------
@pytest.mark.parametrize("kind", list(KINDS))
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_average_matches_hand_formula(device, rng, kind, dtype):
    model = _net(dtype).to(device)
    avg = AveragedModel(model, **KINDS[kind])
    arrays = [p.data for p in avg.parameters()]
    expected = None
    for k in range(5):
        snap = _randomize(model, rng, buffers=False)
        avg.update_parameters(model)
        if k == 0:
            expected = dict(snap)                        # the first update copies
        elif kind.startswith("swa"):
            expected = {n: e + (snap[n] - e) / (k + 1) for n, e in expected.items()}
        else:
            expected = {n: 0.7 * e + 0.3 * snap[n] for n, e in expected.items()}
        for name, p in avg.module.named_parameters():
            assert p.dtype == dtype and p.device == model[0].weight.device
            np.testing.assert_allclose(host(p), expected[name], **TOL[dtype])
        assert host(avg.n_averaged).shape == () and int(host(avg.n_averaged)) == k + 1
    assert [p.data for p in avg.parameters()] == arrays  # in place: the same arrays
    assert all(p.grad_fn is None and p.grad is None for p in avg.parameters())


def test_swa_is_the_mean_of_all_snapshots(rng):
    model = _net(np.float64)
    avg = AveragedModel(model)
    snaps = []
    for _ in range(6):
        snaps.append(_randomize(model, rng, buffers=False))
        avg.update_parameters(model)
    for name, p in avg.module.named_parameters():
        np.testing.assert_allclose(host(p), np.mean([s[name] for s in snaps], axis=0),
                                   rtol=1e-12, atol=1e-12)


def test_ema_decay_edges_copy_or_keep(rng):
    model = _net(np.float32)
    keep = AveragedModel(model, multi_avg_fn=get_ema_multi_avg_fn(1.0))
    follow = [AveragedModel(model, avg_fn=get_ema_avg_fn(0.0)),
              AveragedModel(model, multi_avg_fn=get_ema_multi_avg_fn(0.0))]
    first = _randomize(model, rng)
    for avg in [keep] + follow:
        avg.update_parameters(model)
    _randomize(model, rng)
    for avg in [keep] + follow:
        avg.update_parameters(model)
    _randomize(model, rng)
    model[0].weight.data[0] *= 1e8                    # exact even next to much larger values
    last = {name: host(p).copy() for name, p in model.named_parameters()}
    for avg in [keep] + follow:
        avg.update_parameters(model)
    for name, p in keep.module.named_parameters():
        np.testing.assert_array_equal(host(p), first[name])
    for avg in follow:
        for name, p in avg.module.named_parameters():
            np.testing.assert_array_equal(host(p), last[name])


def test_avg_fns_work_on_tensors_and_count():
    a = minidl.tensor(np.array([1.0, 2.0], np.float32))
    c = minidl.tensor(np.array([3.0, 6.0], np.float32))
    out = get_ema_avg_fn(0.75)(a, c, 5)
    assert out.dtype == np.float32
    np.testing.assert_array_equal(host(out), [1.5, 3.0])
    out = get_swa_avg_fn()(a, c, minidl.Tensor(np.array(3, np.int64)))
    assert out.dtype == np.float32
    np.testing.assert_array_equal(host(out), [1.5, 3.0])
    swa = get_swa_multi_avg_fn()
    swa([a], [c], 1)
    np.testing.assert_array_equal(host(a), [2.0, 4.0])
    swa([a], [c], minidl.Tensor(np.array(1, np.int64)))
    np.testing.assert_array_equal(host(a), [2.5, 5.0])


def test_custom_avg_fn_gets_tensors_and_the_count():
    seen = []

    def half(averaged, current, n):
        seen.append((type(averaged), type(current), int(n.item()), n.dtype))
        return averaged * 0.5 + current * 0.5         # Tensor arithmetic, under no_grad

    model = nn.Linear(2, 1)
    avg = AveragedModel(model, avg_fn=half)
    w0 = host(model.weight).copy()
    for _ in range(3):
        avg.update_parameters(model)
        with minidl.no_grad():
            model.weight.data[...] += 1.0
    assert [s[2] for s in seen] == [1, 1, 2, 2]         # weight and bias, on updates 2 and 3
    assert all(s[0] is minidl.Tensor and s[1] is minidl.Tensor for s in seen)
    assert all(s[3] == np.int64 for s in seen)
    np.testing.assert_allclose(host(avg.module.weight), w0 + 1.25, rtol=1e-6)  # w0, +.5, +1.25


def test_multi_avg_fn_is_called_per_dtype():
    calls = []

    def record(averaged, current, n):
        calls.append((len(averaged), str(averaged[0].dtype), int(n.item())))
        get_swa_multi_avg_fn()(averaged, current, n)

    model = _net()
    avg = AveragedModel(model, multi_avg_fn=record, use_buffers=True)
    avg.update_parameters(model)
    avg.update_parameters(model)
    # 6 float32 parameters + 2 running stats; num_batches_tracked alone
    assert calls == [(8, "float32", 1), (1, "int64", 1)]


def test_forward_runs_the_average(rng):
    model = _net()
    avg = AveragedModel(model)
    _randomize(model, rng)
    avg.update_parameters(model)
    model.eval()
    avg.eval()
    x = minidl.randn(5, 3)
    np.testing.assert_array_equal(host(avg(x)), host(model(x)))
    np.testing.assert_array_equal(host(avg(x)), host(avg.module(x)))


# -- buffers -----------------------------------------------------------------------------------
def test_use_buffers_false_copies_buffers_as_torch(device, rng):
    model = _net().to(device)
    avg = AveragedModel(model)
    for _ in range(3):
        snap = _randomize(model, rng)
        avg.update_parameters(model)
    for name, b in avg.module.named_buffers():       # the model's latest, not an average
        np.testing.assert_array_equal(host(b), snap[name].astype(b.dtype))


def test_use_buffers_true_averages_buffers(device, rng):
    model = _net().to(device)
    avg = AveragedModel(model, use_buffers=True)
    snaps = []
    for _ in range(4):
        snaps.append(_randomize(model, rng))
        avg.update_parameters(model)
    bufs = dict(avg.module.named_buffers())
    for name in ("1.running_mean", "1.running_var"):
        np.testing.assert_allclose(host(bufs[name]), np.mean([s[name] for s in snaps], axis=0),
                                   rtol=1e-6, atol=1e-6)
    count = snaps[0]["1.num_batches_tracked"]        # in floating point, truncated (torch)
    for k, s in enumerate(snaps[1:], 1):
        count = np.trunc(count + (s["1.num_batches_tracked"] - count) / (k + 1))
    assert bufs["1.num_batches_tracked"].dtype == np.int64
    assert int(host(bufs["1.num_batches_tracked"])) == int(count)
    assert "n_averaged" not in dict(avg.module.named_buffers())


def test_integer_buffer_ema_truncates():
    bn = nn.BatchNorm1d(2)
    avg = AveragedModel(bn, multi_avg_fn=get_ema_multi_avg_fn(0.5), use_buffers=True)
    for count in (3, 6):
        bn.num_batches_tracked.data[...] = count
        avg.update_parameters(bn)
    assert int(host(avg.module.num_batches_tracked)) == 4        # trunc(0.5 * 3 + 0.5 * 6)


# -- update_bn ---------------------------------------------------------------------------------
def _batches(rng, shape, n, dtype, device, wrap):
    xs = [rng.standard_normal(shape).astype(dtype) * 3 + 1 for _ in range(n)]
    ts = [minidl.tensor(x, device=device) for x in xs]
    return xs, [wrap(t) for t in ts]


@pytest.mark.parametrize("wrap", [lambda t: t, lambda t: (t, 0), lambda t: [t]],
                         ids=["tensor", "tuple", "list"])
def test_update_bn_gives_cumulative_batch_statistics(device, rng, wrap):
    model = nn.Sequential(nn.Linear(5, 4), nn.BatchNorm1d(4, momentum=0.3)).to(device)
    model = model.to(dtype=np.float64)
    model.eval()
    xs, loader = _batches(rng, (8, 5), 4, np.float64, device, wrap)
    update_bn(loader, model)
    W, b = host(model[0].weight), host(model[0].bias)
    hs = [x @ W.T + b for x in xs]
    bn = model[1]
    # equal batch sizes: the mean of the batch means is the mean over all the data
    np.testing.assert_allclose(host(bn.running_mean), np.concatenate(hs).mean(0),
                               rtol=1e-12, atol=1e-12)
    # the running variance is the mean of the batches' unbiased variances
    np.testing.assert_allclose(host(bn.running_var),
                               np.mean([h.var(0, ddof=1) for h in hs], axis=0),
                               rtol=1e-12, atol=1e-12)
    assert int(host(bn.num_batches_tracked)) == 4
    assert bn.momentum == 0.3
    assert not model.training and not bn.training


def test_update_bn_one_batch_is_the_data_statistics(device, rng):
    bn = nn.BatchNorm2d(3).to(device).to(dtype=np.float64)
    xs, loader = _batches(rng, (6, 3, 4, 5), 1, np.float64, device, lambda t: t)
    bn.running_mean.data[...] = 7.0                  # reset first: no trace of the old stats
    update_bn(loader, bn)
    flat = xs[0].transpose(1, 0, 2, 3).reshape(3, -1)           # (C, N*H*W)
    np.testing.assert_allclose(host(bn.running_mean), flat.mean(1), rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(host(bn.running_var), flat.var(1, ddof=1), rtol=1e-12)
    assert bn.training and bn.momentum == 0.1


def test_update_bn_restores_modes_and_records_no_graph(rng):
    model = nn.Sequential(nn.Linear(3, 4), nn.BatchNorm1d(4), nn.Linear(4, 4),
                          nn.BatchNorm1d(4, momentum=None))
    model.train()
    model[2].eval()                                   # a mixed tree stays mixed
    outputs = []
    model[1].register_forward_hook(lambda m, i, o: outputs.append(o))
    _, loader = _batches(rng, (4, 3), 2, np.float32, "cpu", lambda t: t)
    update_bn(loader, model, device="cpu")
    assert [m.training for m in model.modules()] == [True, True, True, False, True]
    assert model[1].momentum == 0.1 and model[3].momentum is None
    assert len(outputs) == 2 and all(o.grad_fn is None for o in outputs)
    assert all(p.grad is None for p in model.parameters())


def test_update_bn_without_batchnorm_does_nothing():
    class Loader:
        iterated = False

        def __iter__(self):
            Loader.iterated = True
            return iter([])

    model = nn.Linear(2, 2)
    before = _state(model)
    update_bn(Loader(), model)
    assert not Loader.iterated
    assert all(np.array_equal(v, _state(model)[k]) for k, v in before.items())


def test_update_bn_on_averaged_model(rng):
    model = _net(np.float64)
    swa = AveragedModel(model)
    swa.update_parameters(model)
    xs, loader = _batches(rng, (8, 3), 3, np.float64, "cpu", lambda t: (t, None))
    update_bn(loader, swa)
    W, b = host(swa.module[0].weight), host(swa.module[0].bias)
    np.testing.assert_allclose(host(swa.module[1].running_mean),
                               np.concatenate([x @ W.T + b for x in xs]).mean(0), rtol=1e-12)


# -- SWALR -------------------------------------------------------------------------------------
def _opt(lrs=(1.0,)):
    return SGD([{"params": [nn.Parameter(np.zeros(2, np.float32))], "lr": lr} for lr in lrs])


@pytest.mark.parametrize("strategy", ["cos", "linear"])
def test_swalr_anneals_then_holds(strategy):
    opt = _opt((1.0, 0.5))
    sched = SWALR(opt, swa_lr=[0.1, 0.2], anneal_epochs=4, anneal_strategy=strategy)
    f = (lambda s: (1 - math.cos(math.pi * s)) / 2) if strategy == "cos" else (lambda s: s)
    for t in range(9):
        alpha = f(min(1.0, t / 4))
        want = [alpha * 0.1 + (1 - alpha) * 1.0, alpha * 0.2 + (1 - alpha) * 0.5]
        np.testing.assert_allclose(sched.get_last_lr(), want, rtol=1e-12)
        np.testing.assert_allclose([g["lr"] for g in opt.param_groups], want, rtol=1e-12)
        sched.step()
    assert [g["swa_lr"] for g in opt.param_groups] == [0.1, 0.2]


def test_swalr_zero_anneal_jumps_and_state_dict_resumes():
    opt = _opt()
    sched = SWALR(opt, swa_lr=0.05, anneal_epochs=0)
    assert sched.get_last_lr() == [0.05]
    opt2 = _opt((0.8,))
    a = SWALR(opt2, swa_lr=0.1, anneal_epochs=5, anneal_strategy="linear")
    a.step()
    a.step()
    opt3 = _opt((0.8,))
    opt3.load_state_dict(opt2.state_dict())
    b = SWALR(opt3, swa_lr=0.1, anneal_epochs=5, anneal_strategy="linear")
    b.load_state_dict(a.state_dict())
    opt3.param_groups[0]["lr"] = opt2.param_groups[0]["lr"]
    for _ in range(5):
        a.step()
        b.step()
        assert a.get_last_lr() == b.get_last_lr()
    assert a.get_last_lr() == [pytest.approx(0.1, rel=1e-12)]


# -- state dicts -------------------------------------------------------------------------------
def test_state_dict_round_trip(device, rng, tmp_path):
    model = _net().to(device)
    avg = AveragedModel(model, use_buffers=True)
    for _ in range(3):
        _randomize(model, rng)
        avg.update_parameters(model)
    path = tmp_path / "swa.npz"
    minidl.save(avg.state_dict(), str(path))
    fresh = AveragedModel(_net().to(device), use_buffers=True)
    fresh.load_state_dict(minidl.load(str(path), map_location=device))
    assert list(fresh.state_dict()) == list(avg.state_dict())
    for k, v in _state(avg).items():
        np.testing.assert_array_equal(_state(fresh)[k], v)
    assert int(host(fresh.n_averaged)) == 3
    _randomize(model, rng)                            # the loaded count weighs the next one
    avg.update_parameters(model)
    fresh.update_parameters(model)
    for k, v in _state(avg).items():
        np.testing.assert_array_equal(_state(fresh)[k], v)


def test_count_changed_outside_is_read_again(device, rng):
    model = _net().to(device)
    avg = AveragedModel(model)
    avg.update_parameters(model)
    _randomize(model, rng)
    avg.update_parameters(model)
    avg.n_averaged.fill_(0)                          # restart: the next update copies
    snap = _randomize(model, rng)
    avg.update_parameters(model)
    np.testing.assert_array_equal(host(avg.module[0].weight),
                                  snap["0.weight"].astype(np.float32))
    assert int(host(avg.n_averaged)) == 1


# -- bad input ---------------------------------------------------------------------------------
def test_constructor_errors():
    model = _net()
    with pytest.raises(TypeError, match="AveragedModel: 'model' must be a minidl.nn.Module"):
        AveragedModel(np.zeros(3))
    with pytest.raises(ValueError, match="'avg_fn' and 'multi_avg_fn'"):
        AveragedModel(model, avg_fn=get_swa_avg_fn(), multi_avg_fn=get_swa_multi_avg_fn())
    with pytest.raises(TypeError, match="'multi_avg_fn' must be callable"):
        AveragedModel(model, multi_avg_fn=0.9)
    with pytest.raises(TypeError, match="'use_buffers' must be a bool"):
        AveragedModel(model, use_buffers="yes")


@pytest.mark.parametrize("fn", [get_ema_avg_fn, get_ema_multi_avg_fn])
def test_decay_errors(fn):
    name = fn.__name__
    for bad in (1.5, -0.1, float("nan")):
        with pytest.raises(ValueError, match=rf"{name}: 'decay' must be a number in \[0, 1\], "
                                             r"got"):
            fn(bad)
    with pytest.raises(TypeError, match=rf"{name}: 'decay' must be .* got str"):
        fn("0.9")


def test_update_parameters_errors_change_nothing(rng):
    model = _net()
    avg = AveragedModel(model)
    _randomize(model, rng)
    avg.update_parameters(model)
    before = _state(avg)
    op = r"AveragedModel.update_parameters: "
    with pytest.raises(TypeError, match=op + "'model' must be a minidl.nn.Module, got OrderedDict"):
        avg.update_parameters(model.state_dict())
    deeper = nn.Sequential(*list(model), nn.Linear(2, 2))
    with pytest.raises(ValueError, match=op + "'model' has 8 parameters, the averaged model "
                                              "has 6"):
        avg.update_parameters(deeper)
    wider = nn.Sequential(nn.Linear(3, 5), nn.BatchNorm1d(5), nn.ReLU(), nn.Linear(5, 2))
    with pytest.raises(ValueError, match=op + r"'model' parameter '0.weight' has shape \(5, 3\), "
                                              r"the averaged model expects \(4, 3\)"):
        avg.update_parameters(wider)
    untracked = nn.Sequential(nn.Linear(3, 4), nn.BatchNorm1d(4, track_running_stats=False),
                              nn.ReLU(), nn.Linear(4, 2))
    with pytest.raises(ValueError, match=op + "'model' has 0 buffers, the averaged model has 3"):
        avg.update_parameters(untracked)
    bad = AveragedModel(model, avg_fn=lambda a, c, n: a.sum())
    bad.update_parameters(model)
    with pytest.raises(ValueError, match=op + r"avg_fn must return a Tensor shaped like the "
                                              r"averaged tensor \(4, 3\), got shape \(\)"):
        bad.update_parameters(model)
    after = _state(avg)
    assert all(np.array_equal(v, after[k]) for k, v in before.items())


def test_avg_fn_pair_errors():
    a = minidl.zeros(3)
    with pytest.raises(ValueError, match="swa_update: averaged tensor 0 has shape"):
        get_swa_multi_avg_fn()([a], [minidl.zeros(4)], 1)
    with pytest.raises(ValueError, match="ema_update: got 1 averaged and 2 current"):
        get_ema_multi_avg_fn()([a], [a, a], 1)


def test_update_bn_errors_restore_state(rng):
    model = nn.Sequential(nn.Linear(3, 4), nn.BatchNorm1d(4, momentum=0.2))
    model.eval()
    with pytest.raises(TypeError, match="update_bn: 'model' must be a minidl.nn.Module"):
        update_bn([], "model")
    with pytest.raises(TypeError, match="update_bn: 'loader' must be an iterable"):
        update_bn(3, model)
    x = minidl.randn(4, 3)
    with pytest.raises(TypeError, match="update_bn: batch 1 of 'loader' must be a Tensor or a "
                                        "tuple/list starting with one, got a tuple starting "
                                        "with ndarray"):
        update_bn([(x,), (np.zeros((4, 3)),)], model)
    assert model[1].momentum == 0.2 and not model.training and not model[1].training


def test_swalr_errors():
    opt = _opt((1.0, 0.5))
    with pytest.raises(TypeError, match="SWALR: optimizer must be a minidl.optim.Optimizer"):
        SWALR("opt", swa_lr=0.1)
    with pytest.raises(ValueError, match="SWALR: 'anneal_strategy' must be 'cos' or 'linear', "
                                         "got 'exp'"):
        SWALR(opt, 0.1, anneal_strategy="exp")
    with pytest.raises(ValueError, match="SWALR: 'anneal_epochs' must be a non-negative int"):
        SWALR(opt, 0.1, anneal_epochs=-1)
    with pytest.raises(TypeError, match="SWALR: 'anneal_epochs' must be a non-negative int"):
        SWALR(opt, 0.1, anneal_epochs=2.5)
    with pytest.raises(ValueError, match="SWALR: swa_lr has 3 values, the optimizer has 2"):
        SWALR(opt, [0.1, 0.1, 0.1])
    with pytest.raises(ValueError, match="SWALR: 'swa_lr' must be a non-negative number"):
        SWALR(opt, -0.1)
    with pytest.raises(ValueError, match="SWALR: 'last_epoch' is 3, resuming, but param "
                                         "group 0 has no 'initial_lr'"):
        SWALR(opt, 0.1, last_epoch=3)
    assert all("swa_lr" not in g for g in opt.param_groups)     # nothing was changed


# -- GPU: the update inside a captured CUDA graph (no host reads) ---------------------------
@pytest.mark.cuda
@pytest.mark.parametrize("kind", ["swa", "ema_multi"])
def test_update_is_captured_in_a_cuda_graph(rng, kind):
    model = nn.Linear(3, 2).to("cuda")
    avg = AveragedModel(model, **KINDS[kind])

    def step(w):
        model.weight.data[...] = w.data
        avg.update_parameters(model)

    graphed = minidl.cuda_graph.GraphedStep(step, warmup=2)
    snaps = [rng.standard_normal((2, 3)).astype(np.float32) for _ in range(6)]
    expected = snaps[0].astype(np.float64)
    for k, s in enumerate(snaps):
        graphed(minidl.tensor(s, device="cuda"))      # calls 3+ replay the captured update
        if k:
            expected = (expected + (s - expected) / (k + 1) if kind == "swa"
                        else 0.7 * expected + 0.3 * s)
    assert graphed.captures == 1
    np.testing.assert_allclose(host(avg.module.weight), expected, rtol=1e-6, atol=1e-6)
    assert int(host(avg.n_averaged)) == 6
    last = rng.standard_normal((2, 3)).astype(np.float32)   # eager again: the count is read
    step(minidl.tensor(last, device="cuda"))
    expected = (expected + (last - expected) / 7 if kind == "swa"
                else 0.7 * expected + 0.3 * last)
    np.testing.assert_allclose(host(avg.module.weight), expected, rtol=1e-6, atol=1e-6)


# -- parity with torch.optim.swa_utils --------------------------------------------------------
def _torch_net(torch):
    return torch.nn.Sequential(torch.nn.Linear(3, 4), torch.nn.BatchNorm1d(4), torch.nn.ReLU(),
                               torch.nn.Linear(4, 2))


def _to_torch(torch, model, tmodel):
    tmodel.load_state_dict({k: torch.from_numpy(v.copy()) for k, v in _state(model).items()})


def _torch_state(tmodule):
    return {k: v.detach().numpy() for k, v in tmodule.state_dict().items()}


TORCH_CASES = ["swa", "swa_buffers", "ema_multi_buffers", "ema_multi", "ema_single_buffers"]


def _kwargs(case, swa_utils):
    kw = {"use_buffers": case.endswith("_buffers")}
    if case.startswith("ema_multi"):
        kw["multi_avg_fn"] = swa_utils.get_ema_multi_avg_fn(0.9)
    elif case.startswith("ema_single"):
        kw["avg_fn"] = swa_utils.get_ema_avg_fn(0.9)
    return kw


@pytest.mark.parametrize("case", TORCH_CASES)
def test_averaged_model_matches_torch(rng, case):
    torch = pytest.importorskip("torch")
    from torch.optim import swa_utils as tswa
    from minidl.optim import swa_utils
    model, tmodel = _net(), _torch_net(torch)
    _to_torch(torch, model, tmodel)
    avg = AveragedModel(model, **_kwargs(case, swa_utils))
    tavg = tswa.AveragedModel(tmodel, **_kwargs(case, tswa))
    assert list(avg.state_dict()) == list(tavg.state_dict())
    for _ in range(5):
        _randomize(model, rng)
        _to_torch(torch, model, tmodel)
        avg.update_parameters(model)
        tavg.update_parameters(tmodel)
        mine, theirs = _state(avg), _torch_state(tavg)
        for k, v in theirs.items():
            assert mine[k].dtype == v.dtype and mine[k].shape == v.shape, k
            if v.dtype.kind == "f":
                np.testing.assert_allclose(mine[k], v, rtol=1e-6, atol=1e-7, err_msg=k)
            else:
                np.testing.assert_array_equal(mine[k], v, err_msg=k)


def test_torch_state_dict_loads_and_continues(rng):
    torch = pytest.importorskip("torch")
    from torch.optim import swa_utils as tswa
    model, tmodel = _net(), _torch_net(torch)
    tavg = tswa.AveragedModel(tmodel)
    for _ in range(3):
        _randomize(model, rng)
        _to_torch(torch, model, tmodel)
        tavg.update_parameters(tmodel)
    avg = AveragedModel(_net())
    avg.load_state_dict(_torch_state(tavg))
    assert int(host(avg.n_averaged)) == 3
    _randomize(model, rng)
    _to_torch(torch, model, tmodel)
    avg.update_parameters(model)
    tavg.update_parameters(tmodel)
    for k, v in _torch_state(tavg).items():
        np.testing.assert_allclose(_state(avg)[k], v, rtol=1e-6, atol=1e-7, err_msg=k)


@pytest.mark.parametrize("strategy,anneal", [("cos", 3), ("linear", 4), ("cos", 0),
                                             ("linear", 1)])
def test_swalr_matches_torch(strategy, anneal):
    torch = pytest.importorskip("torch")
    from torch.optim.swa_utils import SWALR as TSWALR
    lrs, swa = (0.5, 0.1), [0.05, 0.2]
    opt = _opt(lrs)
    topt = torch.optim.SGD([{"params": [torch.nn.Parameter(torch.zeros(2))], "lr": lr}
                            for lr in lrs])
    mine = SWALR(opt, swa, anneal_epochs=anneal, anneal_strategy=strategy)
    theirs = TSWALR(topt, swa, anneal_epochs=anneal, anneal_strategy=strategy)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")               # torch's "step order" warning
        for _ in range(8):
            np.testing.assert_allclose(mine.get_last_lr(), theirs.get_last_lr(), rtol=1e-12)
            opt.param_groups[0]["lr"] *= 0.9          # a change by hand carries on in both
            topt.param_groups[0]["lr"] *= 0.9
            mine.step()
            theirs.step()


def test_swalr_resume_matches_torch():
    torch = pytest.importorskip("torch")
    from torch.optim.swa_utils import SWALR as TSWALR
    opt = _opt((0.5,))
    topt = torch.optim.SGD([torch.nn.Parameter(torch.zeros(2))], lr=0.5)
    for g in opt.param_groups + topt.param_groups:
        g["initial_lr"] = 0.5
    mine = SWALR(opt, 0.05, anneal_epochs=3, last_epoch=4)
    theirs = TSWALR(topt, 0.05, anneal_epochs=3, last_epoch=4)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for _ in range(5):
            assert mine.last_epoch == theirs.last_epoch
            np.testing.assert_allclose(mine.get_last_lr(), theirs.get_last_lr(), rtol=1e-12)
            mine.step()
            theirs.step()


def test_update_bn_matches_torch(rng):
    torch = pytest.importorskip("torch")
    from torch.optim.swa_utils import update_bn as t_update_bn
    model, tmodel = _net(np.float64), _torch_net(torch).double()
    _randomize(model, rng)
    _to_torch(torch, model, tmodel)
    xs = [rng.standard_normal((6, 3)) * 2 for _ in range(4)]
    xs.append(rng.standard_normal((3, 3)))             # a short last batch
    update_bn([(minidl.tensor(x), 0) for x in xs], model)
    t_update_bn([(torch.from_numpy(x), 0) for x in xs], tmodel)
    for k, v in _torch_state(tmodel).items():
        np.testing.assert_allclose(_state(model)[k], v, rtol=1e-12, atol=1e-12, err_msg=k)
    assert tmodel[1].momentum == model[1].momentum == 0.1
