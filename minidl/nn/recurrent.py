"""Recurrent layers with PyTorch's signatures, parameter names, shapes and initialization:
RNN, LSTM, GRU (multi-layer, bidirectional, batch_first, unbatched input) and their cells.

Each time step is one fused cell Function (``functional.recurrent``) after a ``linear`` of the
hidden state; the input's gates of all steps of a layer come from one ``linear`` before the
loop. PackedSequence (variable lengths) is not supported: inputs are padded Tensors.
"""
from __future__ import annotations

import math
import warnings

import numpy as np

from .. import functional as F
from .._checks import check_bool, check_int, check_number
from ..functional.recurrent import GATES, cell_step, check_state
from ..functional._utils import type_name
from ..tensor import Tensor
from . import init
from .module import Module, Parameter


def _check_input(op, input, sizes, size, weight):
    """The input Tensor: floating point, weight's dtype and device, ndim and feature count
    from ``sizes`` = {ndim: layout} and ``size`` (input_size)."""
    if not isinstance(input, Tensor):
        raise TypeError(f"{op}: 'input' must be a Tensor, got {type_name(input)} (no "
                        "PackedSequence support: pass a padded Tensor)")
    if input.dtype != weight.dtype:
        raise TypeError(f"{op}: 'input' must have the parameters' dtype {weight.dtype}, got "
                        f"{input.dtype} (convert the input, or the module with .to(dtype))")
    if input.device != weight.device:
        raise ValueError(f"{op}: 'input' is on {input.device}, the parameters on "
                         f"{weight.device}")
    if input.ndim not in sizes:
        layouts = " or ".join(f"{n}-D {s}" for n, s in sizes.items())
        raise ValueError(f"{op}: 'input' must be {layouts}, got shape {input.shape}")
    if input.shape[-1] != size:
        raise ValueError(f"{op}: 'input' must have input_size={size} features in its last "
                         f"dimension, got shape {input.shape}")




def _check_nonlinearity(op, nonlinearity):
    if nonlinearity not in ("tanh", "relu"):
        raise ValueError(f"{op}: 'nonlinearity' must be 'tanh' or 'relu', got "
                         f"{nonlinearity!r}")
    return "RNN_TANH" if nonlinearity == "tanh" else "RNN_RELU"


class _Recurrent(Module):
    """What the sequence layers and the cells share: the checked sizes, the mode ("LSTM",
    "GRU", "RNN_TANH", "RNN_RELU") and the initialization."""

    def __init__(self, mode, input_size, hidden_size, bias):
        super().__init__()
        op = self._op = type(self).__name__
        self.mode = mode
        self.input_size = check_int(op, "input_size", input_size, 1)
        self.hidden_size = check_int(op, "hidden_size", hidden_size, 1)
        self.bias = check_bool(op, "bias", bias)

    def reset_parameters(self):
        """Every parameter ~ U(-1/sqrt(hidden_size), 1/sqrt(hidden_size)), in order."""
        bound = 1.0 / math.sqrt(self.hidden_size)
        for p in self.parameters():
            init.uniform_(p, -bound, bound)


