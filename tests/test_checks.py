"""minidl._checks: the one set of scalar-argument checks (type -> TypeError, range ->
ValueError, one message form), and callers that take a 0-d array as its scalar."""
import numpy as np
import pytest

import minidl
import minidl.nn as nn
from minidl._checks import check_bool, check_int, check_number


def test_check_int():
    assert check_int("f", "n", np.int32(3), 1) == 3 and type(check_int("f", "n", 3)) is int
    with pytest.raises(TypeError, match=r"f: 'n' must be a positive int, got float 2\.0"):
        check_int("f", "n", 2.0, 1)
    with pytest.raises(TypeError, match=r"f: 'n' must be an int, got bool True"):
        check_int("f", "n", True)
    with pytest.raises(ValueError, match=r"f: 'n' must be a non-negative int, got -1$"):
        check_int("f", "n", -1, 0)
    with pytest.raises(ValueError, match=r"f: 'n' must be an int >= 2, got 1$"):
        check_int("f", "n", 1, 2)


def test_check_number():
    assert check_number("f", "x", np.float32(0.5), 0, 1) == 0.5
    assert type(check_number("f", "x", 3)) is float
    assert check_number("f", "x", float("inf"), 0) == float("inf")
    with pytest.raises(TypeError, match=r"f: 'x' must be a number, got str '1'"):
        check_number("f", "x", "1")
    with pytest.raises(TypeError, match=r"f: 'x' must be a positive number, got bool False"):
        check_number("f", "x", False, 0, open_min=True)
    with pytest.raises(ValueError, match=r"f: 'x' must be a number in \[0, 1\), got 1\.0"):
        check_number("f", "x", 1, 0, 1, open_max=True)
    with pytest.raises(ValueError, match=r"f: 'x' in group 2 must be a non-negative number, "
                                         r"got nan"):
        check_number("f", "x", float("nan"), 0, where=" in group 2")


def test_check_bool():
    assert check_bool("f", "b", np.bool_(True)) is True
    with pytest.raises(TypeError, match=r"f: 'b' must be a bool, got int 1"):
        check_bool("f", "b", 1)


def test_zero_d_arrays_count_as_their_scalar():
    assert minidl.full((2,), np.array(3)).dtype == np.int64
    assert minidl.arange(np.array(3)).dtype == np.int64
    y = minidl.clip(minidl.ones(3), max=np.array(0.5))
    np.testing.assert_array_equal(y.data, np.full(3, 0.5, np.float32))
    assert type(nn.BatchNorm1d(3, momentum=np.array(0.2)).momentum) is float


def test_arguments_that_accept_none_say_so():
    import minidl.functional as F
    x = minidl.ones(1, 1, 4, 4)
    cases = [(lambda: F.avg_pool2d(x, 2, divisor_override=1.5), "avg_pool2d", "divisor_override",
              "an int or None, got float 1.5"),
             (lambda: F.interpolate(x, scale_factor=2, mode="bilinear", align_corners=1),
              "interpolate", "align_corners", "a bool or None, got int 1"),
             (lambda: minidl.clip(x, max="1"), "clip", "max", "a number or None, got str '1'"),
             (lambda: F.embedding(minidl.tensor([0]), minidl.ones(3, 2), padding_idx=1.0),
              "embedding", "padding_idx", "an int or None, got float 1.0"),
             (lambda: nn.BatchNorm2d(3, momentum="a"), "BatchNorm2d", "momentum",
              r"a number in \[0, 1\] or None, got str 'a'")]
    for call, op, arg, tail in cases:
        with pytest.raises(TypeError, match=rf"{op}: '{arg}' must be {tail}"):
            call()
