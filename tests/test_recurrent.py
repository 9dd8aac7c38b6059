"""Recurrent cells and layers: the fused cell Functions and F.*_cell against NumPy references
with full float64 gradchecks; whole RNN/LSTM/GRU stacks gradchecked (fast mode) and compared
with torch (outputs, final states and every gradient); parameter names, order and init;
dropout between layers; bad input; a small learning run; float32 kept."""
import math

import numpy as np
import pytest

import minidl
import minidl.functional as F
from minidl import nn
from minidl.functional.recurrent import GRUCellFunction, LSTMCellFunction, RNNCellFunction
from tests.helpers import check_op, host, to_tensor

GATES = {"tanh": 1, "relu": 1, "LSTM": 4, "GRU": 3}


def sig(a):
    return 1.0 / (1.0 + np.exp(-a))


def ref_gates(mode, gi, gh, state):
    """The cell's elementwise math in NumPy, from gi = x W_ih^T + b_ih, gh = h W_hh^T + b_hh;
    ``state`` is c for the LSTM, h for the GRU, unused otherwise."""
    if mode == "LSTM":
        i, f, g, o = np.split(gi + gh, 4, axis=-1)
        c2 = sig(f) * state + sig(i) * np.tanh(g)
        return sig(o) * np.tanh(c2), c2
    if mode == "GRU":
        (ir, iz, in_), (hr, hz, hn) = np.split(gi, 3, axis=-1), np.split(gh, 3, axis=-1)
        r, z = sig(ir + hr), sig(iz + hz)
        n = np.tanh(in_ + r * hn)
        return (1 - z) * n + z * state
    a = gi + gh
    return np.tanh(a) if mode == "tanh" else np.maximum(a, 0)


def fused(mode):
    if mode == "LSTM":
        return LSTMCellFunction()
    if mode == "GRU":
        return GRUCellFunction()
    return RNNCellFunction(mode)


# ---------------------------------------------------------------------------------------------
# the fused Functions and the functional cells: full Jacobians

@pytest.mark.parametrize("mode", ["tanh", "relu", "LSTM", "GRU"])
@pytest.mark.parametrize("lead", [(2,), (), (2, 2)])
def test_fused_cell_function(device, rng, mode, lead):
    H = 3
    gi, gh = (rng.standard_normal(lead + (GATES[mode] * H,)) for _ in range(2))
    if mode in ("LSTM", "GRU"):
        state = rng.standard_normal(lead + (H,))
        check_op(lambda a, b, s: fused(mode)(a, b, s), [gi, gh, state],
                 lambda a, b, s: ref_gates(mode, a, b, s), device, fwd_atol=1e-12)
    else:
        check_op(lambda a, b: fused(mode)(a, b), [gi, gh],
                 lambda a, b: ref_gates(mode, a, b, None), device, fwd_atol=1e-12)


def test_lstm_function_with_one_output_used(rng):
    """Only c' (or only h') reaching the loss: the engine fills the other gradient with 0."""
    gi, gh, c = (to_tensor(rng.standard_normal(s), requires_grad=True)
                 for s in ((2, 8), (2, 8), (2, 2)))
    for k in (0, 1):
        assert minidl.gradcheck(lambda a, b, s: LSTMCellFunction()(a, b, s)[k], [gi, gh, c])


FUNCTIONAL = {"tanh": F.rnn_tanh_cell, "relu": F.rnn_relu_cell, "LSTM": F.lstm_cell,
              "GRU": F.gru_cell}


def ref_cell(mode, x, h, c, w_ih, w_hh, b_ih=None, b_hh=None):
    gi = x @ w_ih.T + (0 if b_ih is None else b_ih)
    gh = h @ w_hh.T + (0 if b_hh is None else b_hh)
    return ref_gates(mode, gi, gh, c if mode == "LSTM" else h)


