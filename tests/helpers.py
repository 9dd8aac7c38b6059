"""The one op-checking harness (Chainer-style): forward against a reference, float64 gradcheck
of every input with random upstream gradients, dtype preserved."""
import numpy as np

import minidl
from minidl import backend


def to_tensor(array, device="cpu", requires_grad=False, dtype=None):
    """A tensor on ``device`` from a NumPy array."""
    a = np.asarray(array)
    if dtype is not None:
        a = a.astype(dtype)
    return minidl.tensor(a, device=device, requires_grad=requires_grad)


def host(x):
    """NumPy copy of a Tensor or array."""
    return backend.as_numpy(x.data if isinstance(x, minidl.Tensor) else x)


def check_op(fn, arrays, reference=None, device="cpu", grad=True, atol=1e-5, rtol=1e-3,
             fwd_atol=1e-6, fwd_rtol=1e-5, check_float32=True, nondiff=()):
    """Check ``fn(*tensors)`` made from NumPy ``arrays``.

    - forward in float64 equals ``reference(*arrays)`` (if given);
    - float64 gradcheck of every input not listed in ``nondiff`` (random + one-hot upstream);
    - with float32 inputs the output is float32 (dtype preserved).
    """
    arrays = [np.asarray(a) for a in arrays]
    is_float = [a.dtype.kind == "f" and i not in nondiff for i, a in enumerate(arrays)]
    inputs = [to_tensor(a.astype(np.float64) if f else a, device, requires_grad=f and grad)
              for a, f in zip(arrays, is_float)]
    out = fn(*inputs)
    outs = out if isinstance(out, tuple) else (out,)
    if reference is not None:
        ref = reference(*[a.astype(np.float64) if f else a for a, f in zip(arrays, is_float)])
        refs = ref if isinstance(ref, tuple) else (ref,)
        assert len(refs) == len(outs)
        for o, r in zip(outs, refs):
            assert o.shape == np.shape(r), (o.shape, np.shape(r))
            np.testing.assert_allclose(host(o), r, atol=fwd_atol, rtol=fwd_rtol)
    if grad and any(is_float):
        assert minidl.gradcheck(fn, inputs, atol=atol, rtol=rtol)
    if check_float32 and any(is_float):
        inputs32 = [to_tensor(a.astype(np.float32) if f else a, device)
                    for a, f in zip(arrays, is_float)]
        out32 = fn(*inputs32)
        for o in (out32 if isinstance(out32, tuple) else (out32,)):
            if o.dtype.kind == "f":
                assert o.dtype == np.float32, f"float32 in, {o.dtype} out"
    return outs
