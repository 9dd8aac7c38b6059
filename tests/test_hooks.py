"""Tensor.register_hook and the Module forward / backward hooks, against hand-derived gradients
and against PyTorch where it is installed."""
import warnings

import numpy as np
import pytest

import minidl
import minidl.nn as nn
from minidl import backend
from tests.helpers import host, to_tensor


def _torch():
    return pytest.importorskip("torch")


# ---------------------------------------------------------------------------------------------
# Tensor.register_hook

def test_nonleaf_hook_sees_summed_grad_and_replaces_it(device):
    x = to_tensor([1.0, 2.0, 3.0], device, requires_grad=True)
    y = x * 2.0
    seen = []

    def hook(g):
        seen.append(host(g).copy())
        return g * 10.0
    y.register_hook(hook)
    (y * y + y).sum().backward()          # two paths reach y: dL/dy = 2y + 1
    assert len(seen) == 1
    np.testing.assert_allclose(seen[0], [5.0, 9.0, 13.0])
    np.testing.assert_allclose(host(x.grad), [100.0, 180.0, 260.0])   # 10 * 2 * (2y + 1)
    assert x.grad.device == x.device


def test_leaf_hook_runs_once_before_accumulation(device):
    x = to_tensor([1.0, -2.0], device, requires_grad=True)
    x.grad = to_tensor([100.0, 100.0], device)
    seen = []

    def hook(g):
        seen.append(host(g).copy())
        return g * 3.0
    x.register_hook(hook)
    (x * 2.0 + x * x).sum().backward()    # x used twice: one call with the sum 2 + 2x
    assert len(seen) == 1
    np.testing.assert_allclose(seen[0], [4.0, -2.0])
    np.testing.assert_allclose(host(x.grad), [112.0, 94.0])    # 100 + 3 * (2 + 2x)


def test_several_hooks_chain_in_order_and_remove(device):
    x = to_tensor([1.0, 1.0], device, requires_grad=True)
    calls = []
    h1 = x.register_hook(lambda g: calls.append("a") or g + 1.0)
    x.register_hook(lambda g: calls.append("b") or g * 2.0)
    x.sum().backward()
    assert calls == ["a", "b"]
    np.testing.assert_allclose(host(x.grad), [4.0, 4.0])        # (1 + 1) * 2
    h1.remove()
    h1.remove()                           # twice is fine
    x.grad = None
    calls.clear()
    x.sum().backward()
    assert calls == ["b"]
    np.testing.assert_allclose(host(x.grad), [2.0, 2.0])


def test_handle_as_context_manager_and_self_removal():
    x = minidl.tensor([1.0], requires_grad=True)
    calls = []
    with x.register_hook(lambda g: calls.append(1)):
        x.sum().backward()
    x.sum().backward()
    assert calls == [1]
    handle = None

    def once(g):
        calls.append(2)
        handle.remove()
    handle = x.register_hook(once)
    x.sum().backward()
    x.sum().backward()
    assert calls == [1, 2]


def test_hook_on_root_and_after_tensor_is_gone():
    x = minidl.tensor([1.0, 2.0], requires_grad=True)
    y = x * 3.0
    got = []
    y.register_hook(lambda g: got.append(host(g).copy()))
    z = y.exp()
    del y                                 # the hook lives on the node, as in PyTorch
    z.backward(minidl.tensor([1.0, 1.0]))
    np.testing.assert_allclose(got[0], np.exp([3.0, 6.0]), rtol=1e-6)
    root = x * 1.0
    root.register_hook(lambda g: g * 5.0)
    root.backward(minidl.tensor([1.0, 2.0]))
    np.testing.assert_allclose(host(x.grad), 3.0 * np.exp([3.0, 6.0]) + [5.0, 10.0], rtol=1e-6)


def test_hook_on_unused_output_not_called():
    x = minidl.tensor(np.arange(4.0), requires_grad=True)
    a, b = minidl.chunk(x, 2)
    called = []
    b.register_hook(lambda g: called.append("b"))
    a.register_hook(lambda g: called.append("a"))
    a.sum().backward()
    assert called == ["a"]
    np.testing.assert_allclose(host(x.grad), [1.0, 1.0, 0.0, 0.0])


