"""Looking at the recorded graph: each node's ``next_functions`` and ``name()`` (PyTorch's
names), and ``make_dot``, the whole graph behind a tensor as Graphviz DOT text.

The graph is the one ``backward`` walks: every op that recorded a call (``Function``, the
``grad_fn`` of its outputs) points at its inputs, which are either outputs of earlier ops or
leaves (tensors made by the user, parameters). ``next_functions`` gives, per input, where that
input's gradient goes: the producing op (and which of its outputs it was), an
``AccumulateGrad`` node holding a leaf that requires grad (its gradient is added into the
leaf's ``.grad``), or None (a constant, or a number). Backward frees the graph as it goes
(``retain_graph=True`` keeps it), so both work on a graph that has not been freed.

Re-exported as ``minidl.autograd.make_dot`` and ``minidl.autograd.AccumulateGrad``.
"""
from __future__ import annotations

from .tensor import Tensor


class AccumulateGrad:
    """The graph's end for a leaf that requires grad: its gradient is added into
    ``variable.grad``. Two nodes for the same leaf compare equal."""

    next_functions = ()

    def __init__(self, variable):
        self.variable = variable

    @staticmethod
    def name():
        return "AccumulateGrad"

    def __eq__(self, other):
        return isinstance(other, AccumulateGrad) and other.variable is self.variable

    def __hash__(self):
        return id(self.variable)

    def __repr__(self):
        return f"<AccumulateGrad of a leaf of shape {self.variable.shape}>"


def _freed(fn, op):
    """The inputs of a recorded node, or a clear error if backward freed them."""
    if fn._inputs is None:
        raise RuntimeError(
            f"{op}: the graph of this {type(fn).__name__} node was freed by a backward pass "
            "(which frees the graph as it goes); look at the graph before calling backward, "
            "or call backward(retain_graph=True)")
    return fn._inputs


def next_functions(fn, op=None):
    """``Function.next_functions``: per input, (node, output index) as described above
    (``op`` names the caller in the error for a freed graph)."""
    out = []
    for x in _freed(fn, op or f"{type(fn).__name__}.next_functions"):
        if not isinstance(x, Tensor) or not x.requires_grad:
            out.append((None, 0))
        elif x.grad_fn is not None:
            out.append((x.grad_fn, x._out_index))
        else:
            out.append((AccumulateGrad(x), 0))
    return tuple(out)


def _quote(text):
    """A DOT string: backslashes and quotes escaped, line breaks as DOT's centred \\n."""
    escaped = str(text).replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")
    return '"' + escaped + '"'


def _shape(shape):
    return str(tuple(int(s) for s in shape))


def _attributes(fn):
    """The hyperparameters of a node (its public attributes holding plain values)."""
    plain = (bool, int, float, str, tuple, type(None))
    return [f"{k}={v}" for k, v in vars(fn).items()
            if not k.startswith("_") and k not in ("saved", "needs_input_grad")
            and isinstance(v, plain)]


def _saved(fn):
    arrays = fn.saved or ()
    return [f"saved {_shape(a.shape)} {a.dtype}" for a in arrays if hasattr(a, "shape")]


def _named(params, op):
    """{id(tensor): name} from a dict of name -> Tensor or an iterable of (name, Tensor)."""
    if params is None:
        return {}
    items = params.items() if isinstance(params, dict) else params
    names = {}
    try:
        for name, t in items:
            if not isinstance(t, Tensor):
                raise TypeError
            names[id(t)] = str(name)
    except (TypeError, ValueError):
        raise TypeError(f"{op}: 'params' must map names to Tensors (a dict, or pairs such as "
                        "model.named_parameters())") from None
    return names


def make_dot(output, params=None, show_attrs=False, show_saved=False):
    """The graph that produced ``output`` (a Tensor, or a list of them) as Graphviz DOT text.

    Boxes are ops (``Function`` class and output shape), blue boxes the leaves that require
    grad (named through ``params``: a dict name -> Tensor, or ``model.named_parameters()``),
    green ellipses the outputs; edges run the way data flowed in forward, one per input an op
    took (``e * e``: two from ``Exp`` to ``Mul``), labelled with the output index where an op
    has several. ``show_attrs`` adds each op's hyperparameters
    (stride, padding, ...), ``show_saved`` the shapes of what it saved for backward. Render
    the text with Graphviz (``dot -Tsvg graph.dot -o graph.svg``) or any DOT viewer.
    Call it before backward (which frees the graph) or after ``backward(retain_graph=True)``.
    """
    op = "make_dot"
    roots = list(output) if isinstance(output, (list, tuple)) else [output]
    for t in roots:
        if not isinstance(t, Tensor):
            raise TypeError(f"{op}: 'output' must be a Tensor or a list of Tensors, got "
                            f"{type(t).__name__}")
        if not t.requires_grad:
            raise ValueError(f"{op}: 'output' does not require grad, so no graph was recorded "
                             "for it (make it from tensors with requires_grad=True, outside "
                             "no_grad)")
    names = _named(params, op)
    ids, lines = {}, []

    def node(key, label, style):
        if key not in ids:
            ids[key] = f"n{len(ids)}"
            lines.append(f"  {ids[key]} [label={_quote(label)}{style}];")
        return ids[key]

    def leaf(x):
        label = "\n".join([names.get(id(x), "leaf"), _shape(x.shape)])
        return node(("leaf", id(x)), label, ', style=filled, fillcolor="lightblue"')

    def op_node(fn):
        shapes = " ".join(_shape(m[0]) for m in fn._out_meta)
        rows = [type(fn).__name__, shapes]
        rows += _attributes(fn) if show_attrs else []
        rows += _saved(fn) if show_saved else []
        return node(("op", id(fn)), "\n".join(rows), "")

    def edge(a, b, label=None):      # one per use: e * e gets two edges from Exp to Mul
        extra = "" if label is None else f" [label={_quote(label)}]"
        lines.append(f"  {a} -> {b}{extra};")

    stack, seen = [], set()
    for k, t in enumerate(roots):
        out = node(("out", k), "\n".join(["output" if len(roots) == 1 else f"output {k}",
                                          _shape(t.shape)]),
                   ', shape=ellipse, style=filled, fillcolor="palegreen"')
        if t.grad_fn is None:
            edge(leaf(t), out)
            continue
        edge(op_node(t.grad_fn), out)
        stack.append(t.grad_fn)
    while stack:                        # depth-first with an explicit stack: any depth
        fn = stack.pop()
        if id(fn) in seen:
            continue
        seen.add(id(fn))
        me = op_node(fn)
        for parent, index in next_functions(fn, op):
            if parent is None:
                continue
            if isinstance(parent, AccumulateGrad):
                edge(leaf(parent.variable), me)
                continue
            label = str(index) if len(parent._out_meta) > 1 else None
            edge(op_node(parent), me, label)
            if id(parent) not in seen:
                stack.append(parent)
    head = ["digraph minidl {", "  rankdir=TB;",
            '  node [shape=box, fontname="monospace", fontsize=10];']
    return "\n".join(head + lines + ["}"]) + "\n"
