"""Recurrent cells (PyTorch's formulas and gate order): one Function per cell step for the
elementwise gate math, with a closed-form backward.

Every cell takes the two affine maps of its input x and previous hidden state h,

    gi = x W_ih^T + b_ih,    gh = h W_hh^T + b_hh,      each (..., G * H)

(G = 1 for the plain RNN, 4 for the LSTM, 3 for the GRU; the G blocks of rows of W_ih and
W_hh are the gates in PyTorch's order), computed by ``linear`` outside the fused Function.
That split keeps each backward simple and each GEMM large: the Functions here are purely
elementwise (their gradients are the math worth writing out), the matrix products reuse
``linear``'s tested backward, and a sequence layer can project the input of all time steps
with one GEMM (and get W_ih's gradient with one) before stepping through time. gi and gh are
separate inputs rather than one sum because the GRU needs W_hn h + b_hn on its own, and for
the others it saves the extra op: the gradient of gi and of gh is then the same array.

Public functions (PyTorch's ``torch.rnn_tanh_cell``, ``rnn_relu_cell``, ``lstm_cell``,
``gru_cell``): ``input`` (N, H_in) or unbatched (H_in,), hidden states (N, H) or (H,).
"""
from __future__ import annotations

from .. import backend
from ..autograd import Function
from ..tensor import Tensor
from .activation import _sigmoid
from .linalg import linear
from ._utils import check_float, type_name


class RNNCellFunction(Function):
    """h' = act(gi + gh) with act = tanh or relu (the Elman RNN cell).

    Args (forward): gi, gh (..., H). Returns h' (..., H).

    Gradient: with a = gi + gh,
        tanh: da = gh' * (1 - h'^2);   relu: da = gh' * (h' > 0) (0 at a = 0, as PyTorch);
        dgi = dgh = da.
    """

    def __init__(self, nonlinearity):
        self.nonlinearity = nonlinearity

    def forward(self, gi, gh):
        xp = backend.xp_of(gi)
        a = gi + gh
        y = xp.tanh(a, out=a) if self.nonlinearity == "tanh" else xp.maximum(a, 0, out=a)
        self.save_for_backward(y)
        return y

    def backward(self, gy):
        y = self.saved[0]
        da = gy * (1.0 - y * y) if self.nonlinearity == "tanh" else gy * (y > 0)
        return (da if self.needs_input_grad[0] else None,
                da if self.needs_input_grad[1] else None)


class LSTMCellFunction(Function):
    """The LSTM cell's gates and state update, gates in PyTorch's order i, f, g, o:

        a = gi + gh = [a_i, a_f, a_g, a_o]            (..., 4H)
        i = sigma(a_i), f = sigma(a_f), g = tanh(a_g), o = sigma(a_o)
        c' = f * c + i * g
        h' = o * tanh(c')

    Args (forward): gi, gh (..., 4H), c (..., H). Returns (h', c'), each (..., H).

    Gradient: with gh', gc' the upstream gradients and t = tanh(c'),
        dc' = gc' + gh' * o * (1 - t^2)                (c' reaches the loss both ways)
        da_i = dc' * g * i (1 - i)          da_f = dc' * c * f (1 - f)
        da_g = dc' * i * (1 - g^2)          da_o = gh' * t * o (1 - o)
        dgi = dgh = da = [da_i, da_f, da_g, da_o],     dc = dc' * f.

    Reference: Hochreiter & Schmidhuber, Long Short-Term Memory, 1997; the forget gate from
    Gers, Schmidhuber & Cummins, Learning to Forget, 2000.
    """

    def forward(self, gi, gh, c):
        xp = backend.xp_of(gi)
        H = c.shape[-1]
        a = gi + gh                                                     # (..., 4H)
        g = xp.tanh(a[..., 2 * H:3 * H])
        act = _sigmoid(xp, a)                                           # i, f, (g), o
        act[..., 2 * H:3 * H] = g
        c2 = act[..., H:2 * H] * c + act[..., :H] * g
        t = xp.tanh(c2)
        h2 = act[..., 3 * H:] * t
        self.save_for_backward(act, c, t)
        return h2, c2

    def backward(self, gh2, gc2):
        act, c, t = self.saved
        H = c.shape[-1]
        i, f, g, o = (act[..., k * H:(k + 1) * H] for k in range(4))
        dc2 = gc2 + gh2 * o * (1.0 - t * t)
        da = backend.xp_of(act).empty_like(act)
        da[..., :H] = dc2 * g * i * (1.0 - i)
        da[..., H:2 * H] = dc2 * c * f * (1.0 - f)
        da[..., 2 * H:3 * H] = dc2 * i * (1.0 - g * g)
        da[..., 3 * H:] = gh2 * t * o * (1.0 - o)
        needs = self.needs_input_grad
        return (da if needs[0] else None, da if needs[1] else None,
                dc2 * f if needs[2] else None)