def test_hook_runs_on_every_backward_with_retain_graph():
    x = minidl.tensor([2.0], requires_grad=True)
    y = x * x
    calls = []
    y.register_hook(lambda g: calls.append(1))
    z = y * 3.0
    z.backward(retain_graph=True)
    z.backward()
    assert calls == [1, 1]
    np.testing.assert_allclose(host(x.grad), [24.0])             # 2 * (3 * 2x)


@pytest.mark.parametrize("hooks_first", [True, False])
def test_retain_grad_and_hooks_match_torch(hooks_first):
    torch = _torch()
    a = np.array([0.5, -1.5, 2.0])
    results = []
    for lib in (minidl, torch):
        x = lib.tensor(a, requires_grad=True)
        y = x.sin() * 2.0
        if hooks_first:
            y.register_hook(lambda g: g * 3.0)
            y.retain_grad()
        else:
            y.retain_grad()
            y.register_hook(lambda g: g * 3.0)
        x.register_hook(lambda g: g + 1.0)
        (y * y).sum().backward()
        results.append((y.grad.detach().numpy() if lib is torch else host(y.grad),
                        x.grad.detach().numpy() if lib is torch else host(x.grad)))
    for ours, theirs in zip(*results):
        np.testing.assert_allclose(ours, theirs, rtol=1e-6)


def test_hook_grad_is_not_aliased_into_leaf_grad():
    """A hook that keeps the gradient it was given must not see it change when ``.grad``
    accumulates later (the engine may otherwise hand its own buffer to ``.grad``)."""
    x = minidl.tensor(np.ones((3, 4)), requires_grad=True)
    kept = []
    x.register_hook(lambda g: kept.append(g))
    (x * 2.0).sum().backward()
    (x * 2.0).sum().backward()
    np.testing.assert_allclose(host(kept[0]), 2.0)
    np.testing.assert_allclose(host(x.grad), 4.0)


def test_register_hook_errors():
    x = minidl.tensor([1.0, 2.0])
    with pytest.raises(RuntimeError, match="register_hook: .*does not require grad"):
        x.register_hook(lambda g: None)
    x.requires_grad_()
    with pytest.raises(TypeError, match="register_hook: hook must be callable, got int"):
        x.register_hook(3)
    h = x.register_hook(lambda g: g.sum())
    with pytest.raises(RuntimeError, match=r"register_hook: hook .*shape \(\)"):
        (x * 1.0).sum().backward()
    h.remove()
    x.register_hook(lambda g: host(g))
    with pytest.raises(TypeError, match="must return a Tensor or None, got ndarray"):
        (x * 1.0).sum().backward()


@pytest.mark.cuda
def test_hooks_read_nothing_back_from_the_gpu(monkeypatch):
    cupy = backend.cupy_module()
    if not hasattr(cupy, "_refuse_read"):
        pytest.skip("counts host reads on tests/fake_cupy only")

    def refuse(what):
        raise AssertionError(f"host read during backward: {what}")
    x = to_tensor(np.ones((2, 3)), "cuda", requires_grad=True)
    m = nn.Linear(3, 2).double().cuda()               # x is float64 (linear does not mix)
    m.register_full_backward_hook(lambda mod, gi, go: (gi[0] * 2.0,))
    m.register_full_backward_pre_hook(lambda mod, go: None)
    x.register_hook(lambda g: g + 1.0)
    y = m(x)
    y.register_hook(lambda g: g * 1.0)
    loss = (y * y).sum()
    monkeypatch.setattr(cupy, "_refuse_read", refuse)
    loss.backward()
    monkeypatch.undo()
    assert x.grad.device.type == "cuda" and m.weight.grad is not None


# ---------------------------------------------------------------------------------------------
# Module forward hooks

class _Add(nn.Module):
    def forward(self, a, b, scale=1.0):
        return (a + b) * scale


