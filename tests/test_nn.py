"""nn.Module behaviour: registration order, traversal, modes, devices/dtypes, state_dict,
containers, Linear, init statistics."""
import math

import numpy as np
import pytest

import minidl
import minidl.functional as F
import minidl.nn as nn
from tests.helpers import check_op


class Block(nn.Module):
    def __init__(self):
        super().__init__()
        self.fc1 = nn.Linear(4, 3)
        self.act = nn.ReLU()
        self.fc2 = nn.Linear(3, 2, bias=False)
        self.scale = nn.Parameter(minidl.ones(2))
        self.register_buffer("count", minidl.zeros(1))
        self.register_buffer("scratch", minidl.zeros(1), persistent=False)

    def forward(self, x):
        return self.fc2(self.act(self.fc1(x))) * self.scale


def test_registration_order_and_names():
    m = Block()
    # PyTorch's order: a module's own entries first, then its children's, depth first
    assert [n for n, _ in m.named_parameters()] == ["scale", "fc1.weight", "fc1.bias",
                                                     "fc2.weight"]
    assert [n for n, _ in m.named_buffers()] == ["count", "scratch"]
    assert [n for n, _ in m.named_children()] == ["fc1", "act", "fc2"]
    assert [n for n, _ in m.named_modules()] == ["", "fc1", "act", "fc2"]
    assert list(m.state_dict()) == ["scale", "count", "fc1.weight", "fc1.bias", "fc2.weight"]
    assert m.num_parameters() == 4 * 3 + 3 + 3 * 2 + 2


def test_shared_parameter_listed_once():
    seq = nn.Sequential()
    lin = nn.Linear(2, 2)
    seq.append(lin).append(lin)
    assert len(list(seq.parameters())) == 2


def test_train_eval_propagates():
    m = Block()
    m.eval()
    assert not any(mod.training for mod in m.modules())
    m.train()
    assert all(mod.training for mod in m.modules())


def test_forward_backward_and_zero_grad():
    m = Block()
    m(minidl.randn(5, 4)).sum().backward()
    assert all(p.grad is not None and p.grad.shape == p.shape for p in m.parameters())
    m.zero_grad()
    assert all(p.grad is None for p in m.parameters())


def test_to_dtype_converts_parameters_and_buffers():
    m = Block().double()
    assert all(p.dtype == np.float64 for p in m.parameters())
    assert m.count.dtype == np.float64
    assert m(minidl.randn(2, 4, dtype=minidl.float64)).dtype == np.float64


def test_state_dict_roundtrip():
    a, b = Block(), Block()
    b.load_state_dict(a.state_dict())
    x = minidl.randn(3, 4)
    np.testing.assert_allclose(a(x).numpy(), b(x).numpy())
    sd = {k: v.numpy() for k, v in a.state_dict().items()}        # plain arrays work too
    b.load_state_dict(sd)


def test_load_state_dict_reports_all_problems():
    m = Block()
    sd = m.state_dict()
    sd["fc1.weight"] = minidl.zeros(5, 5)
    del sd["scale"]
    sd["extra"] = minidl.zeros(1)
    with pytest.raises(RuntimeError) as exc:
        m.load_state_dict(sd)
    msg = str(exc.value)
    assert "shape mismatch for fc1.weight: checkpoint (5, 5), model (3, 4)" in msg
    assert "missing keys: scale" in msg and "unexpected keys: extra" in msg
    sd["fc1.weight"] = m.fc1.weight
    result = m.load_state_dict(sd, strict=False)
    assert result.missing_keys == ["scale"] and result.unexpected_keys == ["extra"]


def test_load_state_dict_is_all_or_nothing():
    m = Block()
    before = {k: v.numpy().copy() for k, v in m.state_dict().items()}
    sd = {k: np.ones(v.shape) for k, v in before.items()}
    sd["fc2.weight"] = np.full(before["fc2.weight"].shape, "a")      # comes after fc1.*
    with pytest.raises(TypeError, match="'fc2.weight' must hold real numbers, got dtype <U1"):
        m.load_state_dict(sd)
    for k, v in m.state_dict().items():
        np.testing.assert_array_equal(v.numpy(), before[k])
    sd["fc2.weight"] = np.array([[None, None, None]] * 2)
    with pytest.raises(TypeError, match="'fc2.weight'.*got dtype object"):
        m.load_state_dict(sd)


