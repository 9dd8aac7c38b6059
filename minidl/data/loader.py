"""DataLoader: seeded, resumable batches of an in-memory image dataset, delivered on a device.

The images stay uint8 until they reach the training device: each batch is gathered on the host
(or on the device with ``preload=True``), copied there as uint8 (4x fewer bytes than float32),
and only then transformed and converted to float32 by array ops on that device.

Randomness depends only on ``(seed, epoch)``: the shuffle order of epoch ``e`` is
``permutation(e)``, drawn from ``SeedSequence(seed, spawn_key=(e, 0))``, and the augmentation of
batch ``b`` of epoch ``e`` draws from ``SeedSequence(seed, spawn_key=(e, 1, b))``. A run resumed
at epoch ``e`` (``set_epoch(e)``) therefore sees exactly the batches the original run saw.
"""
from __future__ import annotations

import numpy as np

from .. import backend
from .._checks import check_bool, check_int
from ..random import default_generator
from ..tensor import Tensor
from .transforms import _on_device_of


def _as_arrays(dataset):
    """(images, labels) from a dataset with .data/.targets or an (images, labels) pair."""
    if isinstance(dataset, (tuple, list)) and len(dataset) == 2:
        images, labels = dataset
    elif hasattr(dataset, "data") and hasattr(dataset, "targets"):
        images, labels = dataset.data, dataset.targets
    else:
        raise TypeError("DataLoader: expected a dataset with .data and .targets or a pair "
                        f"(images, labels), got {type(dataset).__name__}")
    if isinstance(images, Tensor):
        images = images.data
    if not backend.is_array(images):
        raise TypeError(f"DataLoader: images must be an array (N, C, H, W), "
                        f"got {type(images).__name__}")
    if images.ndim < 2 or images.dtype.kind not in "uif":
        raise ValueError(f"DataLoader: images must be a numeric array (N, ...), typically uint8 "
                         f"(N, C, H, W); got {images.dtype} {images.shape}")
    if isinstance(labels, Tensor):
        labels = labels.data
    labels = backend.as_numpy(labels) if backend._is_cupy_array(labels) else np.asarray(labels)
    if labels.ndim != 1 or labels.dtype.kind not in "iu" or len(labels) != len(images):
        raise ValueError(f"DataLoader: labels must be integers of shape ({len(images)},), got "
                         f"{labels.dtype} {labels.shape}")
    return images, labels.astype(np.int64, copy=False)


def _to_float32(images):
    """uint8 -> float32 in [0, 1]; other dtypes -> float32 unchanged in value."""
    if images.dtype == np.uint8:
        out = images.astype(np.float32)
        out *= 1.0 / 255.0
        return out
    return images.astype(np.float32, copy=False)