def test_forward_pre_hook_and_forward_hook_replace_args_and_output(device):
    m = _Add()
    a, b = to_tensor([1.0], device), to_tensor([2.0], device)
    log = []
    m.register_forward_pre_hook(lambda mod, args: log.append(("pre", len(args))))
    m.register_forward_pre_hook(lambda mod, args: (args[0] * 10.0, args[1]))
    m.register_forward_pre_hook(lambda mod, args: log.append(("pre2", host(args[0])[0])))
    h = m.register_forward_hook(lambda mod, args, out: out + 100.0)
    m.register_forward_hook(lambda mod, args, out: log.append(("post", host(out)[0])))
    out = m(a, b)
    np.testing.assert_allclose(host(out), [112.0])
    assert log == [("pre", 2), ("pre2", 10.0), ("post", 112.0)]
    h.remove()
    np.testing.assert_allclose(host(m(a, b)), [12.0])


def test_single_value_from_pre_hook_becomes_one_tuple():
    m = nn.Identity()
    m.register_forward_pre_hook(lambda mod, args: args[0] * 2.0)
    np.testing.assert_allclose(host(m(minidl.tensor([3.0]))), [6.0])


def test_hooks_with_kwargs_and_prepend():
    m = _Add()
    order = []
    m.register_forward_pre_hook(lambda mod, args, kwargs: (args, {"scale": 3.0}),
                                with_kwargs=True)
    m.register_forward_pre_hook(lambda mod, args: order.append("first"), prepend=True)
    m.register_forward_hook(lambda mod, args, kwargs, out: order.append(kwargs["scale"]),
                            with_kwargs=True)
    out = m(minidl.tensor([1.0]), minidl.tensor([1.0]))
    np.testing.assert_allclose(host(out), [6.0])
    assert order == ["first", 3.0]
    h = m.register_forward_pre_hook(lambda mod, args, kwargs: args[0], with_kwargs=True)
    with pytest.raises(RuntimeError, match="must return None or a tuple \\(args, kwargs\\)"):
        m(minidl.tensor([1.0]), minidl.tensor([1.0]))
    h.remove()
    m.register_forward_pre_hook(lambda mod, args, kwargs: args, with_kwargs=True)
    with pytest.raises(RuntimeError, match="with kwargs a dict, got Tensor"):
        m(minidl.tensor([1.0]), minidl.tensor([1.0]))


def test_always_call_hook_runs_when_forward_raises():
    m = nn.Linear(3, 2)
    seen = []
    m.register_forward_hook(lambda mod, args, out: seen.append(out), always_call=True)
    m.register_forward_hook(lambda mod, args, out: seen.append("plain"))
    with pytest.raises(ValueError):
        m(minidl.zeros(2, 5))
    assert seen == [None]


def test_hooks_are_per_module_and_not_in_state_dict():
    net = nn.Sequential(nn.Linear(3, 4), nn.ReLU(), nn.Linear(4, 2))
    names = {id(m): n for n, m in net.named_modules()}
    calls = []
    for m in net.modules():
        m.register_forward_hook(lambda mod, args, out: calls.append(names[id(mod)]))
    keys = list(net.state_dict())
    net(minidl.zeros(1, 3))
    assert calls == ["0", "1", "2", ""]       # children finish before their parent
    assert list(net.state_dict()) == keys == ["0.weight", "0.bias", "2.weight", "2.bias"]
    other = nn.Sequential(nn.Linear(3, 4), nn.ReLU(), nn.Linear(4, 2))
    other.load_state_dict(net.state_dict())
    assert not other[0]._forward_hooks


def test_register_errors():
    m = nn.Linear(2, 2)
    with pytest.raises(TypeError, match="Linear.register_forward_hook: hook must be callable"):
        m.register_forward_hook(None)
    with pytest.raises(NotImplementedError, match="register_full_backward_hook"):
        m.register_backward_hook(lambda *a: None)


# ---------------------------------------------------------------------------------------------
# Module full backward hooks

def _record(store):
    def hook(mod, grad_input, grad_output):
        store.append((tuple(None if g is None else _np(g) for g in grad_input),
                      tuple(None if g is None else _np(g) for g in grad_output)))
    return hook


