"""Verification ("are these two the same identity?"): pairs, ROC, EER, TAR@FAR, thresholds.

Every pair gets a score (the cosine of its embeddings) and is accepted when
score >= threshold (`accepts`): the one rule of the course, which the near-duplicate
threshold of `production.threshold_for_precision` follows too. The pairs come from identities never seen in training. Two error
rates trade against each other:
    FAR (false accept rate) = accepted impostor pairs / impostor pairs
    FRR (false reject rate) = rejected genuine pairs / genuine pairs
    TAR (true accept rate)  = 1 − FRR
ROC curves come from scikit-learn's `roc_curve` (fpr = FAR, tpr = TAR).

    verification_pairs(labels)                    genuine and impostor index pairs
    pair_scores(emb, i, j)                        cosine of each pair
    accepts(scores, threshold)                    the decision: score >= threshold
    roc(scores, same)                             (far, tar, thresholds), scikit-learn
    auc(scores, same)                             area under the ROC, scikit-learn
    equal_error_rate(scores, same)                (eer, threshold): where FAR = FRR
    tar_at_far(scores, same, far)                 the best TAR with FAR ≤ far
    threshold_at_far(scores, same, far)           the threshold that gives it
    far_frr(scores, same, threshold)              both error rates at one threshold
    confusion_counts(scores, same, threshold)     true/false accepts and rejects
    verification_report(scores, same, fars)       AUC, EER and TAR@FAR in one dict
    gallery_probe_split(labels, n_gallery)        1:N identification: who enrols, who asks
    first_per_identity(labels, n)                 the first n items of every identity
"""
from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

from ..validate import check_labels, check_matrix


def _check_scores(scores: torch.Tensor, same: torch.Tensor) -> tuple:
    """scores (P,) float and same (P,) bool → numpy arrays; both kinds of pair must be present."""
    if not isinstance(scores, torch.Tensor) or scores.ndim != 1:
        shape = tuple(scores.shape) if isinstance(scores, torch.Tensor) else type(scores).__name__
        raise ValueError(f"expected scores of shape (P,), one per pair, got {shape}")
    check_labels(same, scores.shape[0], "same")
    s = scores.detach().float().cpu().numpy()
    y = same.detach().cpu().numpy()
    if not np.isin(y, (0, 1)).all():
        raise ValueError("same must hold only True/False or 0/1 (is pair p genuine?), got other values such as "
                         f"{y[~np.isin(y, (0, 1))][0]!r}")
    y = y.astype(bool)
    if not np.isfinite(s).all():
        raise ValueError("scores contain NaN or Inf; check the embeddings")
    if y.all() or not y.any():
        raise ValueError(f"need both genuine (same=True) and impostor (same=False) pairs, got "
                         f"{int(y.sum())} genuine and {int((~y).sum())} impostor")
    return s, y


def _check_far(far: float) -> None:
    if not 0 < far < 1:
        raise ValueError(f"far (false accept rate) must be in (0, 1), got {far}")


def verification_pairs(labels: torch.Tensor, max_impostors: int | None = None,
                       generator: torch.Generator | None = None):
    """Every genuine pair and (a sample of) the impostor pairs among `labels`.

    labels (N,) identity of each item. Returns (i, j, same): (P,) index tensors with
    i < j and a (P,) bool tensor, genuine pairs first. With max_impostors, that many
    impostor pairs are drawn at random (without replacement) from all of them.
    """
    if not isinstance(labels, torch.Tensor) or labels.ndim != 1 or len(labels) < 2:
        raise ValueError("expected labels of shape (N,) with N ≥ 2")
    i, j = torch.triu_indices(len(labels), len(labels), offset=1)
    same = labels[i] == labels[j]
    if not same.any() or same.all():
        raise ValueError("labels must give both genuine pairs (an identity seen twice) and impostor pairs")
    gi, gj = i[same], j[same]
    ii, ij = i[~same], j[~same]
    if max_impostors is not None and max_impostors < len(ii):
        pick = torch.randperm(len(ii), generator=generator)[:max_impostors].sort().values
        ii, ij = ii[pick], ij[pick]
    flags = torch.cat([torch.ones(len(gi), dtype=torch.bool), torch.zeros(len(ii), dtype=torch.bool)])
    return torch.cat([gi, ii]), torch.cat([gj, ij]), flags


