"""Hybrid retrieval: combine a lexical and a dense score matrix into one ranking.

    fused = reciprocal_rank_fusion([bm25, dense], k=60)      # ranks only, no scales to match
    mixed = mix_scores(bm25, dense, weight=0.3)              # (1 − w)·z(bm25) + w·z(dense)

BM25 scores are unbounded sums, cosines live in [−1, 1]: they cannot be added as
they are. Reciprocal-rank fusion (Cormack et al. 2009) uses only each method's
ranks; a score mix first standardises each query's row (z-scores). Either way,
choose the weight on validation, never on test.
"""
from __future__ import annotations

import torch


def _check_scores(matrices) -> list[torch.Tensor]:
    mats = [torch.as_tensor(m).float() for m in matrices]
    if not mats:
        raise ValueError("give at least one (Q, D) score matrix")
    shape = mats[0].shape
    for m in mats:
        if m.ndim != 2 or m.shape != shape:
            raise ValueError(f"every score matrix must be (Q, D) of the same shape, got "
                             f"{[tuple(x.shape) for x in mats]}")
        if torch.isnan(m).any():
            raise ValueError("a score matrix contains NaN")
    return mats


def ranks(scores: torch.Tensor) -> torch.Tensor:
    """Rank (1 = best) of every document in every row of a (Q, D) score matrix.
    Ties are broken by column order (a stable sort)."""
    order = torch.sort(torch.as_tensor(scores), dim=1, descending=True, stable=True).indices
    out = torch.empty_like(order)
    out.scatter_(1, order, torch.arange(1, order.shape[1] + 1).expand_as(order).contiguous())
    return out


def reciprocal_rank_fusion(matrices: list, k: float = 60.0, weights: list[float] | None = None) -> torch.Tensor:
    """Σ_m w_m / (k + rank_m(d)) for every query and document: (Q, D).

    Args:
        matrices: score matrices (Q, D) of the methods to fuse (higher = better).
        k: damping; 60 as in the paper. Smaller k lets each method's top few dominate.
        weights: one per matrix (default all 1).
    """
    mats = _check_scores(matrices)
    weights = [1.0] * len(mats) if weights is None else list(weights)
    if len(weights) != len(mats):
        raise ValueError(f"need one weight per matrix: {len(mats)} matrices, {len(weights)} weights")
    if k < 0:
        raise ValueError(f"k must be >= 0, got {k}")
    return sum(w / (k + ranks(m).float()) for w, m in zip(weights, mats))


def standardize_rows(scores: torch.Tensor) -> torch.Tensor:
    """Each row minus its mean, divided by its standard deviation (1 where a row is constant)."""
    s = torch.as_tensor(scores).float()
    std = s.std(1, keepdim=True)
    return (s - s.mean(1, keepdim=True)) / torch.where(std > 0, std, torch.ones_like(std))


def mix_scores(lexical: torch.Tensor, dense: torch.Tensor, weight: float) -> torch.Tensor:
    """(1 − weight) · z(lexical) + weight · z(dense), each row standardised first: (Q, D).

    weight 0 gives the lexical ranking, 1 the dense one.
    """
    lexical, dense = _check_scores([lexical, dense])
    if not 0.0 <= weight <= 1.0:
        raise ValueError(f"weight must be in [0, 1], got {weight}")
    return (1 - weight) * standardize_rows(lexical) + weight * standardize_rows(dense)
