"""Data: CIFAR-10/100 readers, batched on-device transforms, and a seeded DataLoader.

    from minidl.data import CIFAR10, DataLoader, transforms as T

    train = CIFAR10("data", train=True, download=True)          # .data (N, 3, 32, 32) uint8
    aug = T.Compose([T.RandomCrop(32, padding=4), T.RandomHorizontalFlip(),
                     T.Normalize(T.CIFAR10_MEAN, T.CIFAR10_STD)])
    loader = DataLoader(train, 128, shuffle=True, seed=0, device="cuda", transform=aug)
    for images, labels in loader:      # float32 (128, 3, 32, 32) and int64 (128,) on the GPU
        ...

MixUp, CutMix and MixUpOrCutMix (``minidl.data.mix``) mix whole batches and their labels.
"""
from . import transforms
from .cifar import CIFAR10, CIFAR100
from .download import check_md5, download_url, extract_tar, md5sum
from .loader import DataLoader
from .mix import CutMix, MixUp, MixUpOrCutMix
from .transforms import (CIFAR10_MEAN, CIFAR10_STD, CIFAR100_MEAN, CIFAR100_STD, Compose, Cutout,
                         Normalize, RandomCrop, RandomHorizontalFlip)

__all__ = ["CIFAR10", "CIFAR100", "DataLoader", "transforms", "Compose", "Normalize",
           "RandomCrop", "RandomHorizontalFlip", "Cutout", "MixUp", "CutMix", "MixUpOrCutMix",
           "CIFAR10_MEAN", "CIFAR10_STD",
           "CIFAR100_MEAN", "CIFAR100_STD", "md5sum", "check_md5", "download_url", "extract_tar"]
