"""Numerical gradient checks: prove an op's (or a whole network's) backward against finite
differences.

Full mode builds both Jacobians completely. The numerical one perturbs every input element by
+-eps (central differences, O(eps^2) error); the analytic one runs backward once per output
element with a one-hot upstream gradient, so every entry of every output is checked, not just
the gradient of ``sum``. It then repeats the comparison for a random upstream gradient (a
vector-Jacobian product), which catches a backward that treats its upstream gradient wrongly.

Fast mode (``fast_mode=True``) checks directional derivatives instead: for a random unit
direction u over all inputs and a random upstream v over all outputs, the finite difference of
v . f(x + t u) must equal sum(grad_x(v . f) * u). It costs two forwards and one backward per
direction, so it scales to whole networks.
"""
from __future__ import annotations

import numpy as np

from . import backend
from .autograd import no_grad
from .tensor import Tensor


class GradcheckError(AssertionError):
    """Raised when the analytic and numerical gradients disagree."""


def _as_tuple(x):
    return tuple(x) if isinstance(x, (tuple, list)) else (x,)


def _outputs(fn, inputs):
    out = _as_tuple(fn(*inputs))
    for k, y in enumerate(out):
        if not isinstance(y, Tensor):
            raise TypeError(f"gradcheck: fn must return Tensors, output {k} is "
                            f"{type(y).__name__}")
    return out


def _flat_values(fn, inputs):
    """All outputs of fn, flattened and concatenated, as a float64 host vector (no graph)."""
    with no_grad():
        out = _outputs(fn, inputs)
    return np.concatenate([backend.as_numpy(y.data).astype(np.float64).ravel() for y in out])


def _check_inputs(inputs):
    checked = []
    for i, x in enumerate(inputs):
        if isinstance(x, Tensor) and x.requires_grad:
            if x.dtype != np.float64:
                raise TypeError(
                    f"gradcheck: input {i} has dtype {x.dtype}; gradcheck needs float64 inputs "
                    "(float32 finite differences are too coarse): pass x.double()")
            if not x.is_leaf:
                raise ValueError(f"gradcheck: input {i} is not a leaf tensor; pass leaves "
                                 "(e.g. x.detach().requires_grad_())")
            checked.append(i)
    if not checked:
        raise ValueError("gradcheck: no input requires grad; set requires_grad=True on the "
                         "tensors to check")
    return checked


def _analytic_vjp(fn, inputs, checked, upstream):
    """Gradients of sum(upstream_k * out_k) for the checked inputs, as float64 host arrays."""
    for i in checked:
        inputs[i].grad = None
    out = _outputs(fn, inputs)
    if len(upstream) != len(out):
        raise RuntimeError("gradcheck: fn returned a different number of outputs between calls")
    total = None
    for y, v in zip(out, upstream):
        if not y.requires_grad:
            continue
        term = (y * Tensor(backend.to_device(v.astype(y.dtype), y.device))).sum()
        total = term if total is None else total + term
    grads = []
    if total is not None:
        total.backward()
    for i in checked:
        g = inputs[i].grad
        grads.append(np.zeros(inputs[i].shape) if g is None
                     else backend.as_numpy(g.data).astype(np.float64))
        inputs[i].grad = None
    return grads


def _numerical_jacobian(fn, inputs, checked, eps):
    """(n_out, n_in_total) central-difference Jacobian, perturbing each input element."""
    cols = []
    for i in checked:
        data = inputs[i].data            # perturbed where it lies, in C order of elements
        for j in np.ndindex(data.shape):  # (a strided view stays a view of its base)
            orig = data[j].item()
            data[j] = orig + eps
            plus = _flat_values(fn, inputs)
            data[j] = orig - eps
            minus = _flat_values(fn, inputs)
            data[j] = orig
            cols.append((plus - minus) / (2.0 * eps))
    return np.stack(cols, axis=1)


def _locate(inputs, checked, col):
    """Map a column of the stacked Jacobian back to (input index, element index)."""
    for i in checked:
        n = inputs[i].data.size
        if col < n:
            return i, np.unravel_index(col, inputs[i].shape)
        col -= n
    raise AssertionError("column out of range")


def _fail(msg, raise_exception):
    if raise_exception:
        raise GradcheckError(msg)
    return False


