"""Self-checks for notebook 07 (temperature and collapse)."""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from ..diagnose import effective_rank
from ..losses import vicreg_terms
from . import passed


def _cases() -> dict[str, torch.Tensor]:
    g = torch.Generator().manual_seed(7)
    basis = torch.linalg.qr(torch.randn(16, 16, generator=g))[0]
    return {
        "isotropic": torch.randn(200, 16, generator=g),
        "rank 3": torch.randn(200, 3, generator=g) @ basis[:3],
        "one dominant direction": torch.randn(200, 16, generator=g) * torch.tensor([10.0] + [0.5] * 15),
        "a cloud away from the origin": 0.3 * torch.randn(200, 16, generator=g) + 2.0,
        "collapsed": torch.ones(50, 16),
    }


def check_effective_rank(my_effective_rank) -> None:
    """`my_effective_rank(z)`: exp of the entropy of p = σ / Σσ, the singular values of the
    L2-normalized, centred rows of z (N, D); 0 when every point is the same."""
    if not callable(my_effective_rank):
        raise AssertionError("pass the function itself: check_effective_rank(my_effective_rank)")
    cases = _cases()
    for name, z in cases.items():
        want = effective_rank(z)
        got = float(my_effective_rank(z))
        if abs(got - want) > 1e-3 * max(1.0, want):
            hint = ("normalize the rows (F.normalize(z, dim=1)) and subtract the mean row before "
                    "torch.linalg.svdvals" if name != "collapsed" else
                    "when every point is the same, the normalized, centred matrix is (nearly) zero: "
                    "return 0 when its singular values sum to almost nothing")
            raise AssertionError(f"on the {name!r} case ({tuple(z.shape)}) you gave {got:.3f}, expected "
                                 f"{want:.3f}. p = σ / σ.sum(), entropy H = −Σ p log p, rank = exp(H); {hint}")
    passed(f"isotropic 16-D data uses {effective_rank(cases['isotropic']):.1f} of 16 dimensions, rank-3 data "
           f"{effective_rank(cases['rank 3']):.1f}, a collapsed set 0")


def check_variance_term(variance_term) -> None:
    """`variance_term(z, gamma)`: VICReg's hinge on the per-dimension std of z (N, D),
    mean over dimensions of max(0, gamma − sqrt(var + 1e-4)), for ONE branch."""
    if not callable(variance_term):
        raise AssertionError("pass the function itself: check_variance_term(variance_term)")
    g = torch.Generator().manual_seed(70)
    for scale in (0.01, 0.5, 3.0):
        z = scale * torch.randn(64, 8, generator=g)
        for gamma in (1.0, 2.0):
            want = vicreg_terms(z, z.clone(), gamma=gamma)["variance"].item() / 2   # the sum of both branches
            got = float(variance_term(z, gamma))
            if abs(got - want) > 1e-4:
                spread = float(torch.sqrt(z.var(0) + 1e-4).mean())
                raise AssertionError(
                    f"for z with per-dimension std ≈ {spread:.2f} and gamma = {gamma} you gave {got:.4f}, "
                    f"expected {want:.4f}: take the std of each column (z.var(0), plus 1e-4 inside the "
                    f"square root), then the mean over columns of F.relu(gamma − std)")
    passed("the hinge is gamma where every dimension has collapsed and 0 once each std reaches gamma: "
           "it only pushes apart, never pulls together")


def check_effective_negatives(effective_negatives) -> None:
    """`effective_negatives(similarities, temperature)`: for cosine similarities (M,) of one
    anchor to its M negatives, exp(entropy) of softmax(similarities / temperature)."""
    if not callable(effective_negatives):
        raise AssertionError("pass the function itself: check_effective_negatives(effective_negatives)")
    g = torch.Generator().manual_seed(77)
    sims = torch.rand(254, generator=g) * 1.2 - 0.4
    for t in (0.02, 0.1, 0.5, 5.0):
        p = F.softmax(sims / t, dim=0)
        want = math.exp(-(p * p.clamp_min(1e-30).log()).sum().item())
        got = float(effective_negatives(sims, t))
        if abs(got - want) > 1e-3 * want:
            raise AssertionError(
                f"at temperature {t} you gave {got:.2f}, expected {want:.2f}: p = softmax(similarities / τ), "
                f"then exp(−Σ p log p). A uniform p over M negatives gives M; all weight on one gives 1")
    equal = float(effective_negatives(torch.zeros(10), 0.1))
    if abs(equal - 10) > 1e-3:
        raise AssertionError(f"ten equally similar negatives should count as 10, you gave {equal:.3f}")
    few, many = float(effective_negatives(sims, 0.05)), float(effective_negatives(sims, 1.0))
    passed(f"of 254 negatives with similarities spread over [−0.4, 0.8], τ = 0.05 lets about {few:.0f} carry "
           f"the loss and τ = 1 about {many:.0f}: a low temperature focuses the push on the hardest negatives")
