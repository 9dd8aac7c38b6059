"""The functional autograd API: minidl.autograd.grad and minidl.autograd.backward, and
Tensor.backward(inputs=...): values against backward() and torch, .grad left alone, pruning,
hooks, argument errors."""
import numpy as np
import pytest

import minidl
import minidl.functional as F
import minidl.nn as nn
from minidl import Function
from minidl.autograd import backward, grad
from tests.helpers import host, to_tensor


def _leaves(device, rng):
    x = to_tensor(rng.standard_normal((4, 5)), device, requires_grad=True)
    w = to_tensor(rng.standard_normal((5, 3)), device, requires_grad=True)
    return x, w


def _net(x, w):
    """Two outputs; branches, multi-output ops (split, max over a dim), x used twice."""
    h = F.tanh(x @ w)                         # (4, 3)
    a, b = F.split(h, [1, 2], dim=1)          # (4, 1), (4, 2)
    m = F.max(b, dim=1).values                # (4,)
    y1 = (a.squeeze(1) * m).sum()
    y2 = h * 2.0 + x.sum(dim=1, keepdim=True)  # (4, 3)
    return h, b, y1, y2


@pytest.mark.parametrize("device", ["cpu", pytest.param("cuda", marks=pytest.mark.cuda)])
def test_grad_equals_backward_and_leaves_grad_untouched(device, rng):
    x, w = _leaves(device, rng)
    g2 = rng.standard_normal((4, 3))
    h, b, y1, y2 = _net(x, w)
    gx, gh, gb, gw = grad([y1, y2], [x, h, b, w], grad_outputs=[None, to_tensor(g2, device)])
    for t in (x, w, h, b, y1, y2):
        assert t.grad is None
    for g, t in zip((gx, gh, gb, gw), (x, h, b, w)):
        assert isinstance(g, minidl.Tensor) and not g.requires_grad
        assert g.shape == t.shape and g.dtype == t.dtype and g.device == t.device
    # reference: one backward of the same weighted sum, non-leaves kept with retain_grad
    h, b, y1, y2 = _net(x, w)
    h.retain_grad()
    b.retain_grad()
    (y1 + (y2 * to_tensor(g2, device)).sum()).backward()
    for g, t in zip((gx, gh, gb, gw), (x, h, b, w)):
        np.testing.assert_allclose(host(g), host(t.grad), rtol=1e-12, atol=1e-12)


def test_grad_leaves_existing_and_retained_grads_alone(rng):
    x, w = _leaves("cpu", rng)
    w.grad = minidl.tensor(np.full((5, 3), 7.0))
    before = w.grad
    h, _, y1, _ = _net(x, w)
    h.retain_grad()
    gx, gw = grad(y1, [x, w])
    assert x.grad is None and h.grad is None and w.grad is before
    np.testing.assert_array_equal(w.grad.numpy(), 7.0)
    assert np.abs(gw.numpy()).sum() > 0


class Recorder(Function):
    """y = a * b; records each backward call and the needs_input_grad it saw."""

    def __init__(self, log, name):
        self.log, self.name = log, name

    def forward(self, a, b):
        self.save_for_backward(a, b)
        return a * b

    def backward(self, gy):
        self.log.append((self.name, self.needs_input_grad))
        a, b = self.saved
        return (gy * b if self.needs_input_grad[0] else None,
                gy * a if self.needs_input_grad[1] else None)


def test_grad_runs_only_the_nodes_leading_to_the_inputs(rng):
    log = []
    x, w = _leaves("cpu", rng)
    v = minidl.tensor(rng.standard_normal((4, 5)), requires_grad=True)
    below = Recorder(log, "below")(x, v)           # under h: not needed for dloss/dh
    h = F.tanh(below) * 3.0
    side = Recorder(log, "side")(x, x)             # a branch that does not lead to h
    loss = (h * h).sum() + side.sum()
    (gh,) = grad(loss, h, retain_graph=True)
    assert log == []
    np.testing.assert_allclose(gh.numpy(), 2 * h.numpy())
    (gx,) = grad(loss, x, retain_graph=True)
    # each node asked only for what leads to x: "below" not for v's gradient
    assert sorted(log) == [("below", (True, False)), ("side", (True, True))]
    log.clear()
    loss.backward()                                # the mask was only for that call
    assert sorted(log) == [("below", (True, True)), ("side", (True, True))]
    np.testing.assert_allclose(gx.numpy(), x.grad.numpy())
    assert v.grad is not None


