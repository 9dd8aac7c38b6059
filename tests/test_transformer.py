"""nn.MultiheadAttention, nn.TransformerEncoderLayer and nn.TransformerEncoder: float64
gradchecks of every input and parameter, forward and gradients equal to torch's with copied
weights (state_dict keys shared), attention weights and their averaging, masks, dropout in
train and eval, dtype, bad input."""
import numpy as np
import pytest

import minidl
import minidl.functional as F
import minidl.nn as nn
from tests.helpers import host, to_tensor

L, S, N, E = 3, 4, 2, 4


def _assert_param_grads_match(m, tm):
    """Every parameter's .grad equals that of torch's parameter of the same name."""
    t_params = dict(tm.named_parameters())
    for name, p in m.named_parameters():
        np.testing.assert_allclose(host(p.grad), t_params[name].grad.numpy(), atol=1e-12)


def seq(rng, n, d, batch_first, batched=True):
    """A random (n, N, d) sequence, (N, n, d) batch-first, or (n, d) unbatched."""
    if not batched:
        return rng.standard_normal((n, d))
    return rng.standard_normal((N, n, d) if batch_first else (n, N, d))


def padding_mask(batched=True):
    m = np.zeros((N, S) if batched else (S,), bool)
    m[..., -1] = True                                  # the last key of every sample ignored
    return m


def gradcheck_module(module, inputs, call, fast_mode=False):
    """gradcheck of call(*inputs) with respect to the inputs and all parameters (fast mode:
    random directional derivatives, several of them)."""
    params = list(module.parameters())
    return minidl.gradcheck(lambda *a: call(*a[:len(inputs)]), list(inputs) + params,
                            fast_mode=fast_mode, n_directions=6)


# ---------------------------------------------------------------------------------------------
# MultiheadAttention

MHA_CASES = {   # name -> (constructor options, forward options, self-attention?, batched?)
    "self": (dict(), dict(), True, True),
    "self_batch_first_no_bias": (dict(batch_first=True, bias=False), dict(), True, True),
    "cross_kdim_vdim": (dict(kdim=3, vdim=5), dict(average_attn_weights=False), False, True),
    "cross_batch_first": (dict(batch_first=True), dict(), False, True),
    "unbatched": (dict(), dict(average_attn_weights=False), False, False),
    "causal": (dict(batch_first=True), dict(is_causal=True), True, True),
}


def mha_inputs(rng, module, self_attn, batched, device):
    bf = module.batch_first
    if self_attn:
        x = to_tensor(seq(rng, L, E, bf, batched), device, requires_grad=True)
        return [x], lambda x: (x, x, x)
    q = seq(rng, L, E, bf, batched)
    k, v = seq(rng, S, module.kdim, bf, batched), seq(rng, S, module.vdim, bf, batched)
    return [to_tensor(a, device, requires_grad=True) for a in (q, k, v)], lambda *t: t


@pytest.mark.parametrize("case", sorted(MHA_CASES))
def test_mha_gradcheck(device, rng, case):
    options, fwd, self_attn, batched = MHA_CASES[case]
    m = nn.MultiheadAttention(E, 2, **options).double().to(device)
    inputs, qkv = mha_inputs(rng, m, self_attn, batched, device)
    Sk = L if self_attn else S
    masks = {}
    if not fwd.get("is_causal"):
        kpm = np.zeros((N, Sk) if batched else (Sk,), bool)
        kpm[..., -1] = True
        masks = dict(key_padding_mask=to_tensor(kpm, device),
                     attn_mask=to_tensor(rng.standard_normal((L, Sk)), device))
    assert gradcheck_module(m, inputs, lambda *t: m(*qkv(*t), **masks, **fwd))


