"""Batch-level MixUp and CutMix: mix each image of a batch with its neighbour, labels likewise.

Both are callables ``t(images, labels, rng=None) -> (mixed_images, soft_labels)`` on a float
batch (N, C, H, W) and its integer class labels (N,), applied after the per-image transforms
(so after ``Normalize``: mixing uint8 pixels would round them). As in torchvision, image i is
paired with image i - 1 (the batch rolled by one along N; image 0 with image N - 1), so no
permutation is drawn: the loader's shuffle already makes the pairs random. One ``lam`` is drawn
per batch from Beta(alpha, alpha); with y_i the one-hot row of label i:

    MixUp:   x_i <- lam x_i + (1 - lam) x_{i-1}
             y_i <- lam y_i + (1 - lam) y_{i-1}
    CutMix:  a box of about sqrt(1 - lam) H by sqrt(1 - lam) W pixels, centred at a uniformly
             drawn pixel and clipped to the image, is the same for the whole batch; inside it
             x_i takes x_{i-1}'s pixels, outside it keeps its own. The labels are mixed as for
             MixUp with lam' = 1 - (box area) / (H W), the share of x_i's own pixels.

A batch of one image is mixed with itself, as torchvision does: the images and labels come back
unchanged (the labels one-hot).

Like the transforms in ``minidl.data.transforms``, each splits into ``get_params(shape, rng)``,
which draws on the host from a ``numpy.random.Generator`` (so cpu and cuda give identical
results for the same generator), and ``apply(images, labels, params)``, which works on the
batch's device with array ops only. The soft labels (N, num_classes) have the images' dtype and
device, as ``F.cross_entropy`` wants class probabilities. In a training loop::

    import numpy as np
    import minidl.functional as F
    from minidl.data import MixUpOrCutMix

    mix = MixUpOrCutMix(mixup_alpha=0.8, cutmix_alpha=1.0, num_classes=10)
    rng = np.random.default_rng(0)
    for images, labels in loader:                   # float32 Tensors, normalized
        images, targets = mix(images, labels, rng)  # targets: (N, 10), images' dtype
        loss = F.cross_entropy(model(images), targets)
        ...

Only the training batches are mixed; evaluate on plain images and integer labels.

References:
    Zhang, Cisse, Dauphin & Lopez-Paz, "mixup: Beyond Empirical Risk Minimization", ICLR 2018.
    Yun, Han, Oh, Chun, Choe & Yoo, "CutMix: Regularization Strategy to Train Strong
    Classifiers with Localizable Features", ICCV 2019.
"""
from __future__ import annotations

import math

import numpy as np

from .. import backend
from .._checks import check_int, check_number
from ..tensor import Tensor
from .transforms import _on_device_of, _rng


def _alpha(op, name, alpha):
    return check_number(op, name, alpha, 0, math.inf, open_min=True, open_max=True)


def _images(op, images):
    """(array, was_tensor) for a non-empty float batch (N, C, H, W)."""
    was_tensor = isinstance(images, Tensor)
    arr = images.data if was_tensor else images
    if not backend.is_array(arr):
        raise TypeError(f"{op}: 'images' must be a batch (N, C, H, W) as an array or Tensor, "
                        f"got {type(images).__name__}")
    if arr.ndim != 4 or arr.size == 0:
        raise ValueError(f"{op}: 'images' must be a non-empty batch of shape (N, C, H, W), "
                         f"got shape {arr.shape}")
    if arr.dtype.kind != "f":
        raise TypeError(f"{op}: 'images' must be a float batch, got dtype {arr.dtype} (mixing "
                        "integer pixels would round them: mix after Normalize)")
    return arr, was_tensor


def _labels(op, labels, arr, num_classes):
    """The (N,) integer labels on ``arr``'s device. Labels outside [0, num_classes) raise a
    ValueError: at once on the host, at the next synchronization on a GPU
    (``backend.check_later``; their one-hot rows are all zero until then)."""
    lab = labels.data if isinstance(labels, Tensor) else labels
    if not backend.is_array(lab):
        raise TypeError(f"{op}: 'labels' must be an array or Tensor of class indices (N,), "
                        f"got {type(labels).__name__}")
    if lab.dtype.kind not in "iu":
        raise TypeError(f"{op}: 'labels' must hold integer class indices, got dtype "
                        f"{lab.dtype} with shape {lab.shape} (one-hot or soft labels are not "
                        "accepted)")
    N = arr.shape[0]
    if lab.shape != (N,):
        raise ValueError(f"{op}: 'labels' must have shape ({N},) to match images "
                         f"{arr.shape}, got {lab.shape}")
    lab = backend.to_device(lab, backend.device_of(arr))

    def error():
        lo, hi = int(lab.min()), int(lab.max())
        return ValueError(f"{op}: 'labels' holds {lo if lo < 0 else hi}, outside [0, "
                          f"{num_classes}) for num_classes={num_classes}")
    backend.check_later(((lab < 0) | (lab >= num_classes)).any(), error)
    return lab


