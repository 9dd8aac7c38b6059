"""A tiny, learnable CIFAR-10 in the official binary layout, for CLI tests (no network, no
../shared): each class is a fixed random template plus noise, so a net learns it in a few
steps. Use with ``records(monkeypatch, ...)`` since the reader expects the official sizes."""
import os

import numpy as np

from minidl.data import CIFAR10


def records(monkeypatch, n_train, n_test):
    """Make the reader expect ``n_train`` records per train file, ``n_test`` in the test file."""
    monkeypatch.setattr(CIFAR10, "_records", {"train": n_train, "test": n_test})


def write_binary_cifar10(root, n_train, n_test, seed=0):
    """Write cifar-10-batches-bin under root (5 train files of n_train, 1 test of n_test)."""
    rng = np.random.default_rng(seed)
    templates = rng.integers(30, 226, (10, 3, 32, 32))
    folder = os.path.join(root, "cifar-10-batches-bin")
    os.makedirs(folder, exist_ok=True)
    names = [f"data_batch_{i}.bin" for i in range(1, 6)] + ["test_batch.bin"]
    for name in names:
        n = n_test if name.startswith("test") else n_train
        y = rng.integers(0, 10, n)
        x = np.clip(templates[y] + rng.integers(-30, 31, (n, 3, 32, 32)), 0, 255)
        rec = np.concatenate([y[:, None], x.reshape(n, -1)], axis=1).astype(np.uint8)
        rec.tofile(os.path.join(folder, name))
    with open(os.path.join(folder, "batches.meta.txt"), "w") as f:
        f.write("\n".join(f"class{i}" for i in range(10)) + "\n\n")
    return folder