class RNNBase(_Recurrent):
    """The shared body of RNN, LSTM and GRU: a stack of ``num_layers`` layers, each one or
    two (bidirectional) directions of a cell run over the sequence.

    Parameters, per layer k and direction (suffix "" or "_reverse"), registered in PyTorch's
    order: ``weight_ih_l{k}`` (G * hidden_size, input features of layer k),
    ``weight_hh_l{k}`` (G * hidden_size, H_out), ``bias_ih_l{k}``, ``bias_hh_l{k}``
    (G * hidden_size,) when ``bias``, and ``weight_hr_l{k}`` (proj_size, hidden_size) for an
    LSTM with proj_size > 0; G = 1, 4, 3 for RNN, LSTM, GRU. Layer 0 reads input_size
    features, the others num_directions * H_out, H_out = proj_size or hidden_size. All are
    initialized U(-1/sqrt(hidden_size), 1/sqrt(hidden_size)) in that order, as in PyTorch.
    """

    def __init__(self, mode, input_size, hidden_size, num_layers=1, bias=True,
                 batch_first=False, dropout=0.0, bidirectional=False, proj_size=0,
                 dtype=np.float32):
        super().__init__(mode, input_size, hidden_size, bias)
        op = self._op
        self.num_layers = check_int(op, "num_layers", num_layers, 1)
        self.batch_first = check_bool(op, "batch_first", batch_first)
        self.dropout = check_number(op, "dropout", dropout, 0.0, 1.0)
        self.bidirectional = check_bool(op, "bidirectional", bidirectional)
        self.proj_size = check_int(op, "proj_size", proj_size, 0)
        if self.proj_size >= self.hidden_size:
            raise ValueError(f"{op}: 'proj_size' must be smaller than hidden_size="
                             f"{self.hidden_size}, got {self.proj_size}")
        if self.dropout > 0 and self.num_layers == 1:
            warnings.warn(f"{op}: dropout is applied between recurrent layers (not after the "
                          f"last), so dropout={self.dropout} with num_layers=1 has no effect",
                          stacklevel=3)
        H, G, D = self.hidden_size, GATES[mode], self._num_directions
        H_out = self.proj_size or H
        for layer in range(self.num_layers):
            for suffix in ("", "_reverse")[:D]:
                n_in = self.input_size if layer == 0 else D * H_out
                shapes = [("weight_ih", (G * H, n_in)), ("weight_hh", (G * H, H_out))]
                if self.bias:
                    shapes += [("bias_ih", (G * H,)), ("bias_hh", (G * H,))]
                if self.proj_size:
                    shapes.append(("weight_hr", (self.proj_size, H)))
                for name, shape in shapes:
                    full = f"{name}_l{layer}{suffix}"
                    setattr(self, full, Parameter(np.empty(shape, dtype)))
        self.reset_parameters()

    @property
    def _num_directions(self):
        return 2 if self.bidirectional else 1

    def _layer_params(self, layer, reverse):
        suffix = f"_l{layer}" + ("_reverse" if reverse else "")
        get = self._parameters.get
        return (get("weight_ih" + suffix), get("weight_hh" + suffix), get("bias_ih" + suffix),
                get("bias_hh" + suffix), get("weight_hr" + suffix))

    def _state_shapes(self, batched, N):
        """The shapes of h_0 and c_0 (c_0's only used by the LSTM)."""
        lead = (self.num_layers * self._num_directions,) + ((N,) if batched else ())
        return lead + (self.proj_size or self.hidden_size,), lead + (self.hidden_size,)

    def _check_hx(self, hx, like, batched, N):
        """(h_0, c_0) as Tensors of ``like``'s dtype and device (zeros when hx is None)."""
        h_shape, c_shape = self._state_shapes(batched, N)
        if hx is None:
            h0 = like.new_zeros(h_shape)
            return h0, (like.new_zeros(c_shape) if self.mode == "LSTM" else None)
        what = " (num_layers * num_directions" + (", N" if batched else "")
        if self.mode == "LSTM":
            if not isinstance(hx, (tuple, list)) or len(hx) != 2:
                raise TypeError(f"{self._op}: 'hx' must be None or a pair (h_0, c_0) of "
                                f"Tensors, got {type_name(hx)}")
            h0 = check_state(self._op, "h_0", hx[0], h_shape, like, what + ", H_out)")
            c0 = check_state(self._op, "c_0", hx[1], c_shape, like, what + ", hidden_size)")
            return h0, c0
        return check_state(self._op, "hx", hx, h_shape, like, what + ", hidden_size)"), None

    def _direction(self, x, h, c, layer, reverse):
        """One direction of one layer over x (L, N, features): (outputs (L, N, H_out), h_n,
        c_n)."""
        w_ih, w_hh, b_ih, b_hh, w_hr = self._layer_params(layer, reverse)
        steps = F.unbind(F.linear(x, w_ih, b_ih), 0)                   # L x (N, G * H)
        outs = [None] * len(steps)
        for t in (reversed(range(len(steps))) if reverse else range(len(steps))):
            h, c = cell_step(self.mode, steps[t], h, c, w_hh, b_hh)
            if w_hr is not None:
                h = F.linear(h, w_hr)
            outs[t] = h
        return F.stack(outs, 0), h, c

    def forward(self, input, hx=None):
        """Run the stack over a sequence.

        Args:
            input: (L, N, H_in), (N, L, H_in) with batch_first, or (L, H_in) unbatched.
            hx: the initial state h_0 (a pair (h_0, c_0) for the LSTM), or None for zeros:
                h_0 (num_layers * num_directions, N, H_out), c_0 (num_layers *
                num_directions, N, hidden_size); without N for unbatched input.

        Returns:
            (output, h_n) ((output, (h_n, c_n)) for the LSTM): output (L, N, num_directions *
            H_out) (batch_first: (N, L, ...), unbatched: (L, ...)), the last layer's hidden
            states, both directions concatenated; h_n, c_n shaped as h_0, c_0, the state after
            the last step of each layer and direction (the reverse direction's after step 0).
        """
        w = self.weight_ih_l0
        layout = "(N, L, H_in)" if self.batch_first else "(L, N, H_in)"
        _check_input(self._op, input, {3: layout + " batched", 2: "(L, H_in) unbatched"},
                     self.input_size, w)
        batched = input.ndim == 3
        if batched and self.batch_first:
            input = F.transpose(input, 0, 1)
        elif not batched:
            input = F.unsqueeze(input, 1)
        L, N = input.shape[:2]
        if L == 0:
            raise ValueError(f"{self._op}: 'input' must have at least one time step, got "
                             f"shape {input.shape}")
        h0, c0 = self._check_hx(hx, input, batched, N)
        if not batched:
            h0 = F.unsqueeze(h0, 1)
            c0 = None if c0 is None else F.unsqueeze(c0, 1)
        h0s = F.unbind(h0, 0)
        c0s = F.unbind(c0, 0) if c0 is not None else [None] * len(h0s)
        D = self._num_directions
        h_n, c_n = [], []
        x = input
        for layer in range(self.num_layers):
            outs = []
            for d in range(D):
                k = layer * D + d
                out, h, c = self._direction(x, h0s[k], c0s[k], layer, d == 1)
                outs.append(out)
                h_n.append(h)
                c_n.append(c)
            x = outs[0] if D == 1 else F.cat(outs, 2)
            if self.training and self.dropout > 0 and layer < self.num_layers - 1:
                x = F.mul(x, 0.0) if self.dropout == 1 else F.dropout(x, self.dropout)
        h_n = F.stack(h_n, 0)
        if batched and self.batch_first:
            x = F.transpose(x, 0, 1)
        elif not batched:
            x, h_n = F.squeeze(x, 1), F.squeeze(h_n, 1)
        if self.mode != "LSTM":
            return x, h_n
        c_n = F.stack(c_n, 0)
        return x, (h_n, c_n if batched else F.squeeze(c_n, 1))

    def extra_repr(self):
        s = f"{self.input_size}, {self.hidden_size}"
        if self.proj_size:
            s += f", proj_size={self.proj_size}"
        if self.num_layers != 1:
            s += f", num_layers={self.num_layers}"
        if self.mode == "RNN_RELU":
            s += ", nonlinearity='relu'"
        for name, default in (("bias", True), ("batch_first", False), ("dropout", 0.0),
                              ("bidirectional", False)):
            if getattr(self, name) != default:
                s += f", {name}={getattr(self, name)}"
        return s