def _roll(a):
    """``a`` rolled by one along N: row i holds a[i - 1], row 0 holds a[N - 1]."""
    return backend.get_array_module(a).roll(a, 1, axis=0)


def _blend(a, lam):
    """lam a + (1 - lam) roll(a), in a's dtype (Python-float scales keep float32)."""
    out = a * lam
    rolled = _roll(a)
    rolled *= 1.0 - lam
    out += rolled
    return out


def _spatial(op, shape):
    if len(shape) != 4:
        raise ValueError(f"{op}: 'shape' must be a batch shape (N, C, H, W), got {shape}")
    return int(shape[2]), int(shape[3])


class _Mix:
    """Shared validation, label mixing and calling convention; subclasses define
    ``get_params`` and ``_mix_images(op, arr, params) -> (mixed, label_lam)``."""

    def __init__(self, alpha=1.0, num_classes=None):
        op = type(self).__name__
        self.alpha = _alpha(op, "alpha", alpha)
        self.num_classes = check_int(op, "num_classes", num_classes, 1)

    def apply(self, images, labels, params):
        """Mix ``images`` and ``labels`` with the host ``params`` from ``get_params``.

        Returns (mixed images like ``images``, soft labels (N, num_classes) of their dtype on
        their device); a Tensor batch gives two Tensors, an array batch two arrays."""
        return self._apply(type(self).__name__, images, labels, params)

    def _apply(self, op, images, labels, params):
        arr, was_tensor = _images(op, images)
        with _on_device_of(arr):
            lab = _labels(op, labels, arr, self.num_classes)
            out, lam = self._mix_images(op, arr, params)
            xp = backend.get_array_module(arr)
            onehot = (lab[:, None] == xp.arange(self.num_classes)).astype(arr.dtype)  # (N, K)
            soft = _blend(onehot, lam)
        return (Tensor(out), Tensor(soft)) if was_tensor else (out, soft)

    def __call__(self, images, labels, rng=None):
        arr, _ = _images(type(self).__name__, images)
        return self.apply(images, labels, self.get_params(arr.shape, rng))

    def __repr__(self):
        return f"{type(self).__name__}(alpha={self.alpha}, num_classes={self.num_classes})"


class MixUp(_Mix):
    """MixUp of a batch with itself rolled by one: x_i <- lam x_i + (1 - lam) x_{i-1}, the
    one-hot labels likewise, with one lam ~ Beta(alpha, alpha) per batch.

    Reference: Zhang et al., "mixup: Beyond Empirical Risk Minimization", ICLR 2018.

    Args:
        alpha: the Beta distribution's parameter (> 0); 1 draws lam uniformly in [0, 1],
            smaller values favour lam near 0 or 1 (mild mixing).
        num_classes: number of classes K (required, >= 1), the width of the soft labels.
    Call: ``mixup(images, labels, rng=None)``; images float (N, C, H, W) array or Tensor,
        labels integer (N,) in [0, K), rng a numpy Generator, an int seed or None (one drawn
        from minidl's default generator).
    Returns: mixed images (N, C, H, W) of the input's kind, dtype and device; soft labels
        (N, K) of the same kind, dtype and device, each row summing to 1.
    """

    def get_params(self, shape, rng=None):
        """lam, a Python float drawn from Beta(alpha, alpha) (``shape`` is not used)."""
        return float(_rng("MixUp", rng).beta(self.alpha, self.alpha))

    def _mix_images(self, op, arr, params):
        lam = check_number(op, "params", params, 0, 1)
        return _blend(arr, lam), lam