def _np(t):
    return t.detach().numpy() if type(t).__module__.startswith("torch") else host(t)


class _TwoInTwoOut(nn.Module):
    def forward(self, a, b):
        return a * b, (a - b).exp()


def _two_in_two_out_torch(torch):
    class M(torch.nn.Module):
        def forward(self, a, b):
            return a * b, (a - b).exp()
    return M()


def test_full_backward_hook_matches_torch(device):
    torch = _torch()
    rng = np.random.default_rng(0)
    A, B = rng.standard_normal((2, 3)), rng.standard_normal((2, 3))
    G1 = rng.standard_normal((2, 3))
    runs = []
    for lib, m in ((minidl, _TwoInTwoOut()), (torch, _two_in_two_out_torch(torch))):
        rec = []
        m.register_full_backward_hook(_record(rec))
        m.register_full_backward_hook(lambda mod, gi, go: (gi[0] * 2.0, None))
        if lib is minidl:
            a, b = to_tensor(A, device, True), to_tensor(B, device, True)
        else:
            a, b = torch.tensor(A, requires_grad=True), torch.tensor(B, requires_grad=True)
        y1, y2 = m(a, b)
        ((y1 * lib.tensor(G1) if lib is torch else y1 * to_tensor(G1, device)).sum()
         + (y2 * y2).sum() + a.sum()).backward()
        runs.append((rec, _np(a.grad), b.grad))
    (ours, a_ours, b_ours), (theirs, a_theirs, b_theirs) = runs
    assert len(ours) == len(theirs) == 1
    for side in (0, 1):                   # grad_input, grad_output
        for o, t in zip(ours[0][side], theirs[0][side]):
            np.testing.assert_allclose(o, t, rtol=1e-10)
    np.testing.assert_allclose(a_ours, a_theirs, rtol=1e-10)   # doubled inside, +1 outside
    assert b_ours is None and b_theirs is None                 # the hook dropped it