class DataLoader:
    """Batches ``(images, labels)`` of an array dataset as Tensors on ``device``.

    Args:
        dataset: an object with ``.data`` (N, C, H, W) and ``.targets`` (N,) (e.g. ``CIFAR10``),
            or a pair ``(images, labels)`` of such arrays. Images are typically uint8.
        batch_size: images per batch (the last may be smaller unless ``drop_last``).
        shuffle: visit the images in the seeded order ``permutation(epoch)`` instead of 0..N-1.
        drop_last: drop a final batch smaller than ``batch_size``.
        seed: int >= 0 behind all shuffling and augmentation; None draws one from minidl's
            default generator (so ``minidl.manual_seed`` makes it repeat). Stored in ``.seed``.
        device: where batches are delivered ('cpu', 'cuda', 'cuda:N').
        transform: None or a callable ``transform(images, rng)`` on the uint8 batch already on
            ``device`` (e.g. a ``transforms.Compose``), with ``rng`` a numpy Generator seeded by
            (seed, epoch, batch index).
        preload: copy the whole image array to ``device`` once (150 MB for CIFAR-10 train as
            uint8) and gather batches there, so no host-to-device copy happens per batch.

    Yields:
        images: float32 Tensor (B, C, H, W) on ``device``: the transform's output, converted
            to float32; a uint8 result (or no transform) is scaled to [0, 1] by 1/255.
        labels: int64 Tensor (B,) on ``device``.

    Epochs: each ``iter(loader)`` uses epoch ``loader.epoch`` and then advances it by one, so a
    plain ``for epoch ...: for x, y in loader`` sees epochs 0, 1, 2, ... To resume, or to pin
    the epoch explicitly (like PyTorch's ``DistributedSampler.set_epoch``), call
    ``set_epoch(e)`` before iterating.
    """

    def __init__(self, dataset, batch_size, shuffle=False, drop_last=False, seed=None,
                 device="cpu", transform=None, preload=False):
        images, labels = _as_arrays(dataset)
        batch_size = check_int("DataLoader", "batch_size", batch_size, 1)
        shuffle = check_bool("DataLoader", "shuffle", shuffle)
        drop_last = check_bool("DataLoader", "drop_last", drop_last)
        preload = check_bool("DataLoader", "preload", preload)
        if transform is not None and not callable(transform):
            raise TypeError(f"DataLoader: transform must be callable or None, got {transform!r}")
        if seed is None:
            seed = int(default_generator("cpu").integers(0, 2**62, ()))
        self.seed = check_int("DataLoader", "seed", seed, 0)
        self.batch_size, self.shuffle, self.drop_last = batch_size, shuffle, drop_last
        self.device = backend.get_device(device)
        self.transform = transform
        self.epoch = 0
        self.preload = preload
        # Host arrays are gathered per batch; preloaded (or already-on-device) ones are moved to
        # ``device`` once and gathered there.
        if preload or backend._is_cupy_array(images):
            images = backend.to_device(images, self.device)
        self._images, self._labels = images, labels
        self._on_device = backend._is_cupy_array(images)
        self._device_labels = backend.to_device(labels, self.device) if self._on_device else None

    @property
    def num_samples(self):
        """Number of images in the dataset."""
        return len(self._labels)

    def __len__(self):
        """Number of batches per epoch."""
        n, b = self.num_samples, self.batch_size
        return n // b if self.drop_last else -(-n // b)

    def set_epoch(self, epoch):
        """Make the next iteration use epoch ``epoch`` (its shuffle order and augmentation)."""
        self.epoch = check_int("DataLoader.set_epoch", "epoch", epoch, 0)

    def permutation(self, epoch):
        """The (N,) int64 order in which epoch ``epoch`` visits the images."""
        if not self.shuffle:
            return np.arange(self.num_samples)
        seq = np.random.SeedSequence(self.seed, spawn_key=(int(epoch), 0))
        return np.random.default_rng(seq).permutation(self.num_samples)

    def batch_rng(self, epoch, index, stream=1):
        """The Generator handed to ``transform`` for batch ``index`` of epoch ``epoch``
        (``SeedSequence(seed, spawn_key=(epoch, stream, index))``); another ``stream`` (2, 3,
        ...) gives independent draws for other per-batch randomness of a training loop, such
        as batch mixing, that resume as exactly as the augmentation."""
        stream = check_int("DataLoader.batch_rng", "stream", stream, 1)
        return np.random.default_rng(
            np.random.SeedSequence(self.seed, spawn_key=(int(epoch), stream, int(index))))

    def __iter__(self):
        epoch = self.epoch
        self.epoch += 1
        return self.batches(epoch)

    def batches(self, epoch, start=0):
        """The batches of epoch ``epoch`` from batch index ``start`` on (what ``iter`` yields
        for that epoch, minus the first ``start``): resumes an interrupted epoch exactly."""
        start = check_int("DataLoader.batches", "start", start, 0)
        order = self.permutation(epoch)
        if self._on_device:
            xp = backend.get_array_module(self._images)
            with self._images.device:
                order = xp.asarray(order)
        for b in range(int(start), len(self)):
            index = order[b * self.batch_size:(b + 1) * self.batch_size]
            if self._on_device:
                with self._images.device:
                    images = xp.take(self._images, index, axis=0)
                    labels = xp.take(self._device_labels, index)
            else:
                images = backend.to_device(np.take(self._images, index, axis=0), self.device)
                labels = backend.to_device(self._labels[index], self.device)
            if self.transform is not None:
                images = self.transform(images, self.batch_rng(epoch, b))
                if isinstance(images, Tensor):
                    images = images.data
            with _on_device_of(images):
                images = _to_float32(images)
            yield Tensor(images), Tensor(labels)

    def __repr__(self):
        return (f"DataLoader({self.num_samples} samples, batch_size={self.batch_size}, "
                f"shuffle={self.shuffle}, drop_last={self.drop_last}, seed={self.seed}, "
                f"device='{self.device}', epoch={self.epoch})")