class CutMix(_Mix):
    """CutMix of a batch with itself rolled by one: one box, the same for the whole batch, is
    pasted from x_{i-1} into x_i; the one-hot labels are mixed with the share of x_i's own
    pixels, lam' = 1 - box area / (H W).

    ``get_params`` draws lam ~ Beta(alpha, alpha), then the box centre (cy, cx) uniformly
    among the H x W pixels. The box's half-sides are int(sqrt(1 - lam) H / 2) rows and
    int(sqrt(1 - lam) W / 2) columns (truncated, as torchvision does, so an unclipped box has
    even sides and lam near 1 gives an empty box: no mixing); it covers rows
    cy - half_h .. cy + half_h - 1, likewise columns, intersected with the image.

    Reference: Yun et al., "CutMix: Regularization Strategy to Train Strong Classifiers with
    Localizable Features", ICCV 2019.

    Args, call and returns: as ``MixUp``.
    """

    def get_params(self, shape, rng=None):
        """The box (y0, x0, y1, x1) as Python ints: rows y0:y1 and columns x0:x1 (0 <= y0 <=
        y1 <= H, 0 <= x0 <= x1 <= W). The label weight lam' follows from it in ``apply``."""
        H, W = _spatial("CutMix", shape)
        rng = _rng("CutMix", rng)
        lam = float(rng.beta(self.alpha, self.alpha))
        cy, cx = int(rng.integers(H)), int(rng.integers(W))
        r = 0.5 * math.sqrt(1.0 - lam)
        half_h, half_w = int(r * H), int(r * W)
        return max(cy - half_h, 0), max(cx - half_w, 0), min(cy + half_h, H), min(cx + half_w, W)

    def _mix_images(self, op, arr, params):
        H, W = arr.shape[2:]
        box = tuple(params) if isinstance(params, (tuple, list)) else None
        if (box is None or len(box) != 4
                or not all(isinstance(v, (int, np.integer)) and not isinstance(v, bool)
                           for v in box)
                or not (0 <= box[0] <= box[2] <= H and 0 <= box[1] <= box[3] <= W)):
            raise ValueError(f"{op}: 'params' must be a box (y0, x0, y1, x1) of ints with "
                             f"0 <= y0 <= y1 <= {H} and 0 <= x0 <= x1 <= {W} (images "
                             f"{arr.shape}), got {params!r}")
        y0, x0, y1, x1 = (int(v) for v in box)
        out = arr.copy()
        out[:, :, y0:y1, x0:x1] = _roll(arr[:, :, y0:y1, x0:x1])
        return out, 1.0 - (y1 - y0) * (x1 - x0) / (H * W)


class MixUpOrCutMix:
    """Per batch, CutMix with probability ``p_cutmix``, else MixUp (torchvision's
    ``RandomChoice([CutMix(...), MixUp(...)])`` when p_cutmix = 0.5).

    Args:
        mixup_alpha, cutmix_alpha: the Beta parameters of the two (> 0).
        num_classes: number of classes K (required, >= 1).
        p_cutmix: probability of CutMix for a batch, in [0, 1].
    Call and returns: as ``MixUp``. The ``mixup`` and ``cutmix`` attributes hold the two.
    """

    def __init__(self, mixup_alpha=1.0, cutmix_alpha=1.0, num_classes=None, p_cutmix=0.5):
        op = "MixUpOrCutMix"
        mixup_alpha = _alpha(op, "mixup_alpha", mixup_alpha)
        cutmix_alpha = _alpha(op, "cutmix_alpha", cutmix_alpha)
        num_classes = check_int(op, "num_classes", num_classes, 1)
        self.p_cutmix = check_number(op, "p_cutmix", p_cutmix, 0, 1)
        self.mixup = MixUp(mixup_alpha, num_classes)
        self.cutmix = CutMix(cutmix_alpha, num_classes)

    def get_params(self, shape, rng=None):
        """("cutmix", box) or ("mixup", lam): first the choice (one uniform draw), then the
        chosen transform's ``get_params`` from the same generator."""
        rng = _rng("MixUpOrCutMix", rng)
        if rng.random() < self.p_cutmix:
            return "cutmix", self.cutmix.get_params(shape, rng)
        return "mixup", self.mixup.get_params(shape, rng)

    def apply(self, images, labels, params):
        if not (isinstance(params, tuple) and len(params) == 2
                and isinstance(params[0], str) and params[0] in ("mixup", "cutmix")):
            raise ValueError(f"MixUpOrCutMix: 'params' must be ('mixup', lam) or ('cutmix', "
                             f"box), got {params!r}")
        which, inner = params
        return getattr(self, which)._apply("MixUpOrCutMix", images, labels, inner)

    def __call__(self, images, labels, rng=None):
        arr, _ = _images("MixUpOrCutMix", images)
        return self.apply(images, labels, self.get_params(arr.shape, rng))

    def __repr__(self):
        return (f"MixUpOrCutMix(mixup_alpha={self.mixup.alpha}, cutmix_alpha="
                f"{self.cutmix.alpha}, num_classes={self.mixup.num_classes}, "
                f"p_cutmix={self.p_cutmix})")