@pytest.mark.parametrize("case", sorted(MHA_CASES))
def test_mha_matches_torch(rng, case):
    torch = pytest.importorskip("torch")
    options, fwd, self_attn, batched = MHA_CASES[case]
    tm = torch.nn.MultiheadAttention(E, 2, **options).double()
    m = nn.MultiheadAttention(E, 2, **options).double()
    assert list(m.state_dict()) == list(tm.state_dict())
    m.load_state_dict({k: v.detach().numpy() for k, v in tm.state_dict().items()})
    inputs, qkv = mha_inputs(rng, m, self_attn, batched, "cpu")
    t_inputs = [torch.tensor(host(x), requires_grad=True) for x in inputs]
    Sk = L if self_attn else S
    kw, t_kw = dict(fwd), dict(fwd)
    if fwd.get("is_causal"):         # torch wants the mask with its is_causal hint
        t_kw["attn_mask"] = torch.triu(torch.ones(L, Sk, dtype=torch.bool), 1)
    else:
        kpm = np.zeros((N, Sk) if batched else (Sk,), bool)
        kpm[..., -1] = True
        am = np.triu(np.ones((L, Sk), bool), 2)           # bool, True = left out
        kw.update(key_padding_mask=to_tensor(kpm), attn_mask=to_tensor(am))
        t_kw.update(key_padding_mask=torch.tensor(kpm), attn_mask=torch.tensor(am))
    out, w = m(*qkv(*inputs), **kw)
    t_out, t_w = tm(*qkv(*t_inputs), **t_kw)
    np.testing.assert_allclose(host(out), t_out.detach().numpy(), atol=1e-12)
    np.testing.assert_allclose(host(w), t_w.detach().numpy(), atol=1e-12)
    g_out, g_w = rng.standard_normal(out.shape), rng.standard_normal(w.shape)
    ((out * to_tensor(g_out)).sum() + (w * to_tensor(g_w)).sum()).backward()
    ((t_out * torch.tensor(g_out)).sum() + (t_w * torch.tensor(g_w)).sum()).backward()
    for x, t in zip(inputs, t_inputs):
        np.testing.assert_allclose(host(x.grad), t.grad.numpy(), atol=1e-12)
    _assert_param_grads_match(m, tm)


def test_mha_3d_float_attn_mask_and_need_weights_false(rng):
    torch = pytest.importorskip("torch")
    tm = torch.nn.MultiheadAttention(E, 2).double()
    m = nn.MultiheadAttention(E, 2).double()
    m.load_state_dict({k: v.detach().numpy() for k, v in tm.state_dict().items()})
    x = rng.standard_normal((L, N, E))
    am = rng.standard_normal((N * 2, L, L))                 # per (sample, head)
    kpm = rng.standard_normal((N, L))                       # float: added
    out, w = m(to_tensor(x), to_tensor(x), to_tensor(x), key_padding_mask=to_tensor(kpm),
               attn_mask=to_tensor(am), need_weights=False)
    t = torch.tensor(x)
    t_out, _ = tm(t, t, t, key_padding_mask=torch.tensor(kpm), attn_mask=torch.tensor(am))
    assert w is None
    np.testing.assert_allclose(host(out), t_out.detach().numpy(), atol=1e-12)


def test_mha_causal_with_padding_and_unbatched_head_masks(rng):
    torch = pytest.importorskip("torch")
    m = nn.MultiheadAttention(E, 2).double()
    x = to_tensor(rng.standard_normal((L, N, E)))
    kpm = to_tensor(np.eye(N, L, dtype=bool))
    causal = to_tensor(np.triu(np.ones((L, L), bool), 1))
    a = m(x, x, x, key_padding_mask=kpm, is_causal=True)
    b = m(x, x, x, key_padding_mask=kpm, attn_mask=causal)
    for u, w in zip(a, b):
        np.testing.assert_array_equal(host(u), host(w))
    tm = torch.nn.MultiheadAttention(E, 2).double()
    m.load_state_dict({k: v.detach().numpy() for k, v in tm.state_dict().items()})
    x1 = rng.standard_normal((L, E))
    am = rng.standard_normal((2, L, L))                  # unbatched: (num_heads, L, S)
    out, w = m(to_tensor(x1), to_tensor(x1), to_tensor(x1), attn_mask=to_tensor(am),
               average_attn_weights=False)
    t = torch.tensor(x1)
    t_out, t_w = tm(t, t, t, attn_mask=torch.tensor(am), average_attn_weights=False)
    np.testing.assert_allclose(host(out), t_out.detach().numpy(), atol=1e-12)
    np.testing.assert_allclose(host(w), t_w.detach().numpy(), atol=1e-12)


