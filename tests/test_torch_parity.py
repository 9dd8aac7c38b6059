"""Optional parity with PyTorch (skipped when torch is not installed): the same ops and the
same small network give the same values and gradients."""
import numpy as np
import pytest

import minidl
import minidl.functional as F
import minidl.nn as nn

torch = pytest.importorskip("torch")


def _pair(rng, shape):
    a = rng.standard_normal(shape)
    return (minidl.tensor(a, requires_grad=True),
            torch.tensor(a, requires_grad=True))


@pytest.mark.parametrize("name", ["gelu", "log_softmax", "softmax", "sigmoid", "tanh",
                                  "leaky_relu", "var", "std", "logsumexp_ce"])
def test_ops_match_torch(rng, name):
    x, tx = _pair(rng, (4, 5))
    t = rng.integers(0, 5, 4)
    ops = {
        "gelu": (lambda: F.gelu(x), lambda: torch.nn.functional.gelu(tx)),
        "log_softmax": (lambda: F.log_softmax(x, 1), lambda: torch.log_softmax(tx, 1)),
        "softmax": (lambda: F.softmax(x, 0), lambda: torch.softmax(tx, 0)),
        "sigmoid": (lambda: F.sigmoid(x), lambda: torch.sigmoid(tx)),
        "tanh": (lambda: F.tanh(x), lambda: torch.tanh(tx)),
        "leaky_relu": (lambda: F.leaky_relu(x, 0.1),
                       lambda: torch.nn.functional.leaky_relu(tx, 0.1)),
        "var": (lambda: x.var(1), lambda: tx.var(1)),
        "std": (lambda: x.std(0, unbiased=False), lambda: tx.std(0, unbiased=False)),
        "logsumexp_ce": (lambda: F.cross_entropy(x, minidl.tensor(t), label_smoothing=0.2),
                         lambda: torch.nn.functional.cross_entropy(
                             tx, torch.tensor(t), label_smoothing=0.2)),
    }
    ours, theirs = ops[name]
    y, ty = ours(), theirs()
    np.testing.assert_allclose(y.numpy(), ty.detach().numpy(), rtol=1e-10, atol=1e-12)
    g = rng.standard_normal(y.shape)
    y.backward(minidl.tensor(g))
    ty.backward(torch.tensor(g))
    np.testing.assert_allclose(x.grad.numpy(), tx.grad.numpy(), rtol=1e-9, atol=1e-12)


def test_mlp_step_matches_torch(rng):
    ours = nn.Sequential(nn.Linear(6, 5), nn.Tanh(), nn.Linear(5, 3)).double()
    theirs = torch.nn.Sequential(torch.nn.Linear(6, 5), torch.nn.Tanh(),
                                 torch.nn.Linear(5, 3)).double()
    with torch.no_grad():
        for p, q in zip(ours.parameters(), theirs.parameters()):
            q.copy_(torch.tensor(p.numpy()))
    x = rng.standard_normal((8, 6))
    t = rng.integers(0, 3, 8)
    loss = F.cross_entropy(ours(minidl.tensor(x)), minidl.tensor(t))
    tloss = torch.nn.functional.cross_entropy(theirs(torch.tensor(x)), torch.tensor(t))
    loss.backward()
    tloss.backward()
    np.testing.assert_allclose(loss.item(), tloss.item(), rtol=1e-12)
    for p, q in zip(ours.parameters(), theirs.parameters()):
        np.testing.assert_allclose(p.grad.numpy(), q.grad.numpy(), rtol=1e-9, atol=1e-12)