def test_assigning_over_a_registered_entry_keeps_its_kind():
    m = Block()
    with pytest.raises(TypeError, match="cannot assign Tensor as parameter 'scale'.*Parameter"):
        m.scale = minidl.ones(2)
    with pytest.raises(TypeError, match="cannot assign ndarray as buffer 'count'"):
        m.count = np.zeros(1)
    with pytest.raises(TypeError, match="cannot assign int as child module 'fc1'"):
        m.fc1 = 3
    assert "scale" in dict(m.named_parameters()) and "count" in m.state_dict()
    m.count = minidl.ones(1)                                 # a Tensor replaces a buffer
    m.fc2.bias = None                                        # None empties a slot
    m.act = None
    assert m.state_dict()["count"].numpy() == 1 and "act" not in dict(m.named_children())
    m.scale = nn.Parameter(minidl.zeros(2))                  # a Parameter replaces one
    assert list(m.state_dict())[0] == "scale"


def test_register_names_and_persistence():
    m = Block()
    m.register_buffer("scratch", minidl.zeros(1))            # now persistent
    assert "scratch" in m.state_dict()
    m.register_buffer("scratch", minidl.zeros(1), persistent=False)
    assert "scratch" not in m.state_dict()
    with pytest.raises(KeyError, match="'scale' is already a parameter of Block"):
        m.register_buffer("scale", minidl.zeros(2))
    with pytest.raises(KeyError, match="'count' is already a buffer"):
        m.register_parameter("count", nn.Parameter(minidl.zeros(1)))
    with pytest.raises(KeyError, match="attribute 'forward' already exists"):
        m.register_buffer("forward", minidl.zeros(1))
    for bad in ("a.b", ""):
        with pytest.raises(KeyError, match="non-empty and contain no '.'"):
            m.add_module(bad, nn.ReLU())
    with pytest.raises(TypeError, match="name must be a str, got int"):
        m.register_parameter(1, None)


def test_train_mode_and_to_dtype_are_checked():
    m = Block()
    with pytest.raises(TypeError, match="Block.train: 'mode' must be a bool, got str 'False'"):
        m.train("False")
    m.train(np.bool_(False))
    assert not m.training
    with pytest.raises(TypeError, match="Block.to: dtype must be a floating-point type.*int32"):
        m.to(dtype=np.int32)
    assert m.fc1.weight.dtype == np.float32


def test_sequential_slice_keeps_names():
    from collections import OrderedDict
    seq = nn.Sequential(OrderedDict(conv=nn.Linear(2, 3), act=nn.ReLU(), fc=nn.Linear(3, 1)))
    assert list(seq[1:].state_dict()) == ["fc.weight", "fc.bias"]
    ml = nn.ModuleList([nn.ReLU(), nn.Linear(2, 2)])
    assert list(ml[1:].state_dict()) == ["0.weight", "0.bias"]    # a ModuleList renumbers


def test_repr_is_readable():
    text = repr(Block())
    assert text.startswith("Block(\n  (fc1): Linear(in_features=4, out_features=3, bias=True)")
    assert "(fc2): Linear(in_features=3, out_features=2, bias=False)" in text


def test_containers():
    seq = nn.Sequential(nn.Linear(3, 4), nn.Tanh(), nn.Linear(4, 1))
    assert len(seq) == 3 and isinstance(seq[1], nn.Tanh) and len(seq[:2]) == 2
    ml = nn.ModuleList([nn.Linear(2, 2) for _ in range(3)])
    assert len(list(ml.parameters())) == 6 and len(ml) == 3
    md = nn.ModuleDict({"a": nn.Identity(), "b": nn.Flatten()})
    assert list(md.keys()) == ["a", "b"]
    assert md["b"](minidl.zeros(2, 3, 4)).shape == (2, 12)
    with pytest.raises(TypeError, match="Sequential: every entry must be a Module"):
        nn.Sequential(nn.ReLU(), 3)