@pytest.mark.parametrize("mode", ["tanh", "relu", "LSTM", "GRU"])
@pytest.mark.parametrize("bias", [True, False])
@pytest.mark.parametrize("batched", [True, False])
def test_functional_cell_gradcheck_all_inputs(device, rng, mode, bias, batched):
    """x, h, (c), W_ih, W_hh, (b_ih, b_hh): every input's full Jacobian."""
    N, H_in, H = 2, 3, 2
    G = GATES[mode]
    lead = (N,) if batched else ()
    arrays = [rng.standard_normal(lead + (H_in,)), rng.standard_normal(lead + (H,))]
    if mode == "LSTM":
        arrays.append(rng.standard_normal(lead + (H,)))
    arrays += [rng.standard_normal((G * H, H_in)), rng.standard_normal((G * H, H))]
    if bias:
        arrays += [rng.standard_normal(G * H), rng.standard_normal(G * H)]
    lstm = mode == "LSTM"

    def fn(x, h, *rest):
        if lstm:
            c, *rest = rest
            return FUNCTIONAL[mode](x, (h, c), *rest)
        return FUNCTIONAL[mode](x, h, *rest)

    def ref(x, h, *rest):
        if lstm:
            return ref_cell(mode, x, h, *rest)
        return ref_cell(mode, x, h, None, *rest)
    check_op(fn, arrays, ref, device, fwd_atol=1e-12)


# ---------------------------------------------------------------------------------------------
# whole layers: gradcheck of inputs and every parameter

def _layer(cls, kw, input_size=2, hidden=3):
    m = getattr(nn, cls)(input_size, hidden, **kw).double()
    return m, list(m.parameters())


LAYER_CASES = [
    ("LSTM", dict(num_layers=2, bidirectional=True)),
    ("LSTM", dict(num_layers=2, bidirectional=True, batch_first=True)),
    ("LSTM", dict(num_layers=2, proj_size=2, bidirectional=True)),
    ("GRU", dict(num_layers=2, bidirectional=True)),
    ("GRU", dict(num_layers=2, bidirectional=True, batch_first=True)),
    ("RNN", dict(num_layers=2, nonlinearity="relu", bidirectional=True)),
    ("RNN", dict(num_layers=2, nonlinearity="tanh", batch_first=True)),
]


@pytest.mark.parametrize("cls,kw", LAYER_CASES)
def test_layer_gradcheck(device, rng, cls, kw):
    m, params = _layer(cls, kw)
    m.to(device)
    L, N = 4, 2
    x = rng.standard_normal((N, L, 2) if kw.get("batch_first") else (L, N, 2))
    D = 2 if kw.get("bidirectional") else 1
    h0 = rng.standard_normal((2 * D, N, kw.get("proj_size") or 3))
    inputs = [to_tensor(x, device, True), to_tensor(h0, device, True)]
    if cls == "LSTM":
        inputs.append(to_tensor(rng.standard_normal((2 * D, N, 3)), device, True))

    def fn(x, h0, c0=None, *_params):      # the parameters are checked in place
        out, hn = m(x, h0 if c0 is None else (h0, c0))
        return (out, hn) if c0 is None else (out,) + hn
    extra = [] if cls == "LSTM" else [None]
    assert minidl.gradcheck(fn, inputs + extra + params, fast_mode=True, n_directions=3)


# ---------------------------------------------------------------------------------------------
# torch as the oracle

def _torch_pair(torch, cls, kw, input_size=3, hidden=4):
    tm = getattr(torch.nn, cls)(input_size, hidden, dtype=torch.float64, **kw)
    m = getattr(nn, cls)(input_size, hidden, dtype=np.float64, **kw)
    m.load_state_dict({k: v.detach().numpy() for k, v in tm.state_dict().items()})
    return tm, m


def _compare(torch, tm, m, arrays, fn_t, fn_m, rng):
    """Run both on ``arrays`` (inputs needing gradients), backpropagate the same random
    upstream gradients, compare outputs and the gradients of inputs and parameters."""
    tin = [torch.tensor(a, requires_grad=True) for a in arrays]
    min_ = [to_tensor(a, requires_grad=True) for a in arrays]
    touts, mouts = fn_t(*tin), fn_m(*min_)
    assert len(touts) == len(mouts)
    ups = [rng.standard_normal(tuple(t.shape)) for t in touts]
    sum((t * torch.tensor(u)).sum() for t, u in zip(touts, ups)).backward()
    total = None
    for o, u in zip(mouts, ups):
        term = (o * to_tensor(u)).sum()
        total = term if total is None else total + term
    total.backward()
    for t, o in zip(touts, mouts):
        assert o.shape == tuple(t.shape)
        np.testing.assert_allclose(host(o), t.detach().numpy(), rtol=1e-10, atol=1e-12)
    for t, o in zip(tin, min_):
        np.testing.assert_allclose(host(o.grad), t.grad.numpy(), rtol=1e-10, atol=1e-12)
    tparams = dict(tm.named_parameters())
    for name, p in m.named_parameters():
        np.testing.assert_allclose(host(p.grad), tparams[name].grad.numpy(), rtol=1e-10,
                                   atol=1e-12, err_msg=name)