def pair_scores(emb: torch.Tensor, i: torch.Tensor, j: torch.Tensor) -> torch.Tensor:
    """Cosine similarity of each pair (emb[i_p], emb[j_p]): emb (N, D), i, j (P,) → (P,)."""
    check_matrix(emb, "emb")
    z = F.normalize(emb.float(), dim=1)
    if len(z) ** 2 <= 4 * len(i) and len(z) <= 16_384:    # many pairs: one matrix product is faster
        return (z @ z.T)[i, j]
    return (z[i] * z[j]).sum(1)


def accepts(scores, threshold: float):
    """The course's one decision rule: a pair is accepted (a match, a duplicate) when score >= threshold.

    scores: a tensor or numpy array of any shape; returns a bool tensor or array of the same shape.
    A score exactly at the threshold is accepted, as at the thresholds `roc` returns.
    """
    return scores >= threshold


def roc(scores: torch.Tensor, same: torch.Tensor, drop_intermediate: bool = False):
    """ROC of a verifier: (far, tar, thresholds) as numpy arrays, thresholds decreasing.

    At thresholds[k], pairs with score ≥ thresholds[k] are accepted and give FAR far[k]
    and TAR tar[k]. scikit-learn's `roc_curve`, with every threshold kept unless
    drop_intermediate=True (fewer points, the same curve: enough for a plot).
    """
    from sklearn.metrics import roc_curve           # imported here: scikit-learn adds seconds to every import

    s, y = _check_scores(scores, same)
    far, tar, thresholds = roc_curve(y, s, drop_intermediate=drop_intermediate)
    return far, tar, thresholds


def auc(scores: torch.Tensor, same: torch.Tensor) -> float:
    """Area under the ROC curve: the chance that a random genuine pair outscores a random impostor."""
    from sklearn.metrics import roc_auc_score

    s, y = _check_scores(scores, same)
    return float(roc_auc_score(y, s))


def equal_error_rate(scores: torch.Tensor, same: torch.Tensor) -> tuple[float, float]:
    """The equal error rate (EER): the error where FAR = FRR, and the threshold there.

    scores (P,): higher = more alike; same (P,) bool: whether pair p is genuine.
    Walks the ROC to the first threshold where FRR ≤ FAR and interpolates linearly
    between it and the step before, where FRR > FAR. Returns (eer, threshold),
    eer in [0, 1]; the threshold is the one at that first step.
    """
    return _eer_from_roc(*roc(scores, same))


def _eer_from_roc(far, tar, thresholds) -> tuple[float, float]:
    frr = 1 - tar
    k = int((frr <= far).argmax())                       # first step where the curves have crossed
    if k == 0:
        return float(far[0]), float(thresholds[0])
    # on the segment from step k−1 to k, FRR − FAR goes from > 0 to ≤ 0: find its zero
    d0, d1 = frr[k - 1] - far[k - 1], frr[k] - far[k]
    w = d0 / (d0 - d1)
    eer = far[k - 1] + w * (far[k] - far[k - 1])
    return float(eer), float(thresholds[k])


def threshold_at_far(scores: torch.Tensor, same: torch.Tensor, far: float) -> float:
    """The lowest threshold whose FAR on these pairs is at most `far`.

    Lowest, because among all thresholds that keep the false accepts within budget
    it accepts the most genuine pairs. Calibrate it on validation identities; it
    holds on new identities only as well as their impostor scores resemble these.
    """
    _check_far(far)
    fars, _, thresholds = roc(scores, same)
    ok = fars <= far
    return float(thresholds[ok][-1])


