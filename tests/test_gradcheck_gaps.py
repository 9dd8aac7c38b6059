"""The Functions that ``MINIDL_AUDIT_GRADCHECK=1 python -m pytest`` (see conftest.py) found no
gradcheck going through: dtype casts, device copies, sign, and the identity nodes of module
backward hooks. Each is gradchecked here in float64 with a random upstream gradient (the
default of ``minidl.gradcheck``)."""
import numpy as np
import pytest

import minidl
from minidl import nn


def test_cast_there_and_back():
    # float32 round trip: points and step on a 1/64 grid are exact in float32, and the function
    # is linear, so the central differences are exact; the analytic side casts the upstream
    # gradient to float32 and back (a relative rounding of 6e-8)
    rng = np.random.default_rng(0)
    x = minidl.tensor(rng.integers(-64, 64, (3, 4)) / 64.0, requires_grad=True)
    w = minidl.tensor(rng.integers(-8, 8, (3, 4)) / 8.0)

    def fn(t):
        return (t.to(minidl.float32) * w.to(minidl.float32)).to(minidl.float64)
    assert minidl.gradcheck(fn, [x], eps=2.0 ** -6)
    y = x.to(minidl.float32)
    assert y.grad_fn is not None and type(y.grad_fn).__name__ == "Cast"


def test_sign_times_x():
    rng = np.random.default_rng(1)
    v = rng.uniform(0.2, 2.0, (5,)) * rng.choice([-1.0, 1.0], 5)     # away from the kink
    x = minidl.tensor(v, requires_grad=True)
    assert minidl.gradcheck(lambda t: t.sign() * t + t.sign(), [x])
    y = x.sign()
    y.backward(minidl.tensor(np.ones(5)))
    np.testing.assert_array_equal(x.grad.numpy(), np.zeros(5))


@pytest.mark.parametrize("hook", ["full", "pre"])
def test_module_backward_hook_nodes(hook):
    minidl.manual_seed(0)
    lin = nn.Linear(4, 3).to(minidl.float64)
    seen = []
    if hook == "full":
        lin.register_full_backward_hook(lambda m, gi, go: seen.append(len(gi)))
    else:
        lin.register_full_backward_pre_hook(lambda m, go: seen.append(len(go)))
    x = minidl.randn(2, 4, dtype=minidl.float64, requires_grad=True)
    assert minidl.gradcheck(lambda t, *params: lin(t).tanh(), [x, lin.weight, lin.bias])
    assert seen                                   # the hook nodes were on the checked path


@pytest.mark.cuda
def test_to_device_there_and_back():
    x = minidl.randn(3, 4, dtype=minidl.float64, requires_grad=True)
    assert minidl.gradcheck(lambda t: (t.to("cuda") * 2.0).exp().to("cpu"), [x])
