"""Self-checks for notebook 07 (temperature and collapse)."""
from __future__ import annotations

import torch

from ..losses import vicreg_loss
from . import passed, self_check

FAILURES = ("complete collapse", "dimensional collapse", "not learned", "healthy")

# (std ratio, effective rank, D, k-NN, best baseline k-NN) → the reading, and why
_CASES = [
    ((0.035, 41.6, 64, 0.101, 0.26), "complete collapse",
     "the std ratio 0.035 says every point sits in one spot; the effective rank 41.6 only describes the "
     "shape of the tiny noise left around it (the meter is scale-free). Check the std ratio FIRST"),
    ((0.90, 30.0, 64, 0.50, 0.26), "healthy",
     "spread (std ratio 0.9), 30 of 64 directions used, and k-NN 0.50 is 24 points over the best baseline"),
    ((0.98, 6.5, 64, 0.17, 0.26), "dimensional collapse",
     "the std ratio is fine but only 6.5 of 64 directions are used (below 15 % of D): that is the more "
     "specific diagnosis, and the reason for the poor k-NN. Check the rank before the k-NN"),
    ((0.84, 18.9, 64, 0.12, 0.26), "not learned",
     "neither kind of collapse (std ratio 0.84, rank 18.9 ≥ 0.15 · 64), but k-NN 0.12 is below the best "
     "baseline: not collapsed is not the same as learned"),
    ((0.05, 2.0, 64, 0.11, 0.26), "complete collapse",
     "the std ratio is below 0.1: complete collapse, whatever the rank says"),
    ((0.80, 12.0, 64, 0.45, 0.26), "healthy",
     "rank 12 is above 0.15 · 64 = 9.6, the spread is fine and k-NN clears the bar"),
]


@self_check
def check_which_failure(which_failure) -> None:
    """`which_failure(std_ratio, effective_rank, dim, knn, best_baseline)` → one of FAILURES."""
    if not callable(which_failure):
        raise AssertionError("pass the function itself: check_which_failure(which_failure)")
    for args, want, why in _CASES:
        got = which_failure(*args)
        if got not in FAILURES:
            raise AssertionError(f"return one of {FAILURES}, got {got!r}")
        if got != want:
            std, rank, dim, knn, base = args
            raise AssertionError(
                f"std ratio {std}, effective rank {rank} of {dim}, k-NN {knn} (best baseline {base}): "
                f"you said {got!r}, it is {want!r} — {why}")
    passed("std ratio first (is there any spread?), then the rank (in how many directions?), then the "
           "k-NN against the baselines (did it learn?): each meter answers its own question")


@self_check
def check_collapsed_vicreg_loss(collapsed_vicreg_loss) -> None:
    """`collapsed_vicreg_loss(invariance_weight, variance_weight, covariance_weight, gamma, eps)`:
    VICReg's loss when every projection of both views is the same vector."""
    if not callable(collapsed_vicreg_loss):
        raise AssertionError("pass the function itself: check_collapsed_vicreg_loss(collapsed_vicreg_loss)")
    c = torch.randn(1, 8, generator=torch.Generator().manual_seed(7)).repeat(16, 1)   # 16 equal rows
    for weights in ((25.0, 25.0, 1.0), (1.0, 10.0, 5.0)):
        for gamma, eps in ((1.0, 1e-4), (2.0, 1e-2)):
            want = vicreg_loss(c, c.clone(), *weights, gamma=gamma, eps=eps).item()
            got = float(collapsed_vicreg_loss(*weights, gamma, eps))
            if abs(got - want) > 1e-4 * max(1.0, abs(want)):
                raise AssertionError(
                    f"with weights {weights}, gamma {gamma}, eps {eps}: you gave {got:.4f}, the loss is "
                    f"{want:.4f}. Term by term: the two views are equal (invariance 0); every dimension has "
                    f"variance 0, so its std is sqrt(0 + eps) and the hinge max(0, gamma − std) is paid in "
                    f"every dimension, in BOTH branches; a constant has no covariance (0)")
    passed(f"a collapsed embedding costs VICReg 2 · 25 · (1 − 0.01) = {2 * 25 * 0.99:.1f}: the variance hinge "
           "alone makes collapse expensive, and it is the only term that does")


@self_check
def check_max_effective_rank(max_effective_rank) -> None:
    """`max_effective_rank(n, d)`: the largest effective rank n embeddings of dimension d can have."""
    if not callable(max_effective_rank):
        raise AssertionError("pass the function itself: check_max_effective_rank(max_effective_rank)")
    for n, d in ((8, 64), (32, 64), (1000, 64), (64, 64), (65, 64), (1, 16), (2, 16)):
        want = min(n - 1, d)
        got = max_effective_rank(n, d)
        if got != want:
            hint = ("centring subtracts the mean row: n points minus their mean add up to zero, so they span "
                    "at most n − 1 directions" if got == min(n, d) else
                    "the rank is limited both by the dimension d and by the number of points (after centring)")
            raise AssertionError(f"max_effective_rank({n}, {d}) = {got}, expected {want}: {hint}")
    passed("a batch of 32 can never show an effective rank above 31: measure the meters on a few hundred "
           "held-out images, not on a training batch")