def test_allow_unused_and_inputs_without_grad(rng):
    x, w = _leaves("cpu", rng)
    u = minidl.tensor([1.0, 2.0], requires_grad=True)
    y = (x * 2.0).sum()
    with pytest.raises(ValueError, match=r"grad: inputs\[1\] \(shape \(2,\)\) got no gradient"
                                         r".*allow_unused=True"):
        grad(y, [x, u], retain_graph=True)
    gx, gu = grad(y, [x, u], allow_unused=True)
    assert gu is None
    np.testing.assert_array_equal(gx.numpy(), 2.0)
    y = (x * 2.0).sum()
    with pytest.raises(ValueError, match=r"grad: inputs\[1\] \(shape \(3,\), dtype float32\) "
                                         r"does not require grad"):
        grad(y, [x, minidl.zeros(3)])
    # an output of a multi-output op that the outputs do not use gets no gradient
    a, b = F.split(x, [2, 2], dim=0)
    (ga, gb) = grad((a * 1.0).sum(), [a, b], allow_unused=True)
    assert gb is None and ga.shape == (2, 5)


@pytest.mark.parametrize("device", ["cpu", pytest.param("cuda", marks=pytest.mark.cuda)])
def test_returned_gradients_own_their_memory(device):
    a = to_tensor([1.0, 2.0], device, requires_grad=True)
    b = to_tensor([3.0, 4.0], device, requires_grad=True)
    ga, gb, ga2 = grad((a + b).sum() * 1.0, [a, b, a])  # Add hands one array to both inputs
    ga.data[...] = 5.0
    np.testing.assert_array_equal(host(gb), [1.0, 1.0])
    np.testing.assert_array_equal(host(ga2), [1.0, 1.0])
    h = a.reshape(2, 1)                              # x's gradient: a view of h's
    gh, ga = grad((h * 3.0).sum(), [h, a])
    gh.data[...] = 7.0
    np.testing.assert_array_equal(host(ga), [3.0, 3.0])
    y = a * 2.0
    seed = to_tensor([0.5, 0.25], device)
    (gy,) = grad(y, y, grad_outputs=seed)           # the gradient w.r.t. y is the seed itself
    gy.data[...] = 9.0
    np.testing.assert_array_equal(host(seed), [0.5, 0.25])


def test_retain_graph_default_frees_the_graph(rng):
    x, w = _leaves("cpu", rng)
    y = (F.tanh(x @ w) ** 2).sum()
    (g1,) = grad(y, w, retain_graph=True)
    (g2,) = grad(y, w)
    np.testing.assert_array_equal(g1.numpy(), g2.numpy())
    with pytest.raises(RuntimeError, match="second time"):
        grad(y, w)


def test_leaf_output_and_repeated_outputs():
    x = minidl.tensor([1.0, 2.0], requires_grad=True)
    (g,) = grad(x, x, grad_outputs=np.array([3.0, 4.0], np.float32))
    np.testing.assert_array_equal(g.numpy(), [3.0, 4.0])
    x64 = minidl.tensor([1.0, 2.0], dtype=minidl.float64, requires_grad=True)
    (g,) = grad(x64, x64, grad_outputs=minidl.ones(2))   # float32 seed: cast to float64
    assert g.dtype == minidl.float64
    y = (x * x).sum()
    (g,) = grad([y, y], x, retain_graph=True)
    np.testing.assert_array_equal(g.numpy(), [4.0, 8.0])
    h = x * 3.0                       # one output computed from another: d/dx (h.h + sum h)
    (g,) = grad([(h * h).sum(), h], x, grad_outputs=[None, np.ones(2, np.float32)])
    np.testing.assert_array_equal(g.numpy(), [18.0 + 3.0, 36.0 + 3.0])
    # a leaf among the outputs, not among the inputs: its .grad stays untouched
    w = minidl.tensor([5.0, 6.0], requires_grad=True)
    (gw,) = grad([(x * w).sum(), x], w, grad_outputs=[None, np.ones(2, np.float32)])
    np.testing.assert_array_equal(gw.numpy(), [1.0, 2.0])
    assert x.grad is None and w.grad is None


