"""Triplet miners: which (anchor, positive, negative) triplets a batch trains on.

A miner looks at the batch's embeddings (without gradient) and labels and
returns three index tensors (a, p, n) of equal length; the loss then uses
`triplet_loss(z[a], z[p], z[n])`. Keeping the miner apart from the loss lets a
notebook swap the strategy and keep everything else.

    random_triplets     any positive, any negative
    semi_hard_triplets  negatives farther than the positive but inside the margin (FaceNet)
    batch_hard_triplets for each anchor the farthest positive and the closest negative
    batch_all_triplets  every valid triplet that still violates the margin

Batches should hold several samples per class (see `data.pairs.pk_batches`),
or anchors have no positive.
"""
from __future__ import annotations

import torch

from .losses import pairwise_distance
from .validate import check_labels, check_matrix, check_non_negative

Triplets = tuple[torch.Tensor, torch.Tensor, torch.Tensor]


def _masks(labels: torch.Tensor):
    same = labels[:, None] == labels[None, :]
    eye = torch.eye(len(labels), dtype=torch.bool, device=labels.device)
    return same & ~eye, ~same          # positive mask, negative mask (N, N)


def _check(embeddings: torch.Tensor, labels: torch.Tensor) -> None:
    check_matrix(embeddings, "embeddings")
    check_labels(labels, embeddings.shape[0])


def random_triplets(labels: torch.Tensor, generator: torch.Generator | None = None) -> Triplets:
    """For every anchor with a positive: one random positive and one random negative.

    labels (N,) → index tensors (a, p, n), each (T,) with T ≤ N.
    """
    pos, neg = _masks(labels)
    ok = pos.any(1) & neg.any(1)
    anchors = ok.nonzero().flatten()
    noise = torch.rand(pos.shape, generator=generator, device=labels.device)
    p = torch.where(pos, noise, -1.0).argmax(1)
    n = torch.where(neg, noise.T, -1.0).argmax(1)   # a second, independent draw
    return anchors, p[anchors], n[anchors]


@torch.no_grad()
def batch_hard_triplets(embeddings: torch.Tensor, labels: torch.Tensor,
                        distance: str = "cosine") -> Triplets:
    """For every anchor: the farthest positive and the closest negative (Hermans et al. 2017).

    embeddings (N, D), labels (N,) → (a, p, n), each (T,). Used from the first
    step, it can pull every point together: the hardest negatives at init are
    mostly noise, and the easiest way to shrink their loss is a collapse.
    """
    _check(embeddings, labels)
    d = pairwise_distance(embeddings, distance=distance)
    pos, neg = _masks(labels)
    ok = pos.any(1) & neg.any(1)
    anchors = ok.nonzero().flatten()
    p = torch.where(pos, d, -torch.inf).argmax(1)
    n = torch.where(neg, d, torch.inf).argmin(1)
    return anchors, p[anchors], n[anchors]


@torch.no_grad()
def semi_hard_triplets(embeddings: torch.Tensor, labels: torch.Tensor, margin: float = 0.2,
                       distance: str = "cosine") -> Triplets:
    """FaceNet's semi-hard negatives, over every anchor–positive pair.

    For each pair (a, p): the closest negative that is still farther than the
    positive, d(a,p) < d(a,n); ideally inside the margin, d(a,n) < d(a,p) + margin.
    When no negative is farther than the positive, the farthest negative is
    used instead (as TensorFlow Addons does), so every pair gives a triplet
    and the loss never starts on the hardest, noisiest negatives.

    embeddings (N, D), labels (N,) → (a, p, n), each (T,), T = number of positive pairs.
    """
    _check(embeddings, labels)
    check_non_negative(margin, "margin")
    d = pairwise_distance(embeddings, distance=distance)
    pos, neg = _masks(labels)
    a, p = pos.nonzero(as_tuple=True)                     # every anchor–positive pair
    d_ap = d[a, p][:, None]                               # (T, 1)
    d_an = d[a]                                           # (T, N)
    neg_rows = neg[a]
    farther = neg_rows & (d_an > d_ap)
    semi = torch.where(farther, d_an, torch.inf).argmin(1)
    easiest = torch.where(neg_rows, d_an, -torch.inf).argmax(1)
    has_farther = farther.any(1)
    n = torch.where(has_farther, semi, easiest)
    keep = neg_rows.any(1)
    return a[keep], p[keep], n[keep]


@torch.no_grad()
def batch_all_triplets(embeddings: torch.Tensor, labels: torch.Tensor, margin: float = 0.2,
                       distance: str = "cosine") -> Triplets:
    """Every valid triplet whose loss is still positive: d(a,p) − d(a,n) + margin > 0.

    embeddings (N, D), labels (N,) → (a, p, n). Averaging only over these
    "active" triplets keeps the gradient from vanishing as easy triplets pile up.
    """
    _check(embeddings, labels)
    check_non_negative(margin, "margin")
    d = pairwise_distance(embeddings, distance=distance)
    pos, neg = _masks(labels)
    valid = pos[:, :, None] & neg[:, None, :]             # (a, p, n)
    active = valid & (d[:, :, None] - d[:, None, :] + margin > 0)
    a, p, n = active.nonzero(as_tuple=True)
    return a, p, n


MINERS = {
    "random": random_triplets,
    "semi-hard": semi_hard_triplets,
    "batch-hard": batch_hard_triplets,
    "batch-all": batch_all_triplets,
}