TORCH_LAYERS = [
    ("LSTM", dict(), True, True),
    ("LSTM", dict(num_layers=2, bidirectional=True, batch_first=True), True, False),
    ("LSTM", dict(num_layers=2, bidirectional=True), False, True),
    ("LSTM", dict(batch_first=True), False, False),
    ("LSTM", dict(num_layers=2, bidirectional=True, proj_size=2), True, True),
    ("LSTM", dict(num_layers=3, bias=False), True, True),
    ("GRU", dict(), True, True),
    ("GRU", dict(num_layers=2, bidirectional=True, batch_first=True), True, False),
    ("GRU", dict(num_layers=2, bidirectional=True), False, True),
    ("GRU", dict(bias=False, bidirectional=True), False, False),
    ("RNN", dict(nonlinearity="tanh", num_layers=2), True, True),
    ("RNN", dict(nonlinearity="relu", bidirectional=True, batch_first=True), True, False),
    ("RNN", dict(nonlinearity="relu", num_layers=2, bias=False), False, True),
]


@pytest.mark.parametrize("cls,kw,batched,given", TORCH_LAYERS)
def test_layer_matches_torch(rng, cls, kw, batched, given):
    torch = pytest.importorskip("torch")
    tm, m = _torch_pair(torch, cls, kw)
    L, N = 4, 2
    if batched:
        x = rng.standard_normal((N, L, 3) if kw.get("batch_first") else (L, N, 3))
    else:
        x = rng.standard_normal((L, 3))
    D = 2 if kw.get("bidirectional") else 1
    lead = (kw.get("num_layers", 1) * D,) + ((N,) if batched else ())
    arrays = [x]
    if given:
        arrays.append(rng.standard_normal(lead + (kw.get("proj_size") or 4,)))
        if cls == "LSTM":
            arrays.append(rng.standard_normal(lead + (4,)))

    def run(mod):
        def fn(x, *hx):
            hx = None if not hx else hx[0] if len(hx) == 1 else tuple(hx)
            out, hn = mod(x, hx)
            return (out,) + (tuple(hn) if cls == "LSTM" else (hn,))
        return fn
    _compare(torch, tm, m, arrays, run(tm), run(m), rng)


@pytest.mark.parametrize("cls,kw", [("RNNCell", dict()), ("RNNCell", dict(nonlinearity="relu")),
                                    ("LSTMCell", dict()), ("LSTMCell", dict(bias=False)),
                                    ("GRUCell", dict()), ("GRUCell", dict(bias=False))])
@pytest.mark.parametrize("batched", [True, False])
@pytest.mark.parametrize("given", [True, False])
def test_cell_matches_torch(rng, cls, kw, batched, given):
    torch = pytest.importorskip("torch")
    tm, m = _torch_pair(torch, cls, kw)
    assert list(m.state_dict()) == list(tm.state_dict())
    lead = (2,) if batched else ()
    arrays = [rng.standard_normal(lead + (3,))]
    if given:
        arrays += [rng.standard_normal(lead + (4,)) for _ in range(2 if cls == "LSTMCell" else 1)]

    def run(mod):
        def fn(x, *hx):
            hx = None if not hx else hx[0] if len(hx) == 1 else tuple(hx)
            out = mod(x, hx)
            return tuple(out) if cls == "LSTMCell" else (out,)
        return fn
    _compare(torch, tm, m, arrays, run(tm), run(m), rng)