class RNN(RNNBase):
    """Elman RNN: h_t = act(x_t W_ih^T + b_ih + h_{t-1} W_hh^T + b_hh), act = tanh or relu,
    per layer and direction; layer k > 0 reads the previous layer's outputs (after dropout
    while training, when ``dropout`` > 0).

    Args:
        input_size, hidden_size: features of x_t and h_t.
        num_layers: stacked layers. nonlinearity: 'tanh' or 'relu'. bias: b_ih and b_hh.
        batch_first: input and output (N, L, features) instead of (L, N, features).
        dropout: probability in [0, 1] of dropout on the outputs of every layer but the last.
        bidirectional: a second direction over the reversed sequence, outputs concatenated.
        dtype: parameter dtype.

    Parameters and forward: see ``RNNBase``. Gradient: ``RNNCellFunction`` per step.
    """

    def __init__(self, input_size, hidden_size, num_layers=1, nonlinearity="tanh", bias=True,
                 batch_first=False, dropout=0.0, bidirectional=False, dtype=np.float32):
        super().__init__(_check_nonlinearity("RNN", nonlinearity), input_size, hidden_size,
                         num_layers, bias, batch_first, dropout, bidirectional, 0, dtype)
        self.nonlinearity = nonlinearity


class LSTM(RNNBase):
    """Long short-term memory, per layer and direction and time step t:

        [i, f, g, o] = x_t W_ih^T + b_ih + h_{t-1} W_hh^T + b_hh    (then sigma, sigma,
        c_t = sigma(f) * c_{t-1} + sigma(i) * tanh(g)                  tanh, sigma)
        h_t = sigma(o) * tanh(c_t)            (then h_t W_hr^T when proj_size > 0)

    Args: as ``RNN`` (no nonlinearity), plus ``proj_size``: when > 0 (and < hidden_size),
    h_t is projected to proj_size features by ``weight_hr_l{k}`` (Sak et al., 2014).

    Forward: ``lstm(input, (h_0, c_0))`` returns ``(output, (h_n, c_n))``; see ``RNNBase``.
    Gradient: ``LSTMCellFunction`` per step.

    Reference: Hochreiter & Schmidhuber, Long Short-Term Memory, 1997.
    """

    def __init__(self, input_size, hidden_size, num_layers=1, bias=True, batch_first=False,
                 dropout=0.0, bidirectional=False, proj_size=0, dtype=np.float32):
        super().__init__("LSTM", input_size, hidden_size, num_layers, bias, batch_first,
                         dropout, bidirectional, proj_size, dtype)


