"""The notebook-07 (temperature and collapse) self-checks accept right answers and reject wrong ones with a hint."""
import math

import pytest
import torch
import torch.nn.functional as F

from contrastive_lab.exercises.nb07 import check_effective_negatives, check_effective_rank, check_variance_term


def _rank(z, centre=True, normalize=True):
    unit = F.normalize(z.float(), dim=1) if normalize else z.float()
    s = torch.linalg.svdvals(unit - unit.mean(0) if centre else unit)
    if s.sum() <= 1e-12:
        return 0.0
    p = s / s.sum()
    p = p[p > 1e-12]
    return math.exp(-(p * p.log()).sum().item())


def test_check_effective_rank():
    check_effective_rank(_rank)
    with pytest.raises(AssertionError, match="subtract the mean row"):
        check_effective_rank(lambda z: _rank(z, centre=False))
    with pytest.raises(AssertionError, match="exp\\(H\\)"):
        check_effective_rank(lambda z: _rank(z) ** 0.5)


def test_check_variance_term():
    check_variance_term(lambda z, gamma=1.0: F.relu(gamma - torch.sqrt(z.var(0) + 1e-4)).mean())
    with pytest.raises(AssertionError, match="F.relu\\(gamma − std\\)"):
        check_variance_term(lambda z, gamma=1.0: (gamma - torch.sqrt(z.var(0) + 1e-4)).mean())   # no hinge
    with pytest.raises(AssertionError, match="std of each column"):
        check_variance_term(lambda z, gamma=1.0: F.relu(gamma - torch.sqrt(z.var(1) + 1e-4)).mean())


def test_check_effective_negatives():
    def right(sims, t):
        p = F.softmax(sims / t, dim=0)
        return math.exp(-(p * p.clamp_min(1e-30).log()).sum().item())

    check_effective_negatives(right)
    with pytest.raises(AssertionError, match="softmax\\(similarities / τ\\)"):
        check_effective_negatives(lambda sims, t: right(sims, 1.0))          # ignores the temperature
    with pytest.raises(AssertionError, match="exp\\(−Σ p log p\\)"):
        check_effective_negatives(lambda sims, t: 1 / (F.softmax(sims / t, dim=0) ** 2).sum().item())


def test_checks_want_the_function_itself():
    for check in (check_effective_rank, check_variance_term, check_effective_negatives):
        with pytest.raises(AssertionError, match="pass the function itself"):
            check(0.5)