def test_dropout_layer_in_eval_matches_torch(rng):
    torch = pytest.importorskip("torch")
    tm, m = _torch_pair(torch, "LSTM", dict(num_layers=3, dropout=0.5))
    tm.eval()
    m.eval()
    x = rng.standard_normal((5, 2, 3))

    def run(mod):
        return lambda x: (mod(x)[0],)
    _compare(torch, tm, m, [x], run(tm), run(m), rng)


# ---------------------------------------------------------------------------------------------
# parameters: names, order, shapes, init

@pytest.mark.parametrize("cls,kw", [
    ("RNN", dict(num_layers=3, nonlinearity="relu", bidirectional=True)),
    ("LSTM", dict(num_layers=2, bidirectional=True, proj_size=3)),
    ("LSTM", dict(num_layers=2, bias=False)),
    ("GRU", dict(num_layers=2, bidirectional=True)),
    ("RNNCell", dict(bias=False)), ("LSTMCell", dict()), ("GRUCell", dict())])
def test_state_dict_keys_order_and_shapes_match_torch(cls, kw):
    torch = pytest.importorskip("torch")
    tm = getattr(torch.nn, cls)(5, 7, **kw)
    m = getattr(nn, cls)(5, 7, **kw)
    assert [(k, tuple(v.shape)) for k, v in tm.state_dict().items()] == \
        [(k, v.shape) for k, v in m.state_dict().items()]
    assert [k for k, _ in m.named_parameters()] == list(m.state_dict())


@pytest.mark.parametrize("cls", ["LSTM", "GRU", "RNN", "LSTMCell", "GRUCell", "RNNCell"])
def test_init_is_uniform_within_the_bound_and_seeded(cls):
    H = 16
    kw = dict(num_layers=2) if cls in ("LSTM", "GRU", "RNN") else {}
    minidl.manual_seed(3)
    a = getattr(nn, cls)(8, H, **kw)
    minidl.manual_seed(3)
    b = getattr(nn, cls)(8, H, **kw)
    bound = 1.0 / math.sqrt(H)
    values = np.concatenate([host(p).ravel() for p in a.parameters()])
    assert np.abs(values).max() <= bound
    assert np.abs(values).max() > 0.95 * bound and abs(values.mean()) < 0.05 * bound
    assert all(p.dtype == np.float32 for p in a.parameters())
    for p, q in zip(a.parameters(), b.parameters()):
        np.testing.assert_array_equal(host(p), host(q))
    assert (host(a.weight_ih_l0 if kw else a.weight_ih) !=
            host(a.weight_hh_l0 if kw else a.weight_hh)[:, :8]).any()


# ---------------------------------------------------------------------------------------------
# dropout between layers

def test_dropout_between_layers_only_while_training():
    m = nn.LSTM(3, 5, num_layers=3, dropout=0.5)
    x = minidl.randn(6, 4, 3)
    m.eval()
    ref_out, (ref_h, _) = m(x)
    no_drop = nn.LSTM(3, 5, num_layers=3)
    no_drop.load_state_dict(m.state_dict())
    np.testing.assert_array_equal(host(no_drop(x)[0]), host(ref_out))
    m.train()
    minidl.manual_seed(7)
    a, (ha, _) = m(x)
    minidl.manual_seed(7)
    b = m(x)[0]
    c = m(x)[0]
    np.testing.assert_array_equal(host(a), host(b))      # masks from minidl's generator
    assert (host(a) != host(c)).any() and (host(a) != host(ref_out)).any()
    assert (host(a) != 0).all()                          # no dropout after the last layer
    np.testing.assert_array_equal(host(ha)[0], host(ref_h)[0])   # nor before the first


def test_dropout_one_zeroes_what_the_next_layer_reads():
    """dropout=1: layer 1 reads zeros, so the output is a one-layer LSTM with layer 1's
    weights run on a zero sequence; h_n of layer 0 is unchanged."""
    m = nn.LSTM(3, 4, num_layers=2, dropout=1.0)
    x = minidl.randn(5, 2, 3)
    out, (h, _) = m(x)
    top = nn.LSTM(4, 4)             # layer 1 reads layer 0's 4 features
    top.load_state_dict({k.replace("_l1", "_l0"): v for k, v in m.state_dict().items()
                         if k.endswith("_l1")})
    np.testing.assert_allclose(host(out), host(top(minidl.zeros(5, 2, 4))[0]), atol=1e-7)
    m.eval()
    np.testing.assert_array_equal(host(m(x)[1][0])[0], host(h)[0])
    assert np.abs(host(m(x)[0]) - host(out)).max() > 1e-3


