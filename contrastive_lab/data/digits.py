"""scikit-learn's bundled handwritten digits (8×8, 1,797 images) as tensors.

They need no download. As they are, they are too easy to show learning (raw
pixels already give ~97 % k-NN accuracy); `cluttered.py` builds a harder image
set on top of them.
"""
from __future__ import annotations

import torch
from sklearn.datasets import load_digits as _sk_load_digits

def load_digits() -> tuple[torch.Tensor, torch.Tensor]:
    """Return (images, labels).

    Shapes: images (1797, 8, 8) float32 in [0, 1]; labels (1797,) int64 in 0..9.
    """
    bunch = _sk_load_digits()
    images = torch.tensor(bunch.images, dtype=torch.float32) / 16.0
    labels = torch.tensor(bunch.target, dtype=torch.int64)
    return images, labels


def split_indices(labels: torch.Tensor, test_fraction: float = 0.3, seed: int = 0):
    """Stratified split of indices into (train_idx, test_idx), deterministic by seed.

    Every class keeps `test_fraction` of its samples for the test side, so the
    two sides hold different handwriting of every digit.
    """
    if not 0.0 < test_fraction < 1.0:
        raise ValueError(f"test_fraction must be in (0, 1), got {test_fraction}")
    g = torch.Generator().manual_seed(seed)
    train, test = [], []
    for c in labels.unique(sorted=True):
        idx = (labels == c).nonzero().flatten()
        idx = idx[torch.randperm(len(idx), generator=g)]
        n_test = max(1, round(len(idx) * test_fraction))
        test.append(idx[:n_test])
        train.append(idx[n_test:])
    return torch.cat(train).sort().values, torch.cat(test).sort().values