def test_mha_fully_masked_query_is_finite(device, rng):
    """All keys of sample 0 masked: zero weights and out_proj's bias as output (torch's MHA
    gives NaN there), sample 1 unaffected."""
    m = nn.MultiheadAttention(E, 2).double().to(device)
    with minidl.no_grad():
        m.out_proj.bias.data[...] = to_tensor(rng.standard_normal(E), device).data
    x = to_tensor(rng.standard_normal((L, N, E)), device)
    kpm = np.zeros((N, L), bool)
    kpm[0] = True
    out, w = m(x, x, x, key_padding_mask=to_tensor(kpm, device))
    np.testing.assert_array_equal(host(w)[0], 0.0)
    np.testing.assert_allclose(host(out)[:, 0], np.broadcast_to(host(m.out_proj.bias), (L, E)))
    alone, _ = m(x[:, 1:], x[:, 1:], x[:, 1:])
    np.testing.assert_allclose(host(out)[:, 1:], host(alone), atol=1e-12)


def test_mha_dropout_in_train_only(rng):
    m = nn.MultiheadAttention(8, 2, dropout=0.5, batch_first=True).double()
    x = to_tensor(rng.standard_normal((16, 20, 8)))
    m.eval()
    out_eval, w_eval = m(x, x, x, average_attn_weights=False)
    np.testing.assert_array_equal(host(m(x, x, x)[0]), host(out_eval))      # deterministic
    m.train()
    out_train, w_train = m(x, x, x, average_attn_weights=False)
    wt, we = host(w_train), host(w_eval)
    kept = wt != 0
    np.testing.assert_allclose(wt[kept], 2.0 * we[kept], rtol=1e-12)      # 1 / (1 - p)
    assert abs(kept.mean() - 0.5) < 5 * np.sqrt(0.25 / kept.size)
    assert not np.allclose(host(out_train), host(out_eval))
    np.testing.assert_allclose(we.sum(axis=-1), 1.0)


def test_mha_float32(device, rng):
    m = nn.MultiheadAttention(E, 2, kdim=3, vdim=5).to(device)
    q = to_tensor(rng.standard_normal((L, N, E)), device, dtype=np.float32)
    k = to_tensor(rng.standard_normal((S, N, 3)), device, dtype=np.float32)
    v = to_tensor(rng.standard_normal((S, N, 5)), device, dtype=np.float32)
    out, w = m(q, k, v, key_padding_mask=to_tensor(padding_mask(), device))
    assert out.dtype == w.dtype == np.float32
    assert out.shape == (L, N, E) and w.shape == (N, L, S)


def test_mha_bad_input():
    op = "MultiheadAttention"
    with pytest.raises(ValueError, match=rf"{op}: 'embed_dim' \(6\) must be divisible by "
                                         r"'num_heads' \(4\)"):
        nn.MultiheadAttention(6, 4)
    with pytest.raises(ValueError, match=rf"{op}: 'embed_dim' must be a positive int, got 0"):
        nn.MultiheadAttention(0, 1)
    with pytest.raises(TypeError, match=rf"{op}: 'num_heads' must be a positive int"):
        nn.MultiheadAttention(4, 2.0)
    with pytest.raises(ValueError, match=rf"{op}: 'dropout' must be a number in \[0, 1\)"):
        nn.MultiheadAttention(4, 2, dropout=1.0)
    m = nn.MultiheadAttention(E, 2)
    x = minidl.zeros(L, N, E)
    with pytest.raises(ValueError, match=rf"{op}: 'query' must have 4 features \(embed_dim\)"):
        m(minidl.zeros(L, N, 3), x, x)
    with pytest.raises(ValueError, match=rf"{op}: 'key' and 'value' must agree"):
        m(x, x, minidl.zeros(L + 1, N, E))
    with pytest.raises(ValueError, match=rf"{op}: query, key and value must all be 3-D"):
        m(x, minidl.zeros(L, E), minidl.zeros(L, E))
    with pytest.raises(ValueError, match=rf"{op}: query and key have batch sizes 2 and 3"):
        m(x, minidl.zeros(L, 3, E), minidl.zeros(L, 3, E))
    with pytest.raises(ValueError, match=rf"{op}: 'key_padding_mask' must have shape "
                                         r"\(2, 3\), got \(3, 2\)"):
        m(x, x, x, key_padding_mask=minidl.tensor(np.zeros((L, N), bool)))
    with pytest.raises(ValueError, match=rf"{op}: 'attn_mask' must have shape \(3, 3\) or "
                                         r"\(4, 3, 3\), got \(2, 3, 3\)"):
        m(x, x, x, attn_mask=minidl.zeros(2, L, L))
    with pytest.raises(TypeError, match=rf"{op}: 'attn_mask' must be a bool tensor or have "
                                        "the query's dtype float32, got int64"):
        m(x, x, x, attn_mask=minidl.tensor(np.zeros((L, L), np.int64)))
    with pytest.raises(TypeError, match=rf"{op}: 'query' must be a Tensor, got ndarray"):
        m(np.zeros((L, N, E)), x, x)
    with pytest.raises(TypeError, match=rf"{op}: 'need_weights' must be a bool"):
        m(x, x, x, need_weights=None)