def test_dropout_with_one_layer_warns_and_does_nothing():
    with pytest.warns(UserWarning, match="GRU: dropout is applied between recurrent layers"):
        m = nn.GRU(3, 4, dropout=0.5)
    x = minidl.randn(5, 2, 3)
    a = host(m(x)[0])
    m.eval()
    np.testing.assert_array_equal(a, host(m(x)[0]))


# ---------------------------------------------------------------------------------------------
# shapes, dtype, devices

@pytest.mark.parametrize("cls", ["RNN", "LSTM", "GRU"])
def test_shapes_and_float32(device, cls):
    m = getattr(nn, cls)(3, 5, num_layers=2, bidirectional=True, batch_first=True).to(device)
    x = minidl.randn(4, 6, 3).to(device)
    out, hn = m(x)
    hn = hn if cls != "LSTM" else hn[0]
    assert out.shape == (4, 6, 10) and hn.shape == (4, 4, 5)
    assert out.dtype == np.float32 and hn.dtype == np.float32 and out.device == x.device
    out, hn = m(x[0])                        # unbatched (L, H_in): batch_first plays no part
    assert out.shape == (6, 10) and (hn if cls != "LSTM" else hn[1]).shape == (4, 5)


@pytest.mark.cuda
@pytest.mark.parametrize("cls", ["LSTM", "GRU", "RNN"])
def test_gpu_layer_matches_cpu(rng, cls):
    m = getattr(nn, cls)(3, 4, num_layers=2, bidirectional=True).double()
    x = rng.standard_normal((5, 2, 3))
    results = []
    for dev in ("cpu", "cuda"):
        m.to(dev)
        m.zero_grad()
        t = to_tensor(x, dev, True)
        out, hn = m(t)
        (out * to_tensor(np.arange(out.numel()).reshape(out.shape) / 10.0, dev)).sum().backward()
        results.append([host(out), host(t.grad)] + [host(p.grad) for p in m.parameters()])
    for a, b in zip(*results):
        np.testing.assert_allclose(a, b, rtol=1e-10, atol=1e-12)


# ---------------------------------------------------------------------------------------------
# bad input

def test_bad_constructor_arguments():
    with pytest.raises(ValueError, match="LSTM: 'input_size' must be a positive int, got 0"):
        nn.LSTM(0, 3)
    with pytest.raises(ValueError, match="GRU: 'hidden_size' must be a positive int, got -1"):
        nn.GRU(3, -1)
    with pytest.raises(TypeError, match="RNN: 'hidden_size' must be a positive int, got float"):
        nn.RNN(3, 4.0)
    with pytest.raises(ValueError, match="LSTM: 'num_layers' must be a positive int, got 0"):
        nn.LSTM(3, 4, num_layers=0)
    for p in (1.5, -0.1):
        with pytest.raises(ValueError, match=r"GRU: 'dropout' must be a number in \[0, 1\], "
                                             rf"got {p}"):
            nn.GRU(3, 4, num_layers=2, dropout=p)
    with pytest.raises(TypeError, match="LSTM: 'dropout' must be a number"):
        nn.LSTM(3, 4, dropout="0.1")
    with pytest.raises(ValueError, match="RNN: 'nonlinearity' must be 'tanh' or 'relu', got "
                                         "'sigmoid'"):
        nn.RNN(3, 4, nonlinearity="sigmoid")
    with pytest.raises(ValueError, match="RNNCell: 'nonlinearity' must be 'tanh' or 'relu'"):
        nn.RNNCell(3, 4, nonlinearity=None)
    with pytest.raises(ValueError, match="LSTM: 'proj_size' must be smaller than hidden_size=4,"
                                         " got 4"):
        nn.LSTM(3, 4, proj_size=4)
    with pytest.raises(ValueError, match="LSTM: 'proj_size' must be a non-negative int, got -1"):
        nn.LSTM(3, 4, proj_size=-1)
    with pytest.raises(TypeError, match="LSTM: 'bidirectional' must be a bool, got int 1"):
        nn.LSTM(3, 4, bidirectional=1)
    with pytest.raises(ValueError, match="LSTMCell: 'input_size' must be a positive int"):
        nn.LSTMCell(0, 4)
    with pytest.raises(ValueError, match="GRUCell: 'hidden_size' must be a positive int"):
        nn.GRUCell(3, 0)


