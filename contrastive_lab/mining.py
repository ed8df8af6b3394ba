"""Triplet miners: which (anchor, positive, negative) triplets a batch trains on.

A miner looks at the batch's embeddings (without gradient) and labels and
returns three index tensors (a, p, n) of equal length; the loss then uses
`triplet_loss(z[a], z[p], z[n])`. Keeping the miner apart from the loss lets a
notebook swap the strategy and keep everything else.

    random_triplets     any positive, any negative
    semi_hard_triplets  negatives farther than the positive but inside the margin (FaceNet)
    batch_hard_triplets for each anchor the farthest positive and the closest negative
    batch_all_triplets  every valid triplet that still violates the margin
    triplet_difficulty  label triplets easy / semi-hard / hard from their two distances

With d_ap = d(anchor, positive) and d_an = d(anchor, negative), a triplet is

    hard       d_an ≤ d_ap                 the negative is closer than the positive
    semi-hard  d_ap < d_an < d_ap + margin  right order, but inside the margin (loss > 0)
    easy       d_an ≥ d_ap + margin         loss max(0, d_ap − d_an + margin) = 0

Batches should hold several samples per class (see `data.pairs.pk_batches`),
or anchors have no positive. Anchors without a positive or without a negative
in the batch give no triplet; a batch with no valid triplet gives empty tensors.
"""
from __future__ import annotations

import torch

from .losses import pairwise_distance
from .validate import check_labels, check_matrix, check_non_negative

Triplets = tuple[torch.Tensor, torch.Tensor, torch.Tensor]
DIFFICULTIES = ("easy", "semi-hard", "hard")


def _masks(labels: torch.Tensor):
    same = labels[:, None] == labels[None, :]
    eye = torch.eye(len(labels), dtype=torch.bool, device=labels.device)
    return same & ~eye, ~same          # positive mask, negative mask (N, N)


def _check(embeddings: torch.Tensor, labels: torch.Tensor) -> None:
    check_matrix(embeddings, "embeddings")
    check_labels(labels, embeddings.shape[0])


def random_triplets(labels: torch.Tensor, generator: torch.Generator | None = None) -> Triplets:
    """For every anchor with a positive: one random positive and one random negative.

    labels (N,) → index tensors (a, p, n), each (T,) with T ≤ N. Looks at labels
    only, so most triplets it draws are easy once training has begun.
    """
    if not isinstance(labels, torch.Tensor) or labels.ndim != 1:
        shape = tuple(labels.shape) if isinstance(labels, torch.Tensor) else type(labels).__name__
        raise ValueError(f"expected labels of shape (N,), got {shape}")
    pos, neg = _masks(labels)
    ok = pos.any(1) & neg.any(1)
    anchors = ok.nonzero().flatten()
    where = generator.device if generator is not None else labels.device
    noise = torch.rand(pos.shape, generator=generator, device=where)
    if noise.device != labels.device:                 # a generator elsewhere: one copy (keep them together)
        noise = noise.to(labels.device)
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

    It never picks a hard negative (one closer than the positive) when another
    exists: it widens gaps that already go the right way and never repairs a
    wrong order. Late in training that is the point; from random init it trusts
    a ranking that knows nothing about the labels (on cluttered digits a positive
    is closer than a negative about half the time), the gaps it widens are
    random, and retrieval stays at chance while the loss sits just under the
    margin. Warm up with batch-all (or batch-hard) first; notebook 02 measures this.
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


def triplet_difficulty(d_ap: torch.Tensor, d_an: torch.Tensor, margin: float = 0.2) -> torch.Tensor:
    """Classify triplets by their distances: 0 = easy, 1 = semi-hard, 2 = hard.

    d_ap, d_an: (T,) anchor–positive and anchor–negative distances (any shape,
    the same for both). Returns a long tensor of that shape; DIFFICULTIES[code]
    is the name. hard: d_an ≤ d_ap; semi-hard: d_ap < d_an < d_ap + margin;
    easy: d_an ≥ d_ap + margin (the only kind with zero loss).
    """
    d_ap, d_an = torch.as_tensor(d_ap), torch.as_tensor(d_an)
    if d_ap.shape != d_an.shape:
        raise ValueError(f"expected d_ap and d_an of the same shape, got {tuple(d_ap.shape)} "
                         f"and {tuple(d_an.shape)}")
    check_non_negative(margin, "margin")
    code = torch.zeros_like(d_ap, dtype=torch.long)
    code[d_an < d_ap + margin] = 1
    code[d_an <= d_ap] = 2
    return code


MINERS = {
    "random": random_triplets,
    "semi-hard": semi_hard_triplets,
    "batch-hard": batch_hard_triplets,
    "batch-all": batch_all_triplets,
}
