"""Datasets for the course: offline sets that need no network, and real ones.

    load_digits()                         scikit-learn's 8×8 digits (offline)
    make_cluttered_digits(n, split, seed) harder 32×32 images built on them (offline)
    load_real_dataset(name, train)        CIFAR-10, MNIST, Fashion-MNIST (download once)
    load_image_dataset(profile)           what a profile trains on, with the offline fallback

One module per source:

    digits     scikit-learn's 8×8 handwritten digits     cluttered  harder 32×32 scenes built on them
    real       CIFAR-10, MNIST, Fashion-MNIST            download   one file: timeout, checksum, retry
    glyphs     glyph identities for verification        sequences  moving digits: frames as positives
    shapes     captioned shape scenes for CLIP           folder     your own images, ImageFolder layout
    pairs      batch samplers (minibatches, P×K)         cache      where datasets are stored
"""
from __future__ import annotations

from dataclasses import dataclass

import torch

from .cache import data_dir
from .cluttered import make_cluttered_digits
from .digits import load_digits
from .pairs import minibatches, pk_batches
from .real import DatasetUnavailable, load_real_dataset
from .shapes import CaptionedScenes, make_captioned_scenes  # captioned scenes for CLIP (notebook 08)

VAL_SEED_OFFSET = 7919          # validation images of cluttered digits: their own random stream
CIFAR10_CLASSES = ("airplane", "automobile", "bird", "cat", "deer",
                   "dog", "frog", "horse", "ship", "truck")


@dataclass
class ImageDataset:
    """Train, validation and test images as float tensors in [0, 1] on the CPU.

    train_x (N, C, H, W), train_y (N,); val_x (V, C, H, W), val_y (V,), carved
    from the training data (choose hyper-parameters on it; V may be 0);
    test_x (M, C, H, W), test_y (M,), read once for the final table.
    `name` says which dataset was really loaded (after any fallback).
    """

    name: str
    train_x: torch.Tensor
    train_y: torch.Tensor
    test_x: torch.Tensor
    test_y: torch.Tensor
    classes: tuple[str, ...]
    val_x: torch.Tensor | None = None
    val_y: torch.Tensor | None = None

    def __post_init__(self):
        if self.val_x is None:
            self.val_x = self.train_x[:0]
            self.val_y = self.train_y[:0]

    def __repr__(self) -> str:
        val = f", val {tuple(self.val_x.shape)}" if len(self.val_x) else ""
        return (f"ImageDataset({self.name}: train {tuple(self.train_x.shape)}{val}, "
                f"test {tuple(self.test_x.shape)}, {len(self.classes)} classes)")


def load_image_dataset(name: str = "cluttered_digits", n_train: int | None = None,
                       n_test: int | None = None, seed: int = 0, download: bool = True,
                       n_val: int = 0) -> ImageDataset:
    """Load an image dataset by name, falling back to cluttered digits without network.

    name: "cluttered_digits", "cifar10", "mnist" or "fashion_mnist" (or pass
    `profile.dataset`). n_train / n_test cap the sizes (the first images, after a
    seeded shuffle; required for cluttered digits, which can be any size).
    n_val: validation images carved from the training data (`profile.n_val`).
    For a real dataset they are training images set aside (disjoint from
    train_x). For cluttered digits they are extra images drawn from the
    training handwriting with their own seed, so train_x does not depend on n_val.
    """
    for label, value in (("n_train", n_train), ("n_test", n_test)):
        if value is not None and value < 1:
            raise ValueError(f"{label} must be at least 1 (or None for all), got {value}")
    if n_val < 0:
        raise ValueError(f"n_val must be ≥ 0, got {n_val}")
    n_train_cluttered = 5000 if n_train is None else n_train
    n_test_cluttered = 1000 if n_test is None else n_test
    if name == "cluttered_digits":
        return _cluttered(n_train_cluttered, n_test_cluttered, n_val, seed)
    try:
        tr_x, tr_y = load_real_dataset(name, train=True, download=download)
        te_x, te_y = load_real_dataset(name, train=False, download=download)
    except DatasetUnavailable as exc:
        print(f"{exc} -> using the offline cluttered digits instead.")
        return _cluttered(n_train_cluttered, n_test_cluttered, n_val, seed)
    if n_val >= len(tr_y):
        raise ValueError(f"n_val={n_val} leaves no training images ({name} has {len(tr_y)})")
    g = torch.Generator().manual_seed(seed)
    order = torch.randperm(len(tr_y), generator=g)
    va, tr = order[:n_val], order[n_val:][:n_train]
    te = torch.randperm(len(te_y), generator=g)[:n_test]
    classes = CIFAR10_CLASSES if name == "cifar10" else tuple(str(i) for i in range(10))
    return ImageDataset(name, tr_x[tr].float() / 255, tr_y[tr], te_x[te].float() / 255, te_y[te], classes,
                        tr_x[va].float() / 255, tr_y[va])


def _cluttered(n_train: int, n_test: int, n_val: int, seed: int) -> ImageDataset:
    tr_x, tr_y = make_cluttered_digits(n_train, "train", seed)
    te_x, te_y = make_cluttered_digits(n_test, "test", seed)
    val = make_cluttered_digits(n_val, "train", seed + VAL_SEED_OFFSET) if n_val else (None, None)
    return ImageDataset("cluttered_digits", tr_x, tr_y, te_x, te_y, tuple(str(i) for i in range(10)), *val)


__all__ = [
    "CaptionedScenes", "make_captioned_scenes", "ImageDataset", "DatasetUnavailable", "CIFAR10_CLASSES", "data_dir", "load_digits",
    "make_cluttered_digits", "load_real_dataset", "load_image_dataset", "minibatches",
    "pk_batches",
]