def test_bad_layer_input():
    lstm, rnn = nn.LSTM(3, 4), nn.RNN(3, 4, num_layers=2, bidirectional=True)
    with pytest.raises(ValueError, match=r"LSTM: 'input' must be 3-D \(L, N, H_in\) batched or "
                                         r"2-D \(L, H_in\) unbatched, got shape \(3,\)"):
        lstm(minidl.zeros(3))
    with pytest.raises(ValueError, match=r"LSTM: 'input' must be 3-D \(N, L, H_in\)"):
        nn.LSTM(3, 4, batch_first=True)(minidl.zeros(1, 2, 3, 3))
    with pytest.raises(ValueError, match=r"LSTM: 'input' must have input_size=3 features in its"
                                         r" last dimension, got shape \(4, 2, 5\)"):
        lstm(minidl.zeros(4, 2, 5))
    with pytest.raises(TypeError, match="LSTM: 'input' must be a Tensor, got ndarray .*"
                                        "PackedSequence"):
        lstm(np.zeros((4, 2, 3), np.float32))
    with pytest.raises(TypeError, match="LSTM: 'input' must have the parameters' dtype float32,"
                                        " got float64"):
        lstm(minidl.zeros(4, 2, 3).double())
    with pytest.raises(ValueError, match="LSTM: 'input' must have at least one time step"):
        lstm(minidl.zeros(0, 2, 3))
    x = minidl.zeros(5, 2, 3)
    with pytest.raises(ValueError, match=r"RNN: 'hx' must have shape \(4, 2, 4\) \(num_layers \*"
                                         r" num_directions, N, hidden_size\), got \(4, 3, 4\)"):
        rnn(x, minidl.zeros(4, 3, 4))
    with pytest.raises(ValueError, match=r"RNN: 'hx' must have shape \(4, 4\) \(num_layers \* "
                                         r"num_directions, hidden_size\), got \(4, 1, 4\)"):
        rnn(x[:, 0], minidl.zeros(4, 1, 4))               # unbatched input, batched hx
    with pytest.raises(TypeError, match="RNN: 'hx' must be a Tensor, got tuple"):
        rnn(x, (minidl.zeros(4, 2, 4),))
    with pytest.raises(TypeError, match="RNN: 'hx' must have the input's dtype float32, got "
                                        "float64"):
        rnn(x, minidl.zeros(4, 2, 4).double())
    with pytest.raises(TypeError, match=r"LSTM: 'hx' must be None or a pair \(h_0, c_0\) of "
                                        "Tensors, got Tensor"):
        lstm(x, minidl.zeros(1, 2, 4))
    with pytest.raises(ValueError, match=r"LSTM: 'c_0' must have shape \(1, 2, 4\) .* got "
                                         r"\(1, 2, 3\)"):
        lstm(x, (minidl.zeros(1, 2, 4), minidl.zeros(1, 2, 3)))
    with pytest.raises(ValueError, match=r"LSTM: 'h_0' must have shape \(1, 2, 2\) \(num_layers"
                                         r" \* num_directions, N, H_out\), got \(1, 2, 4\)"):
        nn.LSTM(3, 4, proj_size=2)(x, (minidl.zeros(1, 2, 4), minidl.zeros(1, 2, 4)))