def tar_at_far(scores: torch.Tensor, same: torch.Tensor, far: float) -> float:
    """True accept rate at the lowest threshold with FAR ≤ far (TAR@FAR), on these pairs.

    With P impostor pairs, FAR can only move in steps of 1/P: TAR@FAR = 1e-3 needs
    thousands of impostor pairs to mean anything.
    """
    _check_far(far)
    fars, tars, _ = roc(scores, same)
    return float(tars[fars <= far].max())


def far_frr(scores: torch.Tensor, same: torch.Tensor, threshold: float) -> tuple[float, float]:
    """(FAR, FRR) when pairs with score ≥ threshold are accepted."""
    s, y = _check_scores(scores, same)
    accept = accepts(s, threshold)
    return float(accept[~y].mean()), float((~accept[y]).mean())


def confusion_counts(scores: torch.Tensor, same: torch.Tensor, threshold: float) -> dict[str, int]:
    """Counts of the four outcomes at a threshold: true/false accepts, true/false rejects."""
    s, y = _check_scores(scores, same)
    accept = accepts(s, threshold)
    return {"true accepts": int((accept & y).sum()), "false rejects": int((~accept & y).sum()),
            "false accepts": int((accept & ~y).sum()), "true rejects": int((~accept & ~y).sum())}


def verification_report(scores: torch.Tensor, same: torch.Tensor,
                        fars: tuple[float, ...] = (1e-2, 1e-3)) -> dict[str, float]:
    """{"AUC", "EER", "TAR@FAR=…" for each far} of one set of scored pairs (one ROC for all)."""
    from sklearn.metrics import auc as area

    for far in fars:
        _check_far(far)
    curve = roc(scores, same)
    report = {"AUC": float(area(curve[0], curve[1])), "EER": _eer_from_roc(*curve)[0]}
    for far in fars:
        report[f"TAR@FAR={far:g}"] = float(curve[1][curve[0] <= far].max())
    return report


def first_per_identity(labels: torch.Tensor, n: int) -> torch.Tensor:
    """Indices of the first n items of every identity (in order of appearance), ascending.

    labels (N,) → (M,) indices; an identity with fewer than n items gives all of them.
    """
    if not isinstance(labels, torch.Tensor) or labels.ndim != 1:
        raise ValueError("expected labels of shape (N,)")
    if n < 1:
        raise ValueError(f"n must be ≥ 1, got {n}")
    order = torch.argsort(labels, stable=True)
    sorted_labels = labels[order]
    rank = torch.arange(len(labels)) - torch.searchsorted(sorted_labels, sorted_labels)   # 0, 1, 2 … per identity
    keep = torch.empty(len(labels), dtype=torch.bool)
    keep[order] = rank < n
    return keep.nonzero().flatten()


def gallery_probe_split(labels: torch.Tensor, n_gallery: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Split items into an enrolled gallery and probes for 1:N identification.

    The first n_gallery items of each identity (in order of appearance) enrol in the
    gallery; the rest are probes. Returns (gallery_index, probe_index). Score with
    `recall_at_k(gallery_emb=emb[gallery], gallery_labels=labels[gallery], query_emb=emb[probe],
    query_labels=labels[probe], k=1)`: the share of probes whose nearest gallery item is their own identity.
    """
    gallery = first_per_identity(labels, n_gallery)
    counts = torch.unique(labels, return_counts=True)[1]
    if int(counts.min()) <= n_gallery:
        raise ValueError(f"every identity needs more than n_gallery={n_gallery} items so it has a probe; "
                         f"the smallest has {int(counts.min())}")
    in_gallery = torch.zeros(len(labels), dtype=torch.bool)
    in_gallery[gallery] = True
    return gallery, (~in_gallery).nonzero().flatten()
