"""Module lookup and traversal API (get_submodule, get_parameter, get_buffer, named_modules,
named_parameters, half, requires_grad_) and the grad-mode API (set_grad_enabled,
inference_mode), against expectations written here and against PyTorch where installed."""
import threading

import numpy as np
import pytest

import minidl
import minidl.nn as nn


def _net(lib_nn):
    """The same small tree in minidl or torch: a shared Linear reached along two paths."""
    shared = lib_nn.Linear(2, 2)
    inner = lib_nn.Sequential(lib_nn.Linear(2, 3), lib_nn.BatchNorm1d(3))
    return lib_nn.Sequential(inner, shared, lib_nn.Sequential(shared, lib_nn.ReLU()))


# ---------------------------------------------------------------------------------------------
# lookup

def test_get_submodule_parameter_buffer():
    net = _net(nn)
    assert net.get_submodule("") is net
    assert net.get_submodule("0.1") is net[0][1]
    assert net.get_submodule("2.0") is net[1]
    assert net.get_parameter("0.0.weight") is net[0][0].weight
    assert net.get_parameter("1.bias") is net[1].bias
    assert net.get_buffer("0.1.running_mean") is net[0][1].running_mean


def test_lookup_errors_name_the_missing_part():
    net = _net(nn)
    with pytest.raises(AttributeError, match=r"get_parameter: Sequential \('0'\) has no "
                                             r"submodule '7' \(in target '0\.7\.weight'\)"):
        net.get_parameter("0.7.weight")
    with pytest.raises(AttributeError, match=r"get_submodule: 'weight' of Linear \('0\.0'\) "
                                             r"is not a Module"):
        net.get_submodule("0.0.weight.x")
    with pytest.raises(AttributeError, match=r"get_buffer: Sequential \(the root module\) has "
                                             r"no submodule 'x'"):
        net.get_buffer("x.running_mean")
    with pytest.raises(AttributeError, match=r"get_parameter: Linear \('1'\) has no attribute "
                                             r"'kernel'"):
        net.get_parameter("1.kernel")
    with pytest.raises(AttributeError, match=r"get_parameter: 'running_mean' of BatchNorm1d "
                                             r"\('0\.1'\) is not a parameter"):
        net.get_parameter("0.1.running_mean")
    with pytest.raises(AttributeError, match=r"get_buffer: 'weight' of BatchNorm1d \('0\.1'\) "
                                             r"is not a buffer"):
        net.get_buffer("0.1.weight")
    with pytest.raises(TypeError, match="get_submodule: target must be a str, got int"):
        net.get_submodule(0)
    with pytest.raises(TypeError, match="get_buffer: target must be a str, got NoneType"):
        net.get_buffer(None)


# ---------------------------------------------------------------------------------------------
# traversal

def test_named_modules_memo_prefix_duplicates_match_torch():
    torch = pytest.importorskip("torch")
    ours, theirs = _net(nn), _net(torch.nn)
    for kwargs in ({}, {"prefix": "net"}, {"remove_duplicate": False},
                   {"prefix": "m", "remove_duplicate": False}):
        assert ([n for n, _ in ours.named_modules(**kwargs)]
                == [n for n, _ in theirs.named_modules(**kwargs)]), kwargs
    memo_o, memo_t = {ours[1]}, {theirs[1]}
    assert ([n for n, _ in ours.named_modules(memo_o)]
            == [n for n, _ in theirs.named_modules(memo_t)])
    assert len(memo_o) == len(memo_t)
    for kwargs in ({}, {"prefix": "p"}, {"remove_duplicate": False}, {"recurse": False}):
        assert ([n for n, _ in ours.named_parameters(**kwargs)]
                == [n for n, _ in theirs.named_parameters(**kwargs)]), kwargs
        assert ([n for n, _ in ours.named_buffers(**kwargs)]
                == [n for n, _ in theirs.named_buffers(**kwargs)]), kwargs


def test_named_modules_written_out():
    net = _net(nn)
    assert [n for n, _ in net.named_modules()] == ["", "0", "0.0", "0.1", "1", "2", "2.1"]
    assert [n for n, _ in net.named_modules(remove_duplicate=False)] == [
        "", "0", "0.0", "0.1", "1", "2", "2.0", "2.1"]
    memo = set()
    assert [n for n, _ in net[0].named_modules(memo, "x")] == ["x", "x.0", "x.1"]
    assert [n for n, _ in net.named_modules(memo)] == ["", "1", "2", "2.1"]   # net[0] known
    assert [n for n, _ in net.named_parameters(remove_duplicate=False)][-2:] == [
        "2.0.weight", "2.0.bias"]
    assert len(list(net.parameters())) == 6      # the shared Linear's two listed once


# ---------------------------------------------------------------------------------------------
# dtype and requires_grad