class GRUCellFunction(Function):
    """The GRU cell's gates and state update, PyTorch's formula and gate order r, z, n:

        gi = [gi_r, gi_z, gi_n],  gh = [gh_r, gh_z, gh_n]     (..., 3H), gh_n = W_hn h + b_hn
        r = sigma(gi_r + gh_r),   z = sigma(gi_z + gh_z)
        n = tanh(gi_n + r * gh_n)
        h' = (1 - z) * n + z * h

    Args (forward): gi, gh (..., 3H), h (..., H). Returns h' (..., H).

    Gradient: with gh' the upstream gradient,
        da_n = gh' * (1 - z) * (1 - n^2)              (n's pre-activation)
        da_z = gh' * (h - n) * z (1 - z)
        da_r = da_n * gh_n * r (1 - r)
        dgi = [da_r, da_z, da_n],   dgh = [da_r, da_z, da_n * r],   dh = gh' * z.

    Reference: Cho et al., Learning Phrase Representations using RNN Encoder-Decoder for
    Statistical Machine Translation, 2014 (PyTorch applies r after W_hn h + b_hn).
    """

    def forward(self, gi, gh, h):
        xp = backend.xp_of(gi)
        H = h.shape[-1]
        rz = _sigmoid(xp, gi[..., :2 * H] + gh[..., :2 * H])           # (..., 2H)
        hn = gh[..., 2 * H:]
        n = xp.tanh(gi[..., 2 * H:] + rz[..., :H] * hn)
        h2 = n + rz[..., H:] * (h - n)
        self.save_for_backward(rz, n, hn, h)
        return h2

    def backward(self, gy):
        rz, n, hn, h = self.saved
        H = h.shape[-1]
        r, z = rz[..., :H], rz[..., H:]
        dgi = backend.xp_of(gy).empty(h.shape[:-1] + (3 * H,), gy.dtype)
        dn = dgi[..., 2 * H:]
        dn[...] = gy * (1.0 - z) * (1.0 - n * n)
        dgi[..., :H] = dn * hn * r * (1.0 - r)
        dgi[..., H:2 * H] = gy * (h - n) * z * (1.0 - z)
        needs = self.needs_input_grad
        dgh = None
        if needs[1]:
            dgh = dgi.copy()
            dgh[..., 2 * H:] *= r
        return dgi if needs[0] else None, dgh, gy * z if needs[2] else None


GATES = {"RNN_TANH": 1, "RNN_RELU": 1, "LSTM": 4, "GRU": 3}


def cell_step(mode, x_gates, h, c, weight_hh, bias_hh):
    """One step of a cell from the input's gates ``x_gates`` = x W_ih^T + b_ih (unchecked:
    for the layers here, whose arguments are checked already). Returns (h', c'), c' None
    except for the LSTM."""
    gh = linear(h, weight_hh, bias_hh)
    if mode == "LSTM":
        return LSTMCellFunction()(x_gates, gh, c)
    if mode == "GRU":
        return GRUCellFunction()(x_gates, gh, h), None
    return RNNCellFunction("tanh" if mode == "RNN_TANH" else "relu")(x_gates, gh), None


def check_state(op, name, t, shape, like, what=""):
    """A hidden or cell state argument: a Tensor with ``like``'s dtype and device and the
    given shape (TypeError / ValueError naming ``op`` and ``name`` otherwise)."""
    if not isinstance(t, Tensor):
        raise TypeError(f"{op}: '{name}' must be a Tensor, got {type_name(t)}")
    if t.dtype != like.dtype:
        raise TypeError(f"{op}: '{name}' must have the input's dtype {like.dtype}, got "
                        f"{t.dtype}")
    if t.device != like.device:
        raise ValueError(f"{op}: '{name}' is on {t.device}, the input on {like.device}")
    if t.shape != tuple(shape):
        raise ValueError(f"{op}: '{name}' must have shape {tuple(shape)}{what}, got {t.shape}")
    return t