# ---------------------------------------------------------------------------------------------
# TransformerEncoderLayer / TransformerEncoder

def load_torch(m, tm):
    assert list(m.state_dict()) == list(tm.state_dict())
    m.load_state_dict({k: v.detach().numpy() for k, v in tm.state_dict().items()})


@pytest.mark.parametrize("norm_first,activation,batch_first", [
    (False, "relu", False), (True, "gelu", True)])
def test_encoder_layer_gradcheck(device, rng, norm_first, activation, batch_first):
    layer = nn.TransformerEncoderLayer(E, 2, 6, dropout=0.0, activation=activation,
                                       norm_first=norm_first, batch_first=batch_first)
    layer.double().to(device)
    x = to_tensor(seq(rng, L, E, batch_first), device, requires_grad=True)
    kpm = to_tensor(np.eye(N, L, 1, dtype=bool), device)
    # fast mode on the device: the emulated GPU's LayerNorm kernels are slow for full mode
    assert gradcheck_module(layer, [x], lambda x: layer(x, src_key_padding_mask=kpm),
                            fast_mode=device != "cpu")


@pytest.mark.parametrize("norm_first", [False, True])
@pytest.mark.parametrize("activation", ["relu", "gelu", "module", "function"])
def test_encoder_matches_torch(rng, norm_first, activation):
    torch = pytest.importorskip("torch")
    t_act = {"module": torch.nn.GELU(), "function": torch.nn.functional.gelu}.get(activation,
                                                                                 activation)
    act = {"module": nn.GELU(), "function": F.gelu}.get(activation, activation)
    kw = dict(dim_feedforward=6, dropout=0.0, norm_first=norm_first, batch_first=True)
    tl = torch.nn.TransformerEncoderLayer(E, 2, activation=t_act, **kw).double()
    tm = torch.nn.TransformerEncoder(tl, 2, norm=torch.nn.LayerNorm(E).double(),
                                     enable_nested_tensor=False)
    layer = nn.TransformerEncoderLayer(E, 2, activation=act, **kw)
    m = nn.TransformerEncoder(layer, 2, norm=nn.LayerNorm(E)).double()
    load_torch(m, tm)
    x = rng.standard_normal((N, L, E))
    src_mask = np.triu(np.full((L, L), -np.inf), 1)
    kpm = np.zeros((N, L))
    kpm[1, 0] = -np.inf                                 # float masks both (torch warns on a mix)
    mx, tx = to_tensor(x, requires_grad=True), torch.tensor(x, requires_grad=True)
    for train in (True, False):
        m.train(train)
        tm.train(train)
        y = m(mx, mask=to_tensor(src_mask), src_key_padding_mask=to_tensor(kpm))
        ty = tm(tx, mask=torch.tensor(src_mask), src_key_padding_mask=torch.tensor(kpm))
        np.testing.assert_allclose(host(y), ty.detach().numpy(), atol=1e-12)
    g = rng.standard_normal(y.shape)
    (y * to_tensor(g)).sum().backward()
    (ty * torch.tensor(g)).sum().backward()
    np.testing.assert_allclose(host(mx.grad), tx.grad.numpy(), atol=1e-12)
    _assert_param_grads_match(m, tm)


def test_encoder_layer_unbatched_and_float32_match_torch(rng):
    torch = pytest.importorskip("torch")
    tl = torch.nn.TransformerEncoderLayer(E, 2, 6, dropout=0.0)
    layer = nn.TransformerEncoderLayer(E, 2, 6, dropout=0.0)
    load_torch(layer, tl)
    x = rng.standard_normal((L, E)).astype(np.float32)
    y = layer(to_tensor(x), is_causal=True)
    ty = tl(torch.tensor(x), src_mask=torch.triu(torch.ones(L, L, dtype=torch.bool), 1),
            is_causal=True)
    assert y.dtype == np.float32
    np.testing.assert_allclose(host(y), ty.detach().numpy(), atol=1e-5)


