"""Batch samplers: which indices of a training set make up each batch.

    minibatches(n, batch_size, generator)      shuffled index batches for one epoch
    pk_batches(labels, p, k, generator)        P classes × K samples per batch (for mining)
"""
from __future__ import annotations

from collections.abc import Iterator

import torch



def minibatches(n: int, batch_size: int, generator: torch.Generator | None = None,
                drop_last: bool = True) -> Iterator[torch.Tensor]:
    """Yield shuffled index tensors (batch_size,) covering range(n) once.

    The indices are drawn on the generator's device (the CPU without one): give
    a generator on the GPU and every batch is an index tensor already there, so
    `data[idx]` needs no copy from the host.
    """
    if batch_size <= 0:
        raise ValueError(f"batch_size must be positive, got {batch_size}")
    stop = n - n % batch_size if drop_last else n
    if stop == 0:
        raise ValueError(f"batch_size {batch_size} is larger than the dataset ({n}); lower it")
    device = generator.device if generator is not None else "cpu"
    order = torch.randperm(n, generator=generator, device=device)
    for start in range(0, stop, batch_size):
        yield order[start:start + batch_size]


def pk_batches(labels: torch.Tensor, p: int, k: int, generator: torch.Generator | None = None,
               n_batches: int | None = None) -> Iterator[torch.Tensor]:
    """Yield index batches of P random classes × K random samples each (P·K indices).

    Every anchor then has K − 1 positives and (P − 1)·K negatives in its batch.
    The K samples of a class are drawn with replacement. n_batches defaults to
    about one pass over the data. Each batch is drawn in a few tensor ops on the
    generator's device (put `labels` there too), without a Python loop over classes.
    """
    classes, counts = labels.unique(return_counts=True)
    if p > len(classes):
        raise ValueError(f"p={p} classes asked for, but labels hold only {len(classes)}")
    if k < 2:
        raise ValueError(f"k must be ≥ 2 so every anchor has a positive, got {k}")
    device = generator.device if generator is not None else labels.device
    by_class = labels.argsort(stable=True).to(device)             # indices grouped class by class
    starts = (torch.cumsum(counts, 0) - counts).to(device)        # where each class begins in by_class
    counts = counts.to(device)
    n_batches = n_batches or max(1, len(labels) // (p * k))
    for _ in range(n_batches):
        chosen = torch.randperm(len(classes), generator=generator, device=device)[:p]       # (P,)
        offset = (torch.rand(p, k, generator=generator, device=device) * counts[chosen, None]).long()
        yield by_class[starts[chosen, None] + offset].flatten()                            # (P·K,)