def test_half_casts_floating_state():
    bn = nn.BatchNorm1d(3)
    assert bn.half() is bn
    assert bn.weight.dtype == minidl.float16 and bn.running_var.dtype == minidl.float16
    assert bn.num_batches_tracked.dtype == minidl.int64
    assert isinstance(bn.weight, nn.Parameter) and bn.weight.requires_grad


def test_requires_grad_():
    net = _net(nn)
    assert net.requires_grad_(False) is net
    assert not any(p.requires_grad for p in net.parameters())
    net[0].requires_grad_()
    assert [n for n, p in net.named_parameters() if p.requires_grad] == [
        "0.0.weight", "0.0.bias", "0.1.weight", "0.1.bias"]
    with pytest.raises(TypeError, match="Sequential.requires_grad_: 'requires_grad' must be a "
                                        "bool, got str 'yes'"):
        net.requires_grad_("yes")


# ---------------------------------------------------------------------------------------------
# grad mode

def _records():
    x = minidl.ones(2, requires_grad=True)
    return (x * 2.0).requires_grad


def test_set_grad_enabled_function_context_decorator():
    assert minidl.is_grad_enabled()
    with minidl.set_grad_enabled(False):
        assert not minidl.is_grad_enabled() and not _records()
        with minidl.set_grad_enabled(True):
            assert _records()
        assert not minidl.is_grad_enabled()
    assert minidl.is_grad_enabled()
    try:
        minidl.set_grad_enabled(False)          # as a function: switches for good
        assert not minidl.is_grad_enabled()
    finally:
        minidl.set_grad_enabled(True)
    assert minidl.is_grad_enabled()

    @minidl.set_grad_enabled(False)
    def f():
        return minidl.is_grad_enabled(), _records()
    assert minidl.is_grad_enabled()             # decorating switches nothing
    assert f() == (False, False)
    assert minidl.is_grad_enabled()
    with minidl.no_grad():
        g = minidl.set_grad_enabled(True)(lambda: _records())
        assert g() and not minidl.is_grad_enabled()
    with pytest.raises(TypeError, match="set_grad_enabled: 'mode' must be a bool, got int 1"):
        minidl.set_grad_enabled(1)
    assert minidl.is_grad_enabled()


def test_set_grad_enabled_restores_after_error():
    with pytest.raises(KeyError):
        with minidl.set_grad_enabled(False):
            raise KeyError("x")
    assert minidl.is_grad_enabled()


def test_inference_mode():
    with minidl.inference_mode():
        assert not minidl.is_grad_enabled() and not _records()
    assert minidl.is_grad_enabled()
    with minidl.inference_mode(False):
        assert minidl.is_grad_enabled()
    with minidl.no_grad():
        with minidl.inference_mode(False):      # turns recording on, as PyTorch's does
            assert minidl.is_grad_enabled()
        assert not minidl.is_grad_enabled()

    @minidl.inference_mode
    def bare():
        return _records()

    @minidl.inference_mode()
    def called():
        return _records()
    assert bare() is False and called() is False and minidl.is_grad_enabled()
    with pytest.raises(TypeError, match="inference_mode: 'mode' must be a bool, got str 'on'"):
        minidl.inference_mode("on")


def test_grad_mode_is_per_thread():
    seen = {}
    stop = threading.Event()
    inside = threading.Event()

    def worker():
        with minidl.inference_mode():
            minidl.set_grad_enabled(False)
            inside.set()
            stop.wait(5)
            seen["worker"] = minidl.is_grad_enabled()

    t = threading.Thread(target=worker)
    t.start()
    inside.wait(5)
    seen["main"] = minidl.is_grad_enabled()
    stop.set()
    t.join()
    assert seen == {"main": True, "worker": False}


def test_grad_mode_matches_torch_semantics():
    torch = pytest.importorskip("torch")
    for lib in (minidl, torch):
        with lib.no_grad():
            with lib.set_grad_enabled(True):
                on = lib.is_grad_enabled()
            off = lib.is_grad_enabled()
        assert (on, off) == (True, False), lib.__name__
    np.testing.assert_array_equal(minidl.ones(2).numpy(), torch.ones(2).numpy())


@pytest.mark.parametrize("make", [minidl.no_grad, lambda: minidl.set_grad_enabled(False),
                                  minidl.inference_mode],
                         ids=["no_grad", "set_grad_enabled", "inference_mode"])
def test_grad_mode_decorators_cover_a_generator_body(make):
    """Decorating a generator function must switch recording off inside its body at every
    step (not only while the generator object is made), and give the caller its own mode
    back between steps, as PyTorch does."""
    @make()
    def gen():
        got = yield _records()
        yield got, _records()
        return "done"

    g = gen()
    assert next(g) is False and minidl.is_grad_enabled()
    assert g.send("sent") == ("sent", False) and minidl.is_grad_enabled()
    with pytest.raises(StopIteration) as stop:
        next(g)
    assert stop.value.value == "done"