def test_encoder_layer_dropout_train_and_eval(rng):
    layer = nn.TransformerEncoderLayer(8, 2, 16, dropout=0.3, batch_first=True).double()
    x = to_tensor(rng.standard_normal((2, 5, 8)))
    a, b = host(layer(x)), host(layer(x))
    assert not np.allclose(a, b)                        # dropout active while training
    layer.eval()
    c = host(layer(x))
    np.testing.assert_array_equal(c, host(layer(x)))
    no_drop = nn.TransformerEncoderLayer(8, 2, 16, dropout=0.0, batch_first=True).double()
    no_drop.load_state_dict(layer.state_dict())
    np.testing.assert_allclose(host(no_drop(x)), c, atol=1e-12)
    assert layer.self_attn.dropout == layer.dropout.p == layer.dropout1.p == 0.3


def test_encoder_copies_the_layer():
    layer = nn.TransformerEncoderLayer(E, 2, 6)
    enc = nn.TransformerEncoder(layer, 3)
    assert len(enc.layers) == enc.num_layers == 3 and enc.norm is None
    assert all(lay is not layer for lay in enc.layers)
    w = [host(lay.linear1.weight) for lay in enc.layers]
    np.testing.assert_array_equal(w[0], host(layer.linear1.weight))
    np.testing.assert_array_equal(w[1], w[2])
    with minidl.no_grad():
        enc.layers[0].linear1.weight.data[...] = 0
    assert host(enc.layers[1].linear1.weight).any() and host(layer.linear1.weight).any()
    assert len(list(enc.parameters())) == 3 * len(list(layer.parameters()))


def test_encoder_bad_input():
    op = "TransformerEncoderLayer"
    with pytest.raises(ValueError, match=rf"{op}: 'activation' must be 'relu', 'gelu' or a "
                                         "callable, got 'tanh'"):
        nn.TransformerEncoderLayer(E, 2, activation="tanh")
    with pytest.raises(TypeError, match=rf"{op}: 'activation' must be .* got int"):
        nn.TransformerEncoderLayer(E, 2, activation=3)
    with pytest.raises(ValueError, match=rf"{op}: 'd_model' \(6\) must be divisible by 'nhead' "
                                         r"\(4\)"):
        nn.TransformerEncoderLayer(6, 4)
    with pytest.raises(ValueError, match=rf"{op}: 'dropout' must be a number in \[0, 1\)"):
        nn.TransformerEncoderLayer(E, 2, dropout=-0.5)
    with pytest.raises(TypeError, match=r"TransformerEncoder: 'encoder_layer' must be a Module"):
        nn.TransformerEncoder("layer", 2)
    with pytest.raises(ValueError, match=r"TransformerEncoder: 'num_layers' must be a positive"):
        nn.TransformerEncoder(nn.TransformerEncoderLayer(E, 2), 0)
    layer = nn.TransformerEncoderLayer(E, 2)
    with pytest.raises(ValueError, match=r"MultiheadAttention: 'query' must have 4 features"):
        layer(minidl.zeros(L, N, E + 1))


@pytest.mark.cuda
def test_mha_mask_on_another_device_is_named():
    """A CPU mask with a GPU query: the error names the mask the user passed."""
    m = nn.MultiheadAttention(E, 2).to("cuda")
    x = minidl.zeros(L, N, E, device="cuda")
    masks = {"key_padding_mask": minidl.tensor(padding_mask()),
             "attn_mask": minidl.zeros(L, L, dtype=bool)}
    for name, mask in masks.items():
        with pytest.raises(ValueError, match=rf"MultiheadAttention: '{name}' is on cpu, "
                                             r"'query' on cuda:0; move it with \.to"):
            m(x, x, x, **{name: mask})


def test_encoder_layer_is_causal_none_means_false(rng):
    layer = nn.TransformerEncoderLayer(E, 2, 6, dropout=0.0).double()
    x = to_tensor(rng.standard_normal((L, N, E)))
    np.testing.assert_array_equal(host(layer(x, is_causal=None)), host(layer(x)))
    with pytest.raises(TypeError, match=r"TransformerEncoderLayer: 'is_causal' must be a bool, "
                                        r"got str 'yes'"):
        layer(x, is_causal="yes")
