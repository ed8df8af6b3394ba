"""Self-checks for notebook 02 (triplet loss and mining)."""
from __future__ import annotations

import math

import torch

from . import passed, self_check

# Exercise 1: anchor at 0°, positive at 60°, negative at 45° on the unit circle,
# cosine distance d = 1 − cos(angle), margin 0.2.
_EX1_D_AP = 1 - math.cos(math.radians(60))
_EX1_D_AN = 1 - math.cos(math.radians(45))
_EX1_MARGIN = 0.2


@self_check
def check_triplet_loss_by_hand(loss: float) -> None:
    """The learner's number for max(0, d(a,p) − d(a,n) + margin) on the exercise's three points."""
    expected = max(0.0, _EX1_D_AP - _EX1_D_AN + _EX1_MARGIN)
    value = float(loss)
    if abs(value - expected) < 1e-3:
        passed(f"loss = {_EX1_D_AP:.3f} − {_EX1_D_AN:.3f} + {_EX1_MARGIN} = {expected:.3f}: "
               "the negative is closer than the positive, so this triplet is hard")
        return
    hints = []
    if abs(value - (expected - _EX1_MARGIN)) < 1e-3:
        hints.append("you left out the margin")
    if abs(value - max(0.0, _EX1_D_AN - _EX1_D_AP + _EX1_MARGIN)) < 1e-3:
        hints.append("you swapped d(a,p) and d(a,n): the positive distance comes first")
    if abs(value - max(0.0, (1 - math.cos(60)) - (1 - math.cos(45)) + _EX1_MARGIN)) < 1e-3:
        hints.append("math.cos takes radians: use math.cos(math.radians(60))")
    if abs(value - max(0.0, math.cos(math.radians(60)) - math.cos(math.radians(45)) + _EX1_MARGIN)) < 1e-3:
        hints.append("d is a distance, 1 − cos, not the cosine similarity")
    hint = "; ".join(hints) or "d(a,p) = 1 − cos 60°, d(a,n) = 1 − cos 45°; loss = max(0, d(a,p) − d(a,n) + 0.2)"
    raise AssertionError(f"got {value:.4f}. Hint: {hint}.")


_EX2_CASES = [  # (d_ap, d_an, margin, answer)
    (0.5, 0.3, 0.2, "hard"),
    (0.5, 0.5, 0.2, "hard"),        # a tie: the negative is not farther
    (0.5, 0.6, 0.2, "semi-hard"),
    (0.5, 0.7, 0.2, "easy"),        # exactly on the margin: loss 0
    (0.5, 1.2, 0.2, "easy"),
    (0.2, 1.0, 1.0, "semi-hard"),   # a big margin turns an easy triplet semi-hard
    (0.9, 0.1, 0.0, "hard"),
    (0.1, 0.2, 0.0, "easy"),        # margin 0: nothing is semi-hard
]


@self_check
def check_classify_triplet(classify) -> None:
    """classify(d_ap, d_an, margin) -> "easy" | "semi-hard" | "hard", tested on a table of cases."""
    if not callable(classify):
        raise AssertionError("pass the function itself: check_classify_triplet(classify_triplet)")
    for d_ap, d_an, margin, answer in _EX2_CASES:
        got = classify(d_ap, d_an, margin)
        if got != answer:
            raise AssertionError(
                f"classify(d_ap={d_ap}, d_an={d_an}, margin={margin}) returned {got!r}, expected "
                f"{answer!r}. Hint: hard when d_an ≤ d_ap; semi-hard when d_ap < d_an < d_ap + margin; "
                "easy when d_an ≥ d_ap + margin (then the loss is 0).")
    passed(f"all {len(_EX2_CASES)} triplets classified, ties and the margin's edge included")


@self_check
def check_batch_hard(mine) -> None:
    """mine(d, labels) -> (a, p, n): batch-hard triplets from a distance matrix d (N, N), labels (N,)."""
    from ..losses import pairwise_distance
    from ..mining import batch_hard_triplets

    if not callable(mine):
        raise AssertionError("pass the function itself: check_batch_hard(batch_hard)")
    g = torch.Generator().manual_seed(2)
    labels = torch.arange(4).repeat_interleave(3)[torch.randperm(12, generator=g)]
    z = torch.randn(12, 6, generator=g)
    d = pairwise_distance(z)
    out = mine(d.clone(), labels.clone())
    if not (isinstance(out, tuple) and len(out) == 3):
        raise AssertionError("return three index tensors: (anchors, positives, negatives)")
    a, p, n = (torch.as_tensor(t).long().flatten() for t in out)
    ea, ep, en = batch_hard_triplets(z, labels)
    if len(a) != len(ea):
        raise AssertionError(f"expected one triplet per anchor ({len(ea)}), got {len(a)}")
    order = a.argsort()
    a, p, n = a[order], p[order], n[order]
    if not torch.equal(a, ea):
        raise AssertionError("every anchor 0..N-1 (that has a positive) should appear once")
    if (labels[p] != labels[a]).any() or (p == a).any():
        raise AssertionError("a positive must share the anchor's label and not be the anchor itself "
                             "(mask the diagonal)")
    if (labels[n] == labels[a]).any():
        raise AssertionError("a negative must have a different label from the anchor")
    if not torch.allclose(d[a, p], d[ea, ep]):
        raise AssertionError("positives: take the FARTHEST one (largest distance) for each anchor; "
                             "fill non-positives with -inf before argmax")
    if not torch.allclose(d[a, n], d[ea, en]):
        raise AssertionError("negatives: take the CLOSEST one (smallest distance) for each anchor; "
                             "fill non-negatives with +inf before argmin")
    passed("your batch-hard miner agrees with contrastive_lab.mining.batch_hard_triplets")
