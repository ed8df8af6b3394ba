"""The notebook-03 self-checks accept right answers and reject wrong ones with a hint."""
import math

import pytest
import torch
import torch.nn.functional as F

from contrastive_lab.exercises.nb03 import (check_info_nce_explicit, check_nt_xent_without_false_negatives,
                                            check_unmasked_bug)
from contrastive_lab.losses import nt_xent


def unmasked(z1, z2, t):
    z = F.normalize(torch.cat([z1, z2]), dim=1)
    n = len(z1)
    return F.cross_entropy(z @ z.T / t, torch.cat([torch.arange(n, 2 * n), torch.arange(n)]))


def test_check_unmasked_bug():
    check_unmasked_bug(unmasked, False, math.log(2))
    with pytest.raises(AssertionError, match="leave the diagonal in"):
        check_unmasked_bug(nt_xent, False, math.log(2))         # the correct loss is not the bug
    with pytest.raises(AssertionError, match="does not give it away"):
        check_unmasked_bug(unmasked, True, math.log(2))
    with pytest.raises(AssertionError, match="at most half"):
        check_unmasked_bug(unmasked, False, 0.0)


def info_nce_explicit(q, k, neg, t):
    q, k, neg = F.normalize(q, dim=1), F.normalize(k, dim=1), F.normalize(neg, dim=1)
    logits = torch.cat([(q * k).sum(1, keepdim=True), q @ neg.T], 1) / t
    return F.cross_entropy(logits, torch.zeros(len(q), dtype=torch.long))


def test_check_info_nce_explicit():
    check_info_nce_explicit(info_nce_explicit)
    with pytest.raises(AssertionError, match="normalized"):
        check_info_nce_explicit(lambda q, k, neg, t: info_nce_explicit(q, k, neg, 1.0))   # ignores τ


def without_false_negatives(z1, z2, labels, t):
    n = z1.shape[0]
    z = F.normalize(torch.cat([z1, z2]), dim=1)
    twin = torch.cat([torch.arange(n, 2 * n), torch.arange(n)])
    lab = labels.repeat(2)
    drop = lab[:, None] == lab[None, :]
    drop[torch.arange(2 * n), twin] = False
    return F.cross_entropy((z @ z.T / t).masked_fill(drop, float("-inf")), twin)


def test_check_nt_xent_without_false_negatives():
    check_nt_xent_without_false_negatives(without_false_negatives)
    with pytest.raises(AssertionError, match="nothing was removed"):
        check_nt_xent_without_false_negatives(lambda z1, z2, labels, t: nt_xent(z1, z2, t))
