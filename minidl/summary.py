"""What a model is made of: one forward pass, a table of every module call (output shape,
parameters, multiply-accumulates) and the totals, in the manner of the torchinfo package.

    import minidl, nets
    s = minidl.summary(nets.get_model("resnet20"), input_size=(1, 3, 32, 32))
    print(s)                                       # the table and the totals
    s.total_params, s.trainable_params, s.total_macs
    [(r.name, r.output_shape, r.params, r.macs) for r in s.rows]

``minidl.summary`` is the function; this module stays importable by its full name
(``from minidl.summary import ModelSummary, Row``).
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from . import backend
from ._checks import check_int
from .autograd import no_grad
from .nn import Conv2d, ConvTranspose2d, Linear, Module, MultiheadAttention
from .nn.module import module_device
from .nn.recurrent import RNNBase, RNNCellBase
from .tensor import Tensor

__all__ = ["summary", "ModelSummary", "Row"]

_OP = "summary"
_MB = 1e6      # torchinfo's megabyte (10^6 bytes, not MiB)


@dataclass
class Row:
    """One module call shown in the table.

    Attributes:
        name: the module's dotted attribute path in the model (``"features.stem.conv"``; ``""``
            for the model itself); a module reachable along several paths has its first.
        type: the module's class name.
        depth: how deeply the call is nested in other module calls (the model's own call: 0).
        output_shape: a tuple of ints for a Tensor output; for a tuple, list or dict output a
            tuple with one entry per element (a shape, or None for a non-tensor); None when
            the output holds no tensor.
        params: parameter elements counted at this call: the module's own parameters at its
            first call (0 at later calls: ``recursive``), each shared parameter only at the
            first call that owns it; a row at the depth limit adds those of the calls nested
            in it. So the ``params`` of the rows add up to the total of every parameter the
            forward pass reached, at any depth.
        trainable_params: the part of ``params`` with ``requires_grad``.
        macs: multiply-accumulates of this call's own computation (see ``summary``), plus,
            at the depth limit, those of the calls nested in it; they add up to ``total_macs``.
        recursive: this module was already called earlier in the pass.
    """

    name: str
    type: str
    depth: int
    output_shape: object
    params: int
    trainable_params: int
    macs: int
    recursive: bool


class _Call:
    """One module call, recorded by the hooks (all of them, whatever the depth)."""

    def __init__(self, module, name, depth, parent, recursive, params, trainable):
        self.module, self.name, self.depth, self.parent = module, name, depth, parent
        self.recursive, self.params, self.trainable = recursive, params, trainable
        self.output_shape, self.output_bytes, self.macs = None, 0, 0
        self.leaf = True            # no module call nested in it
        self.sub = [params, trainable, 0]       # with nested calls: params, trainable, macs


class ModelSummary:
    """The result of ``summary``: ``str()`` is the table, the numbers are attributes.

    Attributes:
        rows: the ``Row`` of every module call up to ``depth`` levels deep, in call order.
        total_params, trainable_params, non_trainable_params: parameter elements of the
            model (``model.parameters()``: a shared parameter counted once), by requires_grad.
        uncalled_params: the part of ``total_params`` in modules the forward pass never
            called (counted in the totals, in no row).
        total_macs: multiply-accumulates of the whole forward pass at the input's batch size
            (every call, whatever ``depth`` shows).
        input_shapes: the shape of each input tensor.
        input_bytes: their size in bytes.
        forward_backward_bytes: twice the bytes of the outputs of every leaf call (a call
            with no module call inside it): each output is kept for backward, and backward
            makes a gradient of the same size. An estimate: work done outside modules, or in
            place, is not seen.
        param_bytes: bytes of the model's parameters (buffers such as running statistics are
            not counted).
        depth: the depth the table shows.
    """

    def __init__(self, model_name, rows, depth, *, total_params, trainable_params,
                 uncalled_params, total_macs, input_shapes, input_bytes,
                 forward_backward_bytes, param_bytes):
        self.model_name, self.rows, self.depth = model_name, rows, depth
        self.total_params, self.trainable_params = total_params, trainable_params
        self.uncalled_params, self.total_macs = uncalled_params, total_macs
        self.input_shapes, self.input_bytes = input_shapes, input_bytes
        self.forward_backward_bytes, self.param_bytes = forward_backward_bytes, param_bytes

    @property
    def non_trainable_params(self):
        return self.total_params - self.trainable_params

    @property
    def total_bytes(self):
        """Input + forward/backward + parameter bytes (torchinfo's "Estimated Total Size")."""
        return self.input_bytes + self.forward_backward_bytes + self.param_bytes

    def __repr__(self):
        return (f"ModelSummary({self.model_name}: {self.total_params:,} params, "
                f"{self.total_macs:,} MACs, {len(self.rows)} rows)")

    def __str__(self):
        head = ("Layer (type)", "Output Shape", "Param #", "MACs")
        body = [(label, _fmt_shape(r.output_shape), _fmt_params(r), _fmt_int(r.macs))
                for r, label in zip(self.rows, _labels(self.rows))]
        widths = [max(len(line[c]) for line in [head] + body) + 2 for c in range(4)]
        widths[0] = max(widths[0], 30)

        def line(cells):
            return (cells[0].ljust(widths[0]) + cells[1].ljust(widths[1])
                    + cells[2].rjust(widths[2]) + cells[3].rjust(widths[3]))
        rule = "=" * sum(widths)
        shapes = ", ".join(_fmt_shape(s) for s in self.input_shapes) or "--"
        out = [rule, line(head), rule] + [line(b) for b in body] + [rule]
        out += [f"Total params: {self.total_params:,}",
                f"Trainable params: {self.trainable_params:,}",
                f"Non-trainable params: {self.non_trainable_params:,}"]
        if self.uncalled_params:
            out.append(f"Params in modules forward never called: {self.uncalled_params:,}")
        out += [f"Total MACs: {self.total_macs:,} ({self.total_macs / 1e6:.2f} M), input "
                f"{shapes}", rule,
                f"Input size (MB): {self.input_bytes / _MB:.2f}",
                f"Forward/backward pass size (MB): {self.forward_backward_bytes / _MB:.2f}",
                f"Params size (MB): {self.param_bytes / _MB:.2f}",
                f"Estimated Total Size (MB): {self.total_bytes / _MB:.2f}", rule]
        return "\n".join(out)


def summary(model, input_size=None, input_data=None, depth=3, batch_dim=None, device=None,
            dtype=None):
    """Run one forward pass of ``model`` and tabulate every module call in it.

    The pass runs without recording gradients (no graph, no ``.grad``), with the model in
    eval mode; each module's ``training`` flag is restored afterwards, parameters are left
    untouched. Hooks on every module of ``model.named_modules()`` record the calls; modules
    that are not registered in the model (made inside ``forward``) are not seen.

    Args:
        model: a ``minidl.nn.Module``.
        input_size: the shape of the input, a tuple of positive ints (a list works too), or a
            list of such shapes for a model whose forward takes several inputs. The inputs are
            standard-normal draws (from a private generator: the global RNG is not touched),
            zeros for an integer ``dtype``. Give exactly one of input_size and input_data.
        input_data: the input itself: a Tensor, a list or tuple of positional arguments, or a
            dict of keyword arguments for forward.
        depth: show calls nested up to this deep (0: the model's row only). The totals count
            every call whatever the depth; a row at the limit includes the calls inside it.
        batch_dim: None: the shapes (and input_data) include the batch axis. An int: insert
            a batch axis of size 1 at that position of every input.
        device: where the inputs are made (input_data is moved there); default: the device of
            the model's first parameter or buffer, else the CPU. The model is not moved.
        dtype: dtype of the inputs made from ``input_size``, one for all or a list with one
            per input; default: the dtype of the model's first floating-point parameter, else
            float32.

    Returns:
        A ``ModelSummary``: ``str()`` is the table, ``rows`` / ``total_params`` /
        ``trainable_params`` / ``total_macs`` the numbers.

    Rows are named by attribute path (``Row.name``, the full dotted path), and the table
    shows each one relative to the row it is nested in, with its class: ``conv1 (Conv2d)``.
    The MACs column is the multiply-accumulates of the call at the input's batch size; one
    MAC is one a*b+c (so FLOPs ~ 2 x MACs). With N the batch size (the product of the
    leading axes for Linear) and, as in torchinfo, a bias add counted as one MAC per output
    element:

    - Conv2d: N * OH * OW * C_out * (C_in / groups) * KH * KW, + N * C_out * OH * OW with a
      bias. That is torchinfo's (weight + bias elements) x output positions.
    - ConvTranspose2d: N * H * W * C_in * (C_out / groups) * KH * KW (every input pixel meets
      every kernel tap once; H, W the input's), + N * C_out * OH * OW with a bias.
      (torchinfo multiplies by the output positions instead: about stride^2 times more.)
    - Linear: rows * in_features * out_features, + rows * out_features with a bias; rows is
      the product of all axes but the last (torchinfo uses only the first axis).
    - MultiheadAttention: the query, key and value projections, N*L*E*E + N*S*kdim*E +
      N*S*vdim*E (+ N*(L + 2S)*E bias adds), plus the two attention products, q k^T and
      weights @ v, N*L*S*E each (summed over the heads). The output projection is the
      ``out_proj`` Linear, a call (and row) of its own. Softmax and scaling: 0.
    - RNN, LSTM, GRU and their cells: each weight matrix meets every step of every sequence
      once, each bias adds once: N * L * (sum of all parameter elements), with N * L the
      steps of all sequences (N for a cell), for every layer and direction. The gates'
      elementwise math counts 0, as activations do.
    - Everything else counts 0. Zero by convention: BatchNorm*, LayerNorm, GroupNorm,
      InstanceNorm2d (elementwise, memory-bound; torchinfo's rule gives a norm layer only
      N x its 2C parameters, a rounding error next to the convolutions), Embedding (a
      lookup), pooling, activations, dropout, padding, upsampling, reshapes and containers
      (their children count). Not counted at all, because no rule knows them: any other
      module with parameters (PReLU, user-defined layers) and every op a forward calls
      directly rather than through a module (``F.linear`` in a custom layer, residual adds,
      ``x @ W``): their MACs are missing from the totals.
    """
    if not isinstance(model, Module):
        raise TypeError(f"{_OP}: 'model' must be a minidl.nn.Module, got "
                        f"{type(model).__name__}")
    depth = check_int(_OP, "depth", depth, 0)
    if (input_size is None) == (input_data is None):
        got = "neither" if input_size is None else "both"
        raise ValueError(f"{_OP}: give exactly one of 'input_size' and 'input_data', "
                         f"got {got}")
    if batch_dim is not None:
        batch_dim = check_int(_OP, "batch_dim", batch_dim, 0, or_none=True)
    dev = _device(model, device)
    if input_size is not None:
        args, kwargs = _make_inputs(model, _check_sizes(input_size), batch_dim, dev, dtype), {}
    else:
        args, kwargs = _check_data(input_data, batch_dim, device)
    tensors = [t for t in list(args) + list(kwargs.values()) if isinstance(t, Tensor)]
    calls = _run(model, args, kwargs)
    return _build(model, calls, depth, tensors)


# -- inputs ------------------------------------------------------------------------------------
def _device(model, device):
    return backend.get_device(device) if device is not None else module_device(model)


def _check_sizes(input_size):
    """input_size as a list of shapes (tuples of positive ints)."""
    what = ("'input_size' must be a tuple of positive ints (or a list of such tuples, one per "
            "input)")
    if not isinstance(input_size, (tuple, list)):
        raise TypeError(f"{_OP}: {what}, got {type(input_size).__name__} {input_size!r}")
    several = any(isinstance(s, (tuple, list)) for s in input_size)
    shapes = list(input_size) if several else [input_size]
    for shape in shapes:
        if not isinstance(shape, (tuple, list)):
            raise TypeError(f"{_OP}: {what}, got {type(shape).__name__} {shape!r} in "
                            f"{input_size!r}")
        if not shape:
            raise ValueError(f"{_OP}: {what}, got an empty shape in {input_size!r}")
        for v in shape:
            if isinstance(v, bool) or not isinstance(v, (int, np.integer)):
                raise TypeError(f"{_OP}: {what}, got {type(v).__name__} {v!r} in "
                                f"{input_size!r}")
            if v < 1:
                raise ValueError(f"{_OP}: {what}, got {int(v)} in {input_size!r}")
    return [tuple(int(v) for v in s) for s in shapes]


def _make_inputs(model, shapes, batch_dim, dev, dtype):
    dtypes = list(dtype) if isinstance(dtype, (list, tuple)) else [dtype] * len(shapes)
    if len(dtypes) != len(shapes):
        raise ValueError(f"{_OP}: 'dtype' lists {len(dtypes)} dtypes for {len(shapes)} "
                         "input(s); give one for all, or one per input")
    default = next((p.dtype for p in model.parameters() if p.dtype.kind == "f"),
                   np.dtype(np.float32))
    rng = np.random.default_rng(0)
    inputs = []
    for shape, dt in zip(shapes, dtypes):
        try:
            dt = default if dt is None else np.dtype(dt)
        except TypeError:
            dt = np.dtype(object)
        if dt.kind not in "biuf":
            raise TypeError(f"{_OP}: 'dtype' must be a numeric dtype (float32, int64, ...), "
                            f"got {dtypes[len(inputs)]!r}")
        if batch_dim is not None:
            _check_batch_dim(batch_dim, len(shape))
            shape = shape[:batch_dim] + (1,) + shape[batch_dim:]
        if dt.kind == "f":
            arr = rng.standard_normal(shape).astype(dt)
        else:
            arr = np.zeros(shape, dt)
        inputs.append(Tensor(backend.to_device(arr, dev)))
    return tuple(inputs)


def _check_batch_dim(batch_dim, ndim):
    if batch_dim > ndim:
        raise ValueError(f"{_OP}: 'batch_dim' must be in 0..{ndim} for an input of {ndim} "
                         f"dimension(s), got {batch_dim}")


def _check_data(input_data, batch_dim, device):
    """input_data as (args, kwargs), with the batch axis added and moved to ``device``."""
    if isinstance(input_data, Tensor):
        args, kwargs = (input_data,), {}
    elif isinstance(input_data, (list, tuple)):
        args, kwargs = tuple(input_data), {}
    elif isinstance(input_data, dict):
        args, kwargs = (), dict(input_data)
    else:
        raise TypeError(f"{_OP}: 'input_data' must be a Tensor, a list or tuple of forward's "
                        f"arguments or a dict of keyword arguments, got "
                        f"{type(input_data).__name__}")

    def prepare(x):
        if not isinstance(x, Tensor):
            return x
        if batch_dim is not None:
            _check_batch_dim(batch_dim, x.ndim)
            x = Tensor(backend.xp_of(x.data).expand_dims(x.data, batch_dim))
        return x if device is None else x.to(device)
    return tuple(prepare(a) for a in args), {k: prepare(v) for k, v in kwargs.items()}


# -- the pass ----------------------------------------------------------------------------------
def _run(model, args, kwargs):
    """Call ``model`` once (no grad, eval mode) with hooks on every module; the calls."""
    names = {}
    for name, m in model.named_modules():
        names.setdefault(m, name)
    calls, stack, seen_modules, seen_params = [], [], set(), set()
    failing = [None]    # the first of the latest run of calls that ended without output

    def pre(module, _args):
        params = trainable = 0
        for p in module._parameters.values():
            if p is not None and id(p) not in seen_params:
                seen_params.add(id(p))
                params += p.numel()
                trainable += p.numel() if p.requires_grad else 0
        parent = stack[-1] if stack else None
        if parent is not None:
            parent.leaf = False
        call = _Call(module, names[module], len(stack), parent, module in seen_modules,
                     params, trainable)
        seen_modules.add(module)
        calls.append(call)
        stack.append(call)

    def post(module, f_args, f_kwargs, output):
        call = stack.pop()
        assert call.module is module, "summary: module calls closed out of order"
        if output is None:          # forward raised (always_call), or returned nothing
            failing[0] = failing[0] or call
            return
        failing[0] = None
        call.output_shape, call.output_bytes = _shape_of(output)
        call.macs = _macs(module, f_args, f_kwargs, output)

    modes = [(m, m.training) for m in names]
    handles = []
    try:
        for m in names:
            handles.append(m.register_forward_pre_hook(pre, prepend=True))
            handles.append(m.register_forward_hook(post, with_kwargs=True, always_call=True))
        model.eval()
        with no_grad():
            try:
                model(*args, **kwargs)
            except Exception as exc:
                shapes = [tuple(t.shape) for t in list(args) + list(kwargs.values())
                          if isinstance(t, Tensor)]
                call = failing[0]
                where = ("" if call is None or not call.name else
                         f" in '{call.name}' ({type(call.module).__name__})")
                raise RuntimeError(f"{_OP}: the forward pass of {type(model).__name__} on "
                                   f"input shape(s) {shapes} failed{where}: "
                                   f"{type(exc).__name__}: {exc}") from exc
    finally:
        for h in handles:
            h.remove()
        for m, mode in modes:
            m.training = mode
    return calls


def _shape_of(output):
    """(shape description, bytes) of a module's output."""
    if isinstance(output, Tensor):
        return tuple(output.shape), output.numel() * output.dtype.itemsize
    if isinstance(output, dict):
        output = tuple(output.values())
    if isinstance(output, (tuple, list)):
        shapes = tuple(tuple(o.shape) if isinstance(o, Tensor) else None for o in output)
        size = sum(o.numel() * o.dtype.itemsize for o in output if isinstance(o, Tensor))
        return (shapes if any(s is not None for s in shapes) else None), size
    return None, 0


# -- MACs --------------------------------------------------------------------------------------
def _macs(module, args, kwargs, out):
    """Multiply-accumulates of one call of ``module`` (the rules in ``summary``'s docstring)."""
    if isinstance(module, MultiheadAttention):
        return _attention_macs(module, args, kwargs)
    if isinstance(module, (RNNBase, RNNCellBase)):
        x = args[0] if args else kwargs.get("input")       # one step per row of features
        return x.numel() // module.input_size * sum(p.numel() for p in module.parameters())
    if not isinstance(out, Tensor):
        return 0
    bias = getattr(module, "bias", None)
    adds = out.numel() if isinstance(bias, Tensor) else 0
    if isinstance(module, Conv2d):
        return out.numel() // module.out_channels * module.weight.numel() + adds
    if isinstance(module, ConvTranspose2d):
        x = args[0] if args else kwargs.get("x")
        return x.numel() // module.in_channels * module.weight.numel() + adds
    if isinstance(module, Linear):
        return out.numel() * module.in_features + adds
    return 0


def _attention_macs(m, args, kwargs):
    q = args[0] if args else kwargs["query"]
    k = args[1] if len(args) > 1 else kwargs["key"]
    E = m.embed_dim
    N = q.shape[0 if m.batch_first else 1] if q.ndim == 3 else 1
    NL, NS = q.numel() // E, k.numel() // m.kdim                 # N*L queries, N*S keys
    proj = NL * E * E + NS * m.kdim * E + NS * m.vdim * E
    if m.in_proj_bias is not None:
        proj += (NL + 2 * NS) * E
    return proj + 2 * NL * (NS // N) * E                        # q k^T and weights @ v


# -- the table ---------------------------------------------------------------------------------
def _build(model, calls, depth, tensors):
    for call in reversed(calls):                 # children come after their parent
        if call.parent is not None:
            for i, value in enumerate(call.sub[:2] + [call.sub[2] + call.macs]):
                call.parent.sub[i] += value
    rows = []
    for call in calls:
        if call.depth > depth:
            continue
        if call.depth == depth:
            params, trainable, macs = call.sub[0], call.sub[1], call.sub[2] + call.macs
        else:
            params, trainable, macs = call.params, call.trainable, call.macs
        rows.append(Row(call.name, type(call.module).__name__, call.depth, call.output_shape,
                        params, trainable, macs, call.recursive))
    params = list(model.parameters())
    total = sum(p.numel() for p in params)
    return ModelSummary(
        type(model).__name__, rows, depth, total_params=total,
        trainable_params=sum(p.numel() for p in params if p.requires_grad),
        uncalled_params=total - sum(c.params for c in calls),
        total_macs=sum(c.macs for c in calls),
        input_shapes=[tuple(t.shape) for t in tensors],
        input_bytes=sum(t.numel() * t.dtype.itemsize for t in tensors),
        forward_backward_bytes=2 * sum(c.output_bytes for c in calls if c.leaf),
        param_bytes=sum(p.numel() * p.dtype.itemsize for p in params))


def _labels(rows):
    """``  └─conv1 (Conv2d)``: each name relative to the row it is nested in."""
    open_rows = []              # the last row seen at each depth
    for row in rows:
        del open_rows[row.depth:]
        parent = open_rows[-1] if open_rows else None
        open_rows.append(row)
        if row.depth == 0:
            yield row.type
            continue
        name = row.name
        if parent is not None and parent.name and name.startswith(parent.name + "."):
            name = name[len(parent.name) + 1:]
        yield "  " * (row.depth - 1) + f"└─{name} ({row.type})"


def _fmt_shape(shape):
    if shape is None:
        return "--"
    if all(isinstance(s, (tuple, type(None))) for s in shape) and shape:
        return ", ".join(_fmt_shape(s) for s in shape)
    return "[" + ", ".join(str(v) for v in shape) + "]"


def _fmt_int(n):
    return f"{n:,}" if n else "--"


def _fmt_params(row):
    if row.recursive and not row.params:
        return "(recursive)"
    text = _fmt_int(row.params)
    frozen = row.params - row.trainable_params
    if frozen == row.params and frozen:
        return text + " (frozen)"
    if frozen:
        return text + f" ({frozen:,} frozen)"
    return text
