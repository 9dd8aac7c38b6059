"""Looking at the recorded graph: Function.name / next_functions (PyTorch's names) and
minidl.autograd.make_dot (Graphviz DOT text of the graph behind a tensor)."""
import re
import shutil
import subprocess

import pytest

import minidl
import minidl.functional as F
import nets
from minidl.autograd import AccumulateGrad, make_dot


def _nodes(dot):
    """{node id: label} of a DOT text written by make_dot."""
    return {m.group(1): m.group(2).replace("\\n", "\n")
            for m in re.finditer(r'^  (n\d+) \[label="((?:[^"\\]|\\.)*)"', dot, re.M)}


def _edges(dot):
    return re.findall(r"^  (n\d+) -> (n\d+)(?: \[label=\"(\d+)\"\])?;", dot, re.M)


def test_next_functions_name_the_producers_the_leaves_and_the_constants():
    x = minidl.randn(2, 3, requires_grad=True)
    c = minidl.randn(2, 3)                                  # a constant: no gradient
    a = x.exp()
    y = a * c + 2.0
    assert y.grad_fn.name() == "Add"
    (mul, k), (none, j) = y.grad_fn.next_functions
    assert mul.name() == "Mul" and k == 0
    assert none is None and j == 0                          # the number 2.0
    (exp, _), (const, _) = mul.next_functions
    assert exp is a.grad_fn and const is None
    ((acc, _),) = exp.next_functions
    assert isinstance(acc, AccumulateGrad) and acc.variable is x and acc.name() == "AccumulateGrad"
    assert acc == AccumulateGrad(x) and acc != AccumulateGrad(c) and acc.next_functions == ()


def test_next_functions_give_the_output_index_of_multi_output_ops():
    x = minidl.randn(4, requires_grad=True)
    a, b = F.chunk(x, 2)
    y = b * a
    (fb, kb), (fa, ka) = y.grad_fn.next_functions
    assert fb is fa is a.grad_fn and (kb, ka) == (1, 0)


def test_make_dot_draws_each_op_once_with_names_shapes_and_output_indices():
    x = minidl.randn(2, 3, requires_grad=True)
    w = minidl.randn(3, 4, requires_grad=True)
    a, b = F.chunk(x @ w, 2, dim=1)
    y = (a.relu() * b).sum()
    dot = make_dot(y, params={"x": x, "w": w})
    assert dot.startswith("digraph minidl {") and dot.rstrip().endswith("}")
    nodes, edges = _nodes(dot), _edges(dot)
    labels = sorted(nodes.values())
    assert labels == sorted(["output\n()", "Sum\n()", "Mul\n(2, 2)", "ReLU\n(2, 2)",
                             "Split\n(2, 2) (2, 2)", "MatMul\n(2, 4)", "x\n(2, 3)",
                             "w\n(3, 4)"])
    by_label = {v.split("\n")[0]: k for k, v in nodes.items()}
    assert (by_label["Split"], by_label["ReLU"], "0") in edges     # chunk's first output
    assert (by_label["Split"], by_label["Mul"], "1") in edges      # its second
    assert (by_label["x"], by_label["MatMul"], "") in edges
    assert len(edges) == 8 and len(set(edges)) == 8


def test_make_dot_shares_a_node_used_twice_and_names_model_parameters():
    x = minidl.randn(3, requires_grad=True)
    e = x.exp()
    dot = make_dot(e * e)
    labels = [v.split("\n")[0] for v in _nodes(dot).values()]
    assert labels.count("Exp") == 1 and labels.count("leaf") == 1
    # one edge per use: Mul took Exp's output twice (and nothing else)
    assert [e for e in _edges(dot) if e[1] == _id(dot, "Mul")] == [(_id(dot, "Exp"),
                                                                    _id(dot, "Mul"), "")] * 2
    dot = make_dot(e * x)                                  # x reaches Mul directly and via Exp
    labels = _nodes(dot)
    into_mul = [labels[a].split("\n")[0] for a, b, _ in _edges(dot) if b == _id(dot, "Mul")]
    assert sorted(into_mul) == ["Exp", "leaf"]

    model = nets.get_model("resnet20", depth=8)
    out = model(minidl.randn(2, 3, 8, 8))
    dot = make_dot(out, params=model.named_parameters())
    labels = [v.split("\n")[0] for v in _nodes(dot).values()]
    convs = [n for n, m in model.named_modules() if isinstance(m, minidl.nn.Conv2d)]
    assert labels.count("Conv2d") == len(convs)
    for name, _ in model.named_parameters():
        assert labels.count(name) == 1


def _id(dot, label):
    return next(k for k, v in _nodes(dot).items() if v.split("\n")[0] == label)


def test_make_dot_attributes_saved_arrays_and_several_outputs():
    x = minidl.randn(1, 2, 5, 5, requires_grad=True)
    w = minidl.randn(3, 2, 3, 3, requires_grad=True)
    y = F.conv2d(x, w, stride=2, padding=1)
    conv = _nodes(make_dot(y, show_attrs=True, show_saved=True))[_id(make_dot(y), "Conv2d")]
    assert "stride=(2, 2)" in conv and "padding=(1, 1)" in conv
    assert "saved (1, 2, 5, 5) float32" in conv and "saved (3, 2, 3, 3) float32" in conv
    assert "stride" not in _nodes(make_dot(y))[_id(make_dot(y), "Conv2d")]
    dot = make_dot([y.sum(), x.sum(), x])
    labels = [v.split("\n")[0] for v in _nodes(dot).values()]
    assert sorted(l for l in labels if l.startswith("output")) == [
        "output 0", "output 1", "output 2"]
    assert labels.count("leaf") == 2                       # x once, w once


def test_make_dot_walks_deep_graphs_without_recursion():
    x = minidl.randn(1, requires_grad=True)
    y = x
    for _ in range(5000):
        y = y * 1.0
    assert len(_nodes(make_dot(y))) == 5002


def test_make_dot_after_backward_says_the_graph_was_freed():
    x = minidl.randn(3, requires_grad=True)
    y = (x * x).sum()
    y.backward(retain_graph=True)
    assert "Mul" in make_dot(y)                            # kept by retain_graph
    y.backward()
    with pytest.raises(RuntimeError, match=r"make_dot: the graph of this Sum node was freed "
                                           r"by a backward pass.*retain_graph=True"):
        make_dot(y)
    with pytest.raises(RuntimeError, match=r"Sum.next_functions: the graph .* was freed"):
        y.grad_fn.next_functions


@pytest.mark.parametrize("args,exc,match", [
    ((minidl.randn(2),), ValueError, r"make_dot: 'output' does not require grad"),
    (([1.0],), TypeError, r"make_dot: 'output' must be a Tensor or a list of Tensors, got "
                          r"float"),
    ((minidl.randn(2, requires_grad=True), {"w": 3}), TypeError,
     r"make_dot: 'params' must map names to Tensors"),
])
def test_make_dot_bad_input(args, exc, match):
    with pytest.raises(exc, match=match):
        make_dot(*args)


@pytest.mark.skipif(shutil.which("dot") is None, reason="Graphviz's dot is not installed")
def test_graphviz_renders_the_text(tmp_path):
    x = minidl.randn(2, 3, requires_grad=True)
    dot = make_dot((x.relu() * x).sum(), params={'odd "name\\': x}, show_attrs=True)
    r = subprocess.run(["dot", "-Tsvg"], input=dot, capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    assert "<svg" in r.stdout