def _check_cell(op, mode, input, hx, weight_ih, weight_hh, bias_ih, bias_hh):
    """Validate a functional cell's arguments; return (h, c) (c None except for the LSTM)."""
    check_float(op, "input", input)
    if input.ndim not in (1, 2):
        raise ValueError(f"{op}: 'input' must be 2-D (N, H_in) or 1-D (H_in,) unbatched, got "
                         f"shape {input.shape}")
    G = GATES[mode]
    check_float(op, "weight_hh", weight_hh)
    if weight_hh.ndim != 2 or weight_hh.shape[0] != G * weight_hh.shape[1]:
        raise ValueError(f"{op}: 'weight_hh' must have shape ({G} * hidden_size, hidden_size),"
                         f" got {weight_hh.shape}")
    H = weight_hh.shape[1]
    for name, w, shape in (("weight_ih", weight_ih, (G * H, input.shape[-1])),
                           ("weight_hh", weight_hh, (G * H, H)),
                           ("bias_ih", bias_ih, (G * H,)), ("bias_hh", bias_hh, (G * H,))):
        if w is not None or name.startswith("weight"):
            check_state(op, name, w, shape, input, " (from weight_hh and the input)")
    if mode == "LSTM":
        if not isinstance(hx, (tuple, list)) or len(hx) != 2:
            raise TypeError(f"{op}: 'hx' must be a pair (h, c) of Tensors, got "
                            f"{type_name(hx)}")
        pair = [("hx[0]", hx[0]), ("hx[1]", hx[1])]
    else:
        pair = [("hx", hx)]
    for name, t in pair:
        check_state(op, name, t, input.shape[:-1] + (H,), input, " (input's batch, hidden)")
    return hx if mode == "LSTM" else (hx, None)


def _cell(op, mode, input, hx, weight_ih, weight_hh, bias_ih, bias_hh):
    h, c = _check_cell(op, mode, input, hx, weight_ih, weight_hh, bias_ih, bias_hh)
    h2, c2 = cell_step(mode, linear(input, weight_ih, bias_ih), h, c, weight_hh, bias_hh)
    return h2 if c2 is None else (h2, c2)


def rnn_tanh_cell(input, hx, weight_ih, weight_hh, bias_ih=None, bias_hh=None):
    """h' = tanh(x W_ih^T + b_ih + h W_hh^T + b_hh).

    Args:
        input: x, (N, H_in) or (H_in,).
        hx: h, (N, H) or (H,).
        weight_ih: (H, H_in); weight_hh: (H, H); bias_ih, bias_hh: (H,) or None.

    Returns:
        h' shaped like hx. Gradient: see ``RNNCellFunction``.
    """
    return _cell("rnn_tanh_cell", "RNN_TANH", input, hx, weight_ih, weight_hh, bias_ih,
                 bias_hh)


def rnn_relu_cell(input, hx, weight_ih, weight_hh, bias_ih=None, bias_hh=None):
    """h' = relu(x W_ih^T + b_ih + h W_hh^T + b_hh); arguments as ``rnn_tanh_cell``."""
    return _cell("rnn_relu_cell", "RNN_RELU", input, hx, weight_ih, weight_hh, bias_ih,
                 bias_hh)


def lstm_cell(input, hx, weight_ih, weight_hh, bias_ih=None, bias_hh=None):
    """One LSTM step: gates [i, f, g, o] = x W_ih^T + b_ih + h W_hh^T + b_hh, then
    c' = sigma(f) * c + sigma(i) * tanh(g), h' = sigma(o) * tanh(c').

    Args:
        input: x, (N, H_in) or (H_in,).
        hx: the pair (h, c), each (N, H) or (H,).
        weight_ih: (4H, H_in); weight_hh: (4H, H); bias_ih, bias_hh: (4H,) or None.

    Returns:
        (h', c'), each shaped like h. Gradient: see ``LSTMCellFunction``.
    """
    return _cell("lstm_cell", "LSTM", input, hx, weight_ih, weight_hh, bias_ih, bias_hh)


def gru_cell(input, hx, weight_ih, weight_hh, bias_ih=None, bias_hh=None):
    """One GRU step: r = sigma(W_ir x + b_ir + W_hr h + b_hr), z likewise,
    n = tanh(W_in x + b_in + r * (W_hn h + b_hn)), h' = (1 - z) * n + z * h.

    Args:
        input: x, (N, H_in) or (H_in,).
        hx: h, (N, H) or (H,).
        weight_ih: (3H, H_in), rows r, z, n; weight_hh: (3H, H); bias_ih, bias_hh: (3H,) or
            None.

    Returns:
        h' shaped like hx. Gradient: see ``GRUCellFunction``.
    """
    return _cell("gru_cell", "GRU", input, hx, weight_ih, weight_hh, bias_ih, bias_hh)