def test_bad_cell_input():
    cell = nn.LSTMCell(3, 4)
    with pytest.raises(ValueError, match=r"LSTMCell: 'input' must be 2-D \(N, input_size\) "
                                         r"batched or 1-D \(input_size,\) unbatched, got shape "
                                         r"\(1, 2, 3\)"):
        cell(minidl.zeros(1, 2, 3))
    with pytest.raises(ValueError, match=r"GRUCell: 'input' must have input_size=3 features"):
        nn.GRUCell(3, 4)(minidl.zeros(2, 4))
    with pytest.raises(ValueError, match=r"LSTMCell: 'hx\[1\]' must have shape \(2, 4\) "
                                         r"\(input's batch, hidden_size\), got \(4,\)"):
        cell(minidl.zeros(2, 3), (minidl.zeros(2, 4), minidl.zeros(4)))
    with pytest.raises(TypeError, match=r"LSTMCell: 'hx' must be None or a pair \(h, c\)"):
        cell(minidl.zeros(2, 3), [minidl.zeros(2, 4)])
    with pytest.raises(ValueError, match=r"RNNCell: 'hx' must have shape \(4,\)"):
        nn.RNNCell(3, 4)(minidl.zeros(3), minidl.zeros(1, 4))
    with pytest.raises(TypeError, match="RNNCell: 'input' must be a Tensor, got list"):
        nn.RNNCell(3, 4)([0.0, 0.0, 0.0])


def test_bad_functional_cell_input():
    x, h = minidl.zeros(2, 3), minidl.zeros(2, 4)
    w_ih, w_hh = minidl.zeros(16, 3), minidl.zeros(16, 4)
    with pytest.raises(TypeError, match=r"lstm_cell: 'hx' must be a pair \(h, c\) of Tensors, "
                                        "got Tensor"):
        F.lstm_cell(x, h, w_ih, w_hh)
    with pytest.raises(ValueError, match=r"gru_cell: 'weight_hh' must have shape \(3 \* "
                                         r"hidden_size, hidden_size\), got \(16, 4\)"):
        F.gru_cell(x, h, w_ih, w_hh)
    with pytest.raises(ValueError, match=r"lstm_cell: 'weight_ih' must have shape \(16, 2\) .* "
                                         r"got \(16, 3\)"):
        F.lstm_cell(minidl.zeros(2, 2), (h, h), w_ih, w_hh)
    with pytest.raises(ValueError, match=r"lstm_cell: 'bias_hh' must have shape \(16,\)"):
        F.lstm_cell(x, (h, h), w_ih, w_hh, minidl.zeros(16), minidl.zeros(4))
    with pytest.raises(ValueError, match=r"rnn_tanh_cell: 'hx' must have shape \(2, 4\)"):
        F.rnn_tanh_cell(x, minidl.zeros(3, 4), minidl.zeros(4, 3), minidl.zeros(4, 4))
    with pytest.raises(ValueError, match=r"rnn_relu_cell: 'input' must be 2-D \(N, H_in\) or "
                                         r"1-D"):
        F.rnn_relu_cell(minidl.zeros(1, 2, 3), h, minidl.zeros(4, 3), minidl.zeros(4, 4))
    with pytest.raises(TypeError, match="gru_cell: argument 'input' must be a floating-point"):
        F.gru_cell(minidl.tensor(np.zeros((2, 3), np.int64)), h, minidl.zeros(12, 3),
                   minidl.zeros(12, 4))
    with pytest.raises(TypeError, match="lstm_cell: 'weight_ih' must have the input's dtype"):
        F.lstm_cell(x, (h, h), w_ih.double(), w_hh)


# ---------------------------------------------------------------------------------------------
# it learns

def test_lstm_learns_to_recall_the_first_element():
    """LSTM + Linear, 80 Adam steps on 'output the first element of a length-6 sequence'
    (seeded): the loss falls from about the target's variance (1/3) to under a tenth of it
    (about 0.01 here; predicting the mean stays at 1/3)."""
    minidl.manual_seed(0)
    data = np.random.default_rng(0)
    x = data.uniform(-1, 1, (6, 64, 1)).astype(np.float32)
    lstm, head = nn.LSTM(1, 12), nn.Linear(12, 1)
    opt = minidl.optim.Adam(list(lstm.parameters()) + list(head.parameters()), lr=0.03)
    xt, target = minidl.tensor(x), minidl.tensor(x[0])
    losses = []
    for _ in range(80):
        out, _ = lstm(xt)
        loss = F.mse_loss(head(out[-1]), target)
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(float(host(loss)))
    assert losses[0] > 0.2 and losses[-1] < 0.1 * losses[0], losses[::10]