def test_no_grad_and_enable_grad_work_as_bare_decorators():
    @minidl.no_grad
    def off():
        return _records()

    @minidl.enable_grad
    def on():
        return _records()
    assert off() is False and minidl.is_grad_enabled() and off.__name__ == "off"
    with minidl.no_grad():
        assert on() is True and not minidl.is_grad_enabled()
    with pytest.raises(TypeError, match=r"no_grad\(\) takes no arguments"):
        minidl.no_grad(3)


def test_state_dict_lists_a_shared_module_under_every_name_as_pytorch():
    shared = nn.Linear(2, 2)
    net = nn.Sequential(nn.Linear(2, 2), nn.Sequential(shared, nn.ReLU()), shared)
    keys = list(net.state_dict())
    assert keys == ["0.weight", "0.bias", "1.0.weight", "1.0.bias", "2.weight", "2.bias"]
    assert len(list(net.parameters())) == 4                     # parameters() stays unique
    state = {k: v.numpy() + 1.0 for k, v in net.state_dict().items()}
    net.load_state_dict(state)                                   # no "unexpected keys"
    np.testing.assert_array_equal(shared.weight.numpy(), state["2.weight"])


def test_train_and_eval_call_each_childs_train():
    """A module that overrides ``train`` to keep its batch norm frozen has its way when a
    parent switches modes, as in PyTorch (the flag used to be set on every descendant)."""
    class Frozen(nn.Module):
        def __init__(self):
            super().__init__()
            self.bn = nn.BatchNorm1d(2)

        def train(self, mode=True):
            super().train(mode)
            self.bn.eval()
            return self

    m = nn.Sequential(Frozen(), nn.Sequential(nn.BatchNorm1d(2)))
    m.train()
    assert m.training and m[0].training and not m[0].bn.training and m[1][0].training
    m.eval()
    assert not any(mod.training for mod in m.modules())
    m.train()
    assert m[1][0].training and not m[0].bn.training


def test_a_child_registered_twice_is_one_child():
    lin = nn.Linear(2, 2)
    s = nn.Sequential(lin, lin)
    assert [n for n, _ in s.named_children()] == ["0"]
    calls = []
    s.apply(lambda mod: calls.append(type(mod).__name__))
    assert calls == ["Linear", "Sequential"]
    assert len(s) == 2 and [n for n, _ in s.named_parameters()] == ["0.weight", "0.bias"]


def _sizes(container):
    return [(n, m.out_features) for n, m in container._modules.items()]


def test_sequential_and_module_list_edit_like_pytorch():
    """Item assignment keeps the position's name; deleting, inserting and popping number the
    modules afresh; + concatenates (the results are PyTorch 2.13's for the same edits)."""
    a, b, c, d = (nn.Linear(1, k) for k in (1, 2, 3, 4))
    s = nn.Sequential(a, b, c)
    s[1] = d
    s[-1] = b
    assert [m.out_features for m in s] == [1, 4, 2]
    del s[0]
    assert _sizes(s) == [("0", 4), ("1", 2)] and not hasattr(s, "2")
    s.insert(0, c)
    s.insert(-1, a)
    s.append(c)
    assert s.pop(1).out_features == 4
    assert _sizes(s) == [("0", 3), ("1", 1), ("2", 2), ("3", 3)]
    assert list(s.state_dict())[:3] == ["0.weight", "0.bias", "1.weight"]
    t = s + nn.Sequential(d)
    assert type(t) is nn.Sequential and _sizes(t)[-1] == ("4", 4)
    ml = nn.ModuleList([a, b]) + nn.ModuleList([c])
    del ml[0:1]
    assert type(ml) is nn.ModuleList and _sizes(ml) == [("0", 2), ("1", 3)]
    with pytest.raises(IndexError, match="ModuleList: index 2 is out of range for 2 modules"):
        ml[2] = a
    with pytest.raises(TypeError, match="Sequential: a Module is expected, got int"):
        s[0] = 3
    with pytest.raises(TypeError, match="Sequential.insert: expected a Module, got str"):
        s.insert(0, "x")


def test_module_dict_update_pop_clear_and_pairs():
    a, b, c = (nn.Linear(1, k) for k in (1, 2, 3))
    md = nn.ModuleDict([("x", a), ("y", b)])
    md.update({"z": c})
    assert md.pop("x") is a and list(md.keys()) == ["y", "z"]
    assert "y" in md and "x" not in md and not hasattr(md, "x")
    assert [n for n, _ in md.named_parameters()] == ["y.weight", "y.bias", "z.weight", "z.bias"]
    del md["y"]
    with pytest.raises(KeyError):
        del md["y"]
    md.clear()
    assert len(md) == 0 and not hasattr(md, "z")
    with pytest.raises(TypeError, match="ModuleDict.update: expected a mapping or"):
        md.update([a])
