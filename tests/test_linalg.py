"""matmul (batched, broadcasting, 1-D operands) and linear."""
import numpy as np
import pytest

import minidl
import minidl.functional as F
from tests.helpers import check_op


@pytest.mark.parametrize("sa,sb", [((3, 4), (4, 5)), ((2, 3, 4), (4, 5)), ((4,), (4, 5)),
                                   ((3, 4), (4,)), ((4,), (4,)), ((2, 1, 3, 4), (5, 4, 2)),
                                   ((1, 3, 4), (2, 4, 3))])
def test_matmul(device, rng, sa, sb):
    check_op(F.matmul, [rng.standard_normal(sa), rng.standard_normal(sb)], np.matmul, device)


def test_matmul_operator_and_reuse(device, rng):
    a = rng.standard_normal((3, 3))
    check_op(lambda x: x @ x @ x.T, [a], lambda x: x @ x @ x.T, device)


@pytest.mark.parametrize("shape", [(5, 3), (2, 4, 3)])
@pytest.mark.parametrize("bias", [True, False])
def test_linear(device, rng, shape, bias):
    x, W, b = rng.standard_normal(shape), rng.standard_normal((2, 3)), rng.standard_normal(2)
    if bias:
        check_op(F.linear, [x, W, b], lambda x, W, b: x @ W.T + b, device)
    else:
        check_op(F.linear, [x, W], lambda x, W: x @ W.T, device)


def test_bad_input():
    with pytest.raises(ValueError, match=r"matmul: shapes \(2, 3\) and \(4, 5\) are not aligned"):
        minidl.ones(2, 3) @ minidl.ones(4, 5)
    with pytest.raises(ValueError, match="batch dimensions"):
        minidl.ones(2, 2, 3) @ minidl.ones(3, 3, 1)
    with pytest.raises(ValueError, match="at least 1 dimension"):
        F.matmul(minidl.tensor(1.0), minidl.ones(2))
    with pytest.raises(ValueError, match="linear: input's last dimension must be in_features=3"):
        F.linear(minidl.ones(2, 4), minidl.ones(5, 3))
    with pytest.raises(ValueError, match=r"linear: 'bias' must have shape \(5,\)"):
        F.linear(minidl.ones(2, 3), minidl.ones(5, 3), minidl.ones(4))
    x64 = minidl.ones(2, 3, dtype=minidl.float64)
    with pytest.raises(TypeError, match="linear: input is float64 but weight is float32 "
                                        r"\(no mixing, as in PyTorch\)"):
        minidl.nn.Linear(3, 5)(x64)                 # matmul and conv2d refuse it too
    with pytest.raises(TypeError, match="linear: input is float64 but bias is float32"):
        F.linear(x64, minidl.ones(5, 3, dtype=minidl.float64), minidl.ones(5))
