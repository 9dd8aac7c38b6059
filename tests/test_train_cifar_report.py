"""train_cifar's per-class report: the confusion matrix evaluate() sums on the device, the
per-class accuracies and the two summary lines made from it."""
import numpy as np
import pytest

import minidl
import minidl.nn as nn
import train_cifar
from minidl import data as D

NAMES = ["cat", "dog", "ship"]


def test_evaluate_counts_true_against_predicted_classes(rng):
    """A linear model on random data: the matrix equals the one counted in NumPy from the
    same logits, and its trace over its sum is the accuracy evaluate() reports."""
    x = rng.standard_normal((70, 5)).astype(np.float32)
    y = rng.integers(0, 3, 70)
    model = nn.Linear(5, 3)
    loader = D.DataLoader((x, y), 16)
    loss, acc, counts = train_cifar.evaluate(model, loader, False, classes=3)
    pred = model(minidl.tensor(x)).numpy().argmax(1)
    expected = np.zeros((3, 3), np.int64)
    np.add.at(expected, (y, pred), 1)
    np.testing.assert_array_equal(counts, expected)
    assert acc == pytest.approx(np.trace(counts) / 70)
    assert train_cifar.evaluate(model, loader, False) == (loss, acc)     # without classes


def test_per_class_and_text():
    counts = np.array([[8, 2, 0],       # cat: 80%, twice taken for a dog
                       [5, 5, 0],       # dog: 50%, 5 times for a cat
                       [0, 0, 0]])      # no ship in this test set
    assert train_cifar.per_class(counts, NAMES) == {"cat": 0.8, "dog": 0.5, "ship": None}
    first, second = train_cifar.confusion_text(counts, NAMES).split("\n")
    assert first == "per class: cat 80.0%, dog 50.0%"
    assert second == "most confused: dog as cat 50.0% of dog, cat as dog 20.0% of cat"
    perfect = train_cifar.confusion_text(np.diag([3, 4, 5]), NAMES).split("\n")
    assert perfect == ["per class: cat 100.0%, dog 100.0%, ship 100.0%", "most confused: none"]


def test_many_classes_show_the_ten_worst():
    names = [f"c{i}" for i in range(30)]
    counts = np.diag(np.arange(100, 130))
    counts[:, 0] += 10                   # every class sometimes taken for c0
    counts[0, 0] -= 10
    text = train_cifar.confusion_text(counts, names)
    first = text.split("\n")[0]
    assert first.startswith("worst classes: c1 ") and first.count("%") == 10
    assert "c0" not in first             # c0 is always right