def test_full_backward_hook_hand_checked():
    lin = nn.Linear(3, 2)
    rec = []
    lin.register_full_backward_hook(_record(rec))
    x = minidl.randn(4, 3, requires_grad=True)
    gy = minidl.randn(4, 2)
    lin(x).backward(gy)
    (gi,), (go,) = rec[0]
    np.testing.assert_allclose(go, host(gy))
    np.testing.assert_allclose(gi, host(gy) @ host(lin.weight), rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(host(x.grad), gi)


def test_full_backward_hook_inputs_without_grad_and_non_tensors():
    torch = _torch()
    runs = []
    for lib in (minidl, torch):
        lin = (nn if lib is minidl else torch.nn).Linear(3, 2)

        class Scaled((nn if lib is minidl else torch.nn).Module):
            def __init__(self):
                super().__init__()
                self.lin = lin

            def forward(self, x, k):
                return self.lin(x) * k
        m = Scaled()
        rec = []
        m.register_full_backward_hook(_record(rec))
        with warnings.catch_warnings():   # torch warns that the hook fires on the outputs
            warnings.simplefilter("ignore")
            m(lib.ones(2, 3), 2.0).sum().backward()   # no input requires grad
        runs.append(rec)
    (ours,), (theirs,) = runs
    assert ours[0] == theirs[0] == (None, None)
    np.testing.assert_allclose(ours[1][0], theirs[1][0])


def test_full_backward_pre_hook_replaces_grad_output():
    lin = nn.Linear(2, 2)
    lin.register_full_backward_pre_hook(lambda mod, go: (go[0] * 0.0,))
    x = minidl.randn(3, 2, requires_grad=True)
    lin(x).sum().backward()
    np.testing.assert_allclose(host(x.grad), 0.0)
    np.testing.assert_allclose(host(lin.weight.grad), 0.0)


def test_full_backward_hook_errors_and_no_grad():
    m = nn.Linear(2, 2)
    m.register_full_backward_hook(lambda mod, gi, go: (gi[0], gi[0]))
    with pytest.raises(RuntimeError, match="must return None or a tuple of 1 grad_input"):
        m(minidl.randn(1, 2, requires_grad=True)).sum().backward()

    class Listy(nn.Module):
        def forward(self, x):
            return [x * 2.0]
    bad = Listy()
    bad.register_full_backward_hook(lambda *a: None)
    with pytest.raises(TypeError, match="full backward hooks need forward to return a Tensor"):
        bad(minidl.randn(2, requires_grad=True))
    with minidl.no_grad():               # nothing is wrapped: no backward to hook
        assert isinstance(bad(minidl.randn(2, requires_grad=True)), list)
    sh = nn.Linear(2, 2)
    sh.register_full_backward_hook(lambda mod, gi, go: (minidl.zeros(5),))
    with pytest.raises(RuntimeError, match=r"grad_input\[0\] has shape \(5,\)"):
        sh(minidl.randn(1, 2, requires_grad=True)).sum().backward()


def test_nested_module_hooks_order_and_grads_match_torch():
    torch = _torch()
    rng = np.random.default_rng(1)
    X = rng.standard_normal((2, 3, 5, 5)).astype(np.float32)
    results = []
    for lib in (minidl, torch):
        lnn = nn if lib is minidl else torch.nn
        lib.manual_seed(0)
        net = lnn.Sequential(lnn.Conv2d(3, 4, 3, padding=1), lnn.BatchNorm2d(4), lnn.ReLU(),
                             lnn.Flatten(), lnn.Linear(100, 2))
        if lib is minidl:       # the same weights in both
            weights = [p.detach().numpy().copy() for p in net.parameters()]
        else:
            with torch.no_grad():
                for p, w in zip(net.parameters(), weights):
                    p.copy_(torch.tensor(w))
        order, grads = [], {}
        for name, m in net.named_modules():
            def hook(mod, gi, go, name=name):
                order.append(name)
                grads[name] = (_np(gi[0]), _np(go[0]))
            m.register_full_backward_hook(hook)
            m.register_forward_hook(lambda mod, args, out, name=name: order.append("f" + name))
        net[0].weight.register_hook(lambda g: g.clamp(-0.05, 0.05))
        x = lib.tensor(X, requires_grad=True)
        (net(x) ** 2).sum().backward()
        results.append((order, grads, _np(net[0].weight.grad), _np(x.grad)))
    (o1, g1, w1, x1), (o2, g2, w2, x2) = results
    # forward: children finish before the parent; backward: the parent's inputs come last
    assert o1 == o2 == ["f0", "f1", "f2", "f3", "f4", "f", "4", "3", "2", "1", "0", ""]
    for name in g2:
        for a, b in zip(g1[name], g2[name]):
            np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(w1, w2, rtol=1e-4, atol=1e-6)
    assert np.abs(w1).max() <= 0.05
    np.testing.assert_allclose(x1, x2, rtol=1e-4, atol=1e-5)


def test_grad_mode_is_off_while_backward_runs_hooks():
    """As in PyTorch: what a hook computes from parameters is not recorded."""
    seen = []
    w = minidl.ones(2, requires_grad=True)
    x = minidl.ones(2, requires_grad=True)
    y = x * 2

    def hook(g):
        seen.append(minidl.is_grad_enabled())
        return g * w                     # w requires grad: no graph is built here
    y.register_hook(hook)
    y.sum().backward()
    assert seen == [False] and minidl.is_grad_enabled()
    assert x.grad.grad_fn is None and not x.grad.requires_grad


def test_backward_refuses_create_graph_and_detach__cuts_in_place():
    x = minidl.ones(2, requires_grad=True)
    y = (x * 2).sum()
    with pytest.raises(NotImplementedError, match="backward: create_graph=True is not "
                                                  "supported"):
        y.backward(create_graph=True)
    with pytest.raises(NotImplementedError, match="backward: create_graph=True"):
        minidl.autograd.backward([y], create_graph=True)
    z = x * 3
    assert z.detach_() is z and z.is_leaf and not z.requires_grad and z.grad_fn is None