def test_linear_gradcheck_through_module(rng):
    lin = nn.Linear(3, 2).double()
    x = rng.standard_normal((4, 3))
    check_op(lambda t, w, b: F.linear(t, w, b), [x, lin.weight.numpy(), lin.bias.numpy()],
             lambda t, w, b: t @ w.T + b)
    params = [p for p in lin.parameters()]
    xt = minidl.tensor(x, requires_grad=True)
    assert minidl.gradcheck(lambda t, *ps: lin(t), [xt] + params)


def test_activation_modules():
    x = minidl.randn(2, 3)
    for mod, fn in [(nn.ReLU(), F.relu), (nn.Sigmoid(), F.sigmoid), (nn.Tanh(), F.tanh),
                    (nn.GELU(), F.gelu), (nn.Softmax(1), lambda t: F.softmax(t, 1)),
                    (nn.LogSoftmax(1), lambda t: F.log_softmax(t, 1)),
                    (nn.LeakyReLU(0.1), lambda t: F.leaky_relu(t, 0.1))]:
        np.testing.assert_allclose(mod(x).numpy(), fn(x).numpy())
    loss = nn.CrossEntropyLoss(label_smoothing=0.1)
    t = minidl.tensor([0, 2])
    np.testing.assert_allclose(loss(x, t).item(),
                               F.cross_entropy(x, t, label_smoothing=0.1).item())


def test_init_statistics():
    w = nn.Parameter(minidl.zeros(256, 128, 3, 3))
    fan_in = 128 * 9
    nn.init.kaiming_normal_(w)
    assert abs(w.numpy().std() - math.sqrt(2 / fan_in)) < 0.02 * math.sqrt(2 / fan_in)
    nn.init.kaiming_uniform_(w, mode="fan_out")
    bound = math.sqrt(2) * math.sqrt(3 / (256 * 9))
    assert w.numpy().max() <= bound and w.numpy().min() >= -bound
    nn.init.xavier_uniform_(w)
    assert abs(w.numpy().std() - math.sqrt(2 / (fan_in + 256 * 9))) < 0.001
    nn.init.xavier_normal_(w, gain=2.0)
    assert abs(w.numpy().std() - 2 * math.sqrt(2 / (fan_in + 256 * 9))) < 0.002
    nn.init.zeros_(w)
    assert not w.numpy().any()
    nn.init.ones_(w)
    assert (w.numpy() == 1).all()


def test_init_is_seeded():
    minidl.manual_seed(3)
    a = nn.Linear(5, 5).weight.numpy()
    minidl.manual_seed(3)
    np.testing.assert_array_equal(a, nn.Linear(5, 5).weight.numpy())


def test_bad_input():
    with pytest.raises(ValueError, match="Linear: 'in_features' must be a positive int"):
        nn.Linear(0, 3)
    with pytest.raises(ValueError, match="init: mode must be"):
        nn.init.kaiming_normal_(nn.Parameter(minidl.zeros(2, 2)), mode="fan")
    with pytest.raises(ValueError, match="fan in/out needs a tensor with at least 2"):
        nn.init.xavier_normal_(nn.Parameter(minidl.zeros(3)))

    class NoSuper(nn.Module):
        def __init__(self):
            self.x = 1
    with pytest.raises(RuntimeError, match=r"call super\(\).__init__\(\)"):
        NoSuper()


def test_linear_init_bounds_match_pytorch():
    # PyTorch: kaiming_uniform_(a=sqrt 5) with the leaky_relu default gives U(-1/sqrt(in), ..)
    w = nn.Linear(400, 300).weight.numpy()
    bound = 1 / math.sqrt(400)
    assert w.max() <= bound and w.min() >= -bound and w.max() > 0.95 * bound


def test_append_to_a_slice_never_overwrites():
    s = nn.Sequential(nn.ReLU(), nn.Tanh(), nn.Sigmoid())[1:]
    s.append(nn.Identity())
    assert len(s) == 3 and list(s._modules) == ["1", "2", "3"]