def gradcheck(fn, inputs, eps=1e-6, atol=1e-5, rtol=1e-3, fast_mode=False, n_directions=1,
              seed=0, raise_exception=True):
    """Check the gradients of ``fn`` at ``inputs`` against central finite differences.

    Args:
        fn: callable taking ``*inputs`` and returning a Tensor or a tuple of Tensors.
        inputs: a Tensor or sequence; the float64 leaves with ``requires_grad=True`` are checked
            (others, and non-tensors, are passed through unchanged).
        eps: finite-difference step.
        atol, rtol: an entry passes when |analytic - numerical| <= atol + rtol * |numerical|.
        fast_mode: check ``n_directions`` random directional derivatives instead of the full
            Jacobians (for large networks).
        seed: seeds the random upstream gradients and directions.
        raise_exception: raise GradcheckError on failure (else return False).

    Returns:
        True when every check passes.
    """
    inputs = list(_as_tuple(inputs))
    checked = _check_inputs(inputs)
    rng = np.random.default_rng(seed)
    with no_grad():
        shapes = [y.shape for y in _outputs(fn, inputs)]
    if fast_mode:
        return _directional(fn, inputs, checked, shapes, eps, atol, rtol, n_directions, rng,
                            raise_exception)

    numeric = _numerical_jacobian(fn, inputs, checked, eps)            # (n_out, n_in)
    n_out = numeric.shape[0]
    analytic = np.empty_like(numeric)
    sizes = [int(np.prod(s)) for s in shapes]
    for r in range(n_out):
        onehot = np.zeros(n_out)
        onehot[r] = 1.0
        ups = np.split(onehot, np.cumsum(sizes)[:-1])
        grads = _analytic_vjp(fn, inputs, checked, [u.reshape(s) for u, s in zip(ups, shapes)])
        analytic[r] = np.concatenate([g.ravel() for g in grads])
    err = np.abs(analytic - numeric) - (atol + rtol * np.abs(numeric))
    bad = ~(err <= 0)            # NaN on either side fails too: nothing was compared there
    if bad.any():
        r, c = np.unravel_index(np.argmax(np.where(bad, np.nan_to_num(err, nan=np.inf), -1)),
                                err.shape)
        i, elem = _locate(inputs, checked, c)
        hint = ("" if np.isfinite(numeric[r, c]) else "; the numerical derivative is not "
                "finite: the function is not differentiable at this point, check another one")
        return _fail(
            f"gradcheck: Jacobian mismatch for input {i} (shape {inputs[i].shape}) at element "
            f"{tuple(int(e) for e in elem)}, output element {r}: numerical {numeric[r, c]:.10g}, "
            f"analytic {analytic[r, c]:.10g} (atol={atol}, rtol={rtol}; "
            f"{int(bad.sum())} of {err.size} entries out of tolerance){hint}", raise_exception)

    v = rng.standard_normal(n_out)
    ups = [u.reshape(s) for u, s in zip(np.split(v, np.cumsum(sizes)[:-1]), shapes)]
    grads = np.concatenate([g.ravel() for g in _analytic_vjp(fn, inputs, checked, ups)])
    expected = v @ numeric
    err = np.abs(grads - expected) - (atol + rtol * np.abs(expected))
    if not (err <= 0).all():
        c = int(np.argmax(np.nan_to_num(err, nan=np.inf)))
        i, elem = _locate(inputs, checked, c)
        return _fail(
            f"gradcheck: vector-Jacobian product mismatch (random upstream gradient) for input "
            f"{i} at element {tuple(int(e) for e in elem)}: numerical {expected[c]:.10g}, "
            f"analytic {grads[c]:.10g}", raise_exception)
    return True


def _directional(fn, inputs, checked, shapes, eps, atol, rtol, n_directions, rng,
                 raise_exception):
    for k in range(n_directions):
        ups = [rng.standard_normal(s) for s in shapes]
        dirs = [rng.standard_normal(inputs[i].shape) for i in checked]
        norm = np.sqrt(sum(float((d * d).sum()) for d in dirs))
        dirs = [d / norm for d in dirs]
        grads = _analytic_vjp(fn, inputs, checked, ups)
        analytic = sum(float((g * d).sum()) for g, d in zip(grads, dirs))
        originals = [backend.as_numpy(inputs[i].data).copy() for i in checked]
        v = np.concatenate([u.ravel() for u in ups])
        values = []
        for sign in (1.0, -1.0):
            for i, d, o in zip(checked, dirs, originals):
                inputs[i].data[...] = backend.to_device(o + sign * eps * d, inputs[i].device)
            values.append(float(np.dot(v, _flat_values(fn, inputs))))
        for i, o in zip(checked, originals):
            inputs[i].data[...] = backend.to_device(o, inputs[i].device)
        numeric = (values[0] - values[1]) / (2.0 * eps)
        if not abs(analytic - numeric) <= atol + rtol * abs(numeric):
            return _fail(
                f"gradcheck (fast mode): directional derivative mismatch in direction {k}: "
                f"numerical {numeric:.10g}, analytic {analytic:.10g} (atol={atol}, rtol={rtol})",
                raise_exception)
    return True