class GRU(RNNBase):
    """Gated recurrent unit, per layer and direction and time step t (PyTorch's formula):

        r = sigma(W_ir x_t + b_ir + W_hr h + b_hr),  z = sigma(W_iz x_t + b_iz + W_hz h + b_hz)
        n = tanh(W_in x_t + b_in + r * (W_hn h + b_hn)),  h_t = (1 - z) * n + z * h

    with h = h_{t-1}; the rows of weight_ih/weight_hh are the r, z, n blocks. Args as ``RNN``
    (no nonlinearity). Forward: see ``RNNBase``. Gradient: ``GRUCellFunction`` per step.

    Reference: Cho et al., Learning Phrase Representations using RNN Encoder-Decoder for
    Statistical Machine Translation, 2014.
    """

    def __init__(self, input_size, hidden_size, num_layers=1, bias=True, batch_first=False,
                 dropout=0.0, bidirectional=False, dtype=np.float32):
        super().__init__("GRU", input_size, hidden_size, num_layers, bias, batch_first,
                         dropout, bidirectional, 0, dtype)


class RNNCellBase(_Recurrent):
    """One cell step with parameters ``weight_ih`` (G * hidden_size, input_size),
    ``weight_hh`` (G * hidden_size, hidden_size), ``bias_ih``, ``bias_hh`` (G * hidden_size,)
    (PyTorch's names and order), initialized U(-1/sqrt(hidden_size), 1/sqrt(hidden_size)).
    """

    def __init__(self, mode, input_size, hidden_size, bias, dtype):
        super().__init__(mode, input_size, hidden_size, bias)
        G, H = GATES[mode], self.hidden_size
        self.weight_ih = Parameter(np.empty((G * H, self.input_size), dtype))
        self.weight_hh = Parameter(np.empty((G * H, H), dtype))
        if self.bias:
            self.bias_ih = Parameter(np.empty((G * H,), dtype))
            self.bias_hh = Parameter(np.empty((G * H,), dtype))
        else:
            self.register_parameter("bias_ih", None)
            self.register_parameter("bias_hh", None)
        self.reset_parameters()

    def forward(self, input, hx=None):
        """One step.

        Args:
            input: (N, input_size) or unbatched (input_size,).
            hx: h (N, hidden_size) or (hidden_size,) (the pair (h, c) for LSTMCell), or None
                for zeros.

        Returns:
            h' (the pair (h', c') for LSTMCell), shaped as h.
        """
        _check_input(self._op, input, {2: "(N, input_size) batched",
                                       1: "(input_size,) unbatched"},
                     self.input_size, self.weight_ih)
        shape = input.shape[:-1] + (self.hidden_size,)
        what = " (input's batch, hidden_size)"
        if hx is None:
            h = input.new_zeros(shape)
            c = input.new_zeros(shape) if self.mode == "LSTM" else None
        elif self.mode == "LSTM":
            if not isinstance(hx, (tuple, list)) or len(hx) != 2:
                raise TypeError(f"{self._op}: 'hx' must be None or a pair (h, c) of Tensors, "
                                f"got {type_name(hx)}")
            h = check_state(self._op, "hx[0]", hx[0], shape, input, what)
            c = check_state(self._op, "hx[1]", hx[1], shape, input, what)
        else:
            h, c = check_state(self._op, "hx", hx, shape, input, what), None
        gi = F.linear(input, self.weight_ih, self.bias_ih)
        h2, c2 = cell_step(self.mode, gi, h, c, self.weight_hh, self.bias_hh)
        return (h2, c2) if self.mode == "LSTM" else h2

    def extra_repr(self):
        s = f"{self.input_size}, {self.hidden_size}"
        if not self.bias:
            s += ", bias=False"
        if self.mode == "RNN_RELU":
            s += ", nonlinearity='relu'"
        return s