@pytest.mark.parametrize("device", ["cpu", pytest.param("cuda", marks=pytest.mark.cuda)])
def test_tensor_hooks_run_in_grad(device):
    calls = []
    x = to_tensor([1.0, -2.0], device, requires_grad=True)
    h = x * 3.0
    h.register_hook(lambda g: g * 2.0)             # non-leaf: replaces dy/dh
    x.register_hook(lambda g: calls.append(host(g).copy()))
    y = (h * h).sum()
    gh, gx = grad(y, [h, x])
    np.testing.assert_allclose(host(gh), 2 * 2 * host(h))        # captured after its hook
    np.testing.assert_allclose(host(gx), 3 * 2 * 2 * host(h))
    assert len(calls) == 1
    np.testing.assert_allclose(calls[0], host(gx))


def test_module_backward_hooks_run_in_grad(rng):
    seen = []
    lin = nn.Linear(5, 3).double()
    lin.register_full_backward_hook(lambda m, gi, go: seen.append((gi[0].numpy().copy(),
                                                                    go[0].numpy().copy())))
    x = minidl.tensor(rng.standard_normal((4, 5)), requires_grad=True)
    y = lin(x)
    (gx,) = grad((y * y).sum(), x)
    assert len(seen) == 1
    np.testing.assert_allclose(seen[0][0], gx.numpy())
    np.testing.assert_allclose(seen[0][1], 2 * y.numpy())
    assert lin.weight.grad is None


@pytest.mark.parametrize("device", ["cpu", pytest.param("cuda", marks=pytest.mark.cuda)])
def test_backward_with_inputs_accumulates_only_into_them(device, rng):
    x, w = _leaves(device, rng)
    g2 = to_tensor(rng.standard_normal((4, 3)), device)
    h, b, y1, y2 = _net(x, w)
    gw, gb = grad([y1, y2], [w, b], grad_outputs=[None, g2], retain_graph=True)
    h.retain_grad()
    backward([y1, y2], [None, g2], inputs=[w, b])   # b: a non-leaf gets .grad too
    assert x.grad is None and h.grad is None
    np.testing.assert_allclose(host(w.grad), host(gw), rtol=1e-12)
    np.testing.assert_allclose(host(b.grad), host(gb), rtol=1e-12)
    # Tensor.backward(inputs=) adds into an existing .grad, and only there
    _, _, y1, _ = _net(x, w)
    (gw1,) = grad(y1, w, retain_graph=True)
    y1.backward(inputs=w)
    np.testing.assert_allclose(host(w.grad), host(gw) + host(gw1), rtol=1e-12)
    assert x.grad is None
    w.grad = None                                    # an input listed twice gets it once
    _, _, y1, _ = _net(x, w)
    y1.backward(inputs=[w, w])
    np.testing.assert_allclose(host(w.grad), host(gw1), rtol=1e-12)
    # without inputs: every leaf, the outputs' gradients summed
    _, _, y1, y2 = _net(x, w)
    (gx,) = grad([y1, y2], x, grad_outputs=[None, g2], retain_graph=True)
    backward((y1, y2), (None, g2))
    np.testing.assert_allclose(host(x.grad), host(gx), rtol=1e-12)