class RNNCell(RNNCellBase):
    """h' = act(x W_ih^T + b_ih + h W_hh^T + b_hh), act = tanh or relu (``nonlinearity``).
    Forward: see ``RNNCellBase``. Gradient: ``RNNCellFunction``."""

    def __init__(self, input_size, hidden_size, bias=True, nonlinearity="tanh",
                 dtype=np.float32):
        super().__init__(_check_nonlinearity("RNNCell", nonlinearity), input_size,
                         hidden_size, bias, dtype)
        self.nonlinearity = nonlinearity


class LSTMCell(RNNCellBase):
    """One LSTM step: [i, f, g, o] = x W_ih^T + b_ih + h W_hh^T + b_hh,
    c' = sigma(f) * c + sigma(i) * tanh(g), h' = sigma(o) * tanh(c'); returns (h', c').
    Forward: see ``RNNCellBase``. Gradient: ``LSTMCellFunction``."""

    def __init__(self, input_size, hidden_size, bias=True, dtype=np.float32):
        super().__init__("LSTM", input_size, hidden_size, bias, dtype)


class GRUCell(RNNCellBase):
    """One GRU step: r = sigma(W_ir x + b_ir + W_hr h + b_hr), z likewise,
    n = tanh(W_in x + b_in + r * (W_hn h + b_hn)), h' = (1 - z) * n + z * h.
    Forward: see ``RNNCellBase``. Gradient: ``GRUCellFunction``."""

    def __init__(self, input_size, hidden_size, bias=True, dtype=np.float32):
        super().__init__("GRU", input_size, hidden_size, bias, dtype)