def test_argument_errors(rng):
    x, w = _leaves("cpu", rng)
    y = x @ w
    s = y.sum()
    cases = [
        (NotImplementedError, r"grad: create_graph=True is not supported.*first-order",
         lambda: grad(s, x, create_graph=True)),
        (TypeError, r"grad: 'create_graph' must be a bool, got int",
         lambda: grad(s, x, create_graph=1)),
        (TypeError, r"grad: 'retain_graph' must be a bool, got str",
         lambda: grad(s, x, retain_graph="yes")),
        (TypeError, r"grad: 'allow_unused' must be a bool, got NoneType",
         lambda: grad(s, x, allow_unused=None)),
        (TypeError, r"grad: 'outputs' must be a Tensor or a list/tuple of Tensors, got float",
         lambda: grad(1.0, x)),
        (ValueError, r"grad: 'inputs' must hold at least one Tensor, got an empty list",
         lambda: grad(s, [])),
        (TypeError, r"grad: inputs\[1\] must be a Tensor, got ndarray",
         lambda: grad(s, [x, np.ones(3)])),
        (ValueError, r"grad: outputs \(shape \(\), dtype float64\) does not require grad",
         lambda: grad(minidl.tensor(1.0, dtype=minidl.float64), x)),
        (ValueError, r"grad: grad_outputs is None, which means a gradient of 1 and is allowed "
                     r"only for a one-element output; outputs has shape \(4, 3\)",
         lambda: grad(y, x)),
        (ValueError, r"grad: grad_outputs\[1\] is None.*outputs\[1\] has shape \(4, 3\)",
         lambda: grad([s, y], x, grad_outputs=[None, None])),
        (ValueError, r"grad: 'grad_outputs' has 1 entries for 2 outputs",
         lambda: grad([s, y], x, grad_outputs=[None])),
        (TypeError, r"grad: 'grad_outputs' must be None, a Tensor, an array or a list/tuple "
                    r"of them, got float", lambda: grad(s, x, grad_outputs=1.0)),
        (TypeError, r"grad: grad_outputs must be a Tensor, an array or None, got float",
         lambda: grad(s, x, grad_outputs=[1.0])),
        (TypeError, r"grad: grad_outputs must be floating-point, got dtype int64",
         lambda: grad(y, x, grad_outputs=np.ones((4, 3), np.int64))),
        (ValueError, r"grad: grad_outputs has shape \(3, 4\), expected outputs's shape \(4, 3\)",
         lambda: grad(y, x, grad_outputs=minidl.ones(3, 4))),
        (ValueError, r"backward: grad_tensors\[0\] is None.*tensors\[0\] has shape \(4, 3\)",
         lambda: backward([y, s])),
        (ValueError, r"backward: tensors \(shape \(3,\), dtype float32\) does not require grad",
         lambda: backward(minidl.zeros(3))),
        (ValueError, r"backward: inputs \(shape \(2,\), dtype float32\) does not require grad",
         lambda: backward(s, inputs=minidl.zeros(2))),
        (TypeError, r"Tensor.backward: 'inputs' must be a Tensor or a list/tuple of Tensors, "
                    r"got dict", lambda: s.backward(inputs={})),
        (ValueError, r"Tensor.backward: inputs\[1\] \(shape \(2,\), dtype float32\) does not",
         lambda: s.backward(inputs=[x, minidl.zeros(2)])),
    ]
    for exc, pattern, call in cases:
        with pytest.raises(exc, match=pattern):
            call()
    assert x.grad is None and w.grad is None        # no error ran a backward
    (gw,) = grad(s, w)                              # nor freed the graph
    np.testing.assert_allclose(gw.numpy(), np.broadcast_to(x.numpy().sum(0)[:, None], (5, 3)))


@pytest.mark.cuda
def test_grad_outputs_on_the_wrong_device(rng):
    x = to_tensor(rng.standard_normal(3), "cuda", requires_grad=True)
    y = x * 2.0
    with pytest.raises(ValueError, match=r"grad: grad_outputs is on cpu, outputs on cuda:0"):
        grad(y, x, grad_outputs=np.ones(3))


def test_grad_matches_torch_on_conv_bn_relu_linear(rng):
    torch = pytest.importorskip("torch")
    conv = nn.Conv2d(3, 4, 3, padding=1).double()
    bn = nn.BatchNorm2d(4).double()
    lin = nn.Linear(4 * 6 * 6, 5).double()
    tconv = torch.nn.Conv2d(3, 4, 3, padding=1).double()
    tbn = torch.nn.BatchNorm2d(4).double()
    tlin = torch.nn.Linear(4 * 6 * 6, 5).double()
    with torch.no_grad():
        for ours, theirs in ((conv, tconv), (bn, tbn), (lin, tlin)):
            for p, q in zip(ours.parameters(), theirs.parameters()):
                q.copy_(torch.tensor(p.numpy()))
    img = rng.standard_normal((2, 3, 6, 6))
    target = rng.integers(0, 5, 2)
    x = minidl.tensor(img, requires_grad=True)
    act = F.relu(bn(conv(x)))
    loss = F.cross_entropy(lin(act.flatten(1)), minidl.tensor(target))
    gx, gact = grad(loss, [x, act])
    tx = torch.tensor(img, requires_grad=True)
    tact = torch.relu(tbn(tconv(tx)))
    tloss = torch.nn.functional.cross_entropy(tlin(tact.flatten(1)), torch.tensor(target))
    tgx, tgact = torch.autograd.grad(tloss, [tx, tact])
    np.testing.assert_allclose(gx.numpy(), tgx.numpy(), rtol=1e-9, atol=1e-12)
    np.testing.assert_allclose(gact.numpy(), tgact.numpy(), rtol=1e-9, atol=1e-12)
    assert all(p.grad is None for m in (conv, bn, lin) for p in m.parameters())


def test_grad_through_checkpoint_leaves_parameters_grad_alone(rng):
    """A checkpointed DenseNet layer hands its listed parameters' gradients back to the engine
    that runs it: backward() still accumulates them, grad() returns them and writes no .grad."""
    import nets
    minidl.manual_seed(0)
    model = nets.get_model("densenet_bc_100", depth=16, growth_rate=2, num_classes=3)
    x = to_tensor(rng.standard_normal((2, 3, 8, 8)).astype(np.float32), requires_grad=True)
    loss = model(x).sum()
    params = list(model.parameters())
    got = grad(loss, [x] + params)
    assert all(p.grad is None for p in params)
    loss = model(x).sum()
    loss.backward()
    for g, t in zip(got, [x] + params):
        np.testing.assert_allclose(host(g), host(t.grad), rtol=1e-5, atol=1e-6)
    # gradient w.r.t. the input only: the parameters are asked for nothing
    for p in params:
        p.grad = None
    (gx,) = grad(model(x).sum(), [x])
    np.testing.assert_allclose(host(gx), host(x.grad), rtol=1e-5, atol=1e-6)
    assert all(p.grad is None for p in params)


@pytest.mark.parametrize("device", ["cpu", pytest.param("cuda", marks=pytest.mark.cuda)])
def test_checkpoint_parameter_hooks_run_once(device, rng):
    """A listed parameter's gradient is handed to the outer backward, which runs its hooks:
    once, as without the checkpoint (backward() and grad() alike)."""
    x = to_tensor(rng.standard_normal((3, 4)), device)
    W = rng.standard_normal((4, 2))
    results = {}
    for ck in (False, True):
        for how in ("backward", "grad"):
            w = to_tensor(W, device, requires_grad=True)
            calls = []
            w.register_hook(lambda g, calls=calls: calls.append(1) or g * 2.0)
            fn = lambda a, w=w: F.tanh(a @ w)                          # noqa: E731
            y = F.checkpoint(fn, [x], parameters=[w]) if ck else fn(x)
            if how == "backward":
                y.sum().backward()
                g = w.grad
            else:
                (g,) = grad(y.sum(), [w])
                assert w.grad is None
            assert len(calls) == 1, (ck, how)
            results[ck, how] = host(g)
    for key, g in results.items():
        np.testing.assert_allclose(g, results[False, "backward"], rtol=1e-12, err_msg=key)


def test_grad_through_checkpoint_refuses_unlisted_parameters(rng):
    """Under grad(), a parameter the checkpointed function uses but that is not listed could
    only get its gradient through its .grad: refused with a clear error; backward() keeps
    adding it into .grad."""
    x = to_tensor(rng.standard_normal((3, 4)), requires_grad=True)
    w = to_tensor(rng.standard_normal((4, 2)), requires_grad=True)
    v = to_tensor(rng.standard_normal((2, 2)), requires_grad=True)
    y = F.checkpoint(lambda a: F.tanh(a @ w) @ v, [x], parameters=[w])
    with pytest.raises(RuntimeError, match=r"checkpoint: the function uses a tensor \(2, 2\) "
                                           r"that requires grad but is not in 'parameters'"):
        grad((y * y).sum(), [x])
    assert v.grad is None and w.grad is None
    y = F.checkpoint(lambda a: F.tanh(a @ w) @ v, [x], parameters=[w])
    (y * y).sum().backward()
    assert v.grad is not None and w.grad is not None
