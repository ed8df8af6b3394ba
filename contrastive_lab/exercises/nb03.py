"""Self-checks for notebook 03 (InfoNCE / NT-Xent)."""
from __future__ import annotations

import torch

from . import passed, self_check


@self_check
def check_unmasked_bug(nt_xent_unmasked, caught_at_init, floor) -> None:
    """Exercise 1: nt_xent_unmasked(z1, z2, temperature) = NT-Xent WITHOUT masking each view's
    similarity with itself (the classic bug); caught_at_init: True/False — does the loss at
    initialization give the bug away (is it far from ln(2N − 1))?; floor: the lowest value the
    buggy loss can reach, for any model (a number)."""
    import math

    import torch.nn.functional as F

    from ..losses import nt_xent

    g = torch.Generator().manual_seed(30)
    z1, z2 = torch.randn(16, 8, generator=g), torch.randn(16, 8, generator=g)
    z = F.normalize(torch.cat([z1, z2]), dim=1)
    twin = torch.cat([torch.arange(16, 32), torch.arange(16)])
    for tau in (0.2, 0.5):
        want = F.cross_entropy(z @ z.T / tau, twin).item()
        got = float(nt_xent_unmasked(z1, z2, tau))
        if abs(got - want) > 1e-4:
            hint = (" That is the masked (correct) NT-Xent: leave the diagonal in."
                    if abs(got - nt_xent(z1, z2, tau).item()) < 1e-4 else "")
            raise AssertionError(f"at τ = {tau} expected {want:.4f}, got {got:.4f}.{hint} Normalize the 2N rows, "
                                 "logits = z @ z.T / τ, target of view i is its twin i ± N.")
    if not isinstance(caught_at_init, bool):
        raise AssertionError("caught_at_init must be True or False")
    if caught_at_init:
        raise AssertionError("compare the numbers you printed: the buggy loss at init sits within a few tenths "
                             "of the correct one, both near ln(2N − 1). At init every view's own logit is "
                             "only somewhat larger than the rest, so the sanity check does not give it away")
    if floor is None or abs(float(floor) - math.log(2)) > 1e-3:
        raise AssertionError("think of a perfect model: its twin's logit can at best EQUAL the view's own "
                             "logit (cos = 1 for both), so the twin gets at most half the softmax. "
                             "The loss can then not go below −log(1/2)")
    passed("the loss at init does not catch this bug. Its trace is elsewhere: the buggy loss can never go "
           "below ln 2 ≈ 0.69, because the view's own logit (cosine 1, the largest possible) stays in the "
           "denominator, so the twin can take at most half the softmax — a loss "
           "that will not go below a round number is a clue worth checking")


@self_check
def check_info_nce_explicit(fn) -> None:
    """Exercise 2: fn(query (N, D), positive_key (N, D), negative_keys (M, D), temperature) → scalar,
    InfoNCE with explicit negatives (MoCo's form), written as a cross-entropy."""
    from ..losses import info_nce

    if not callable(fn):
        raise AssertionError("pass your function itself, e.g. check_info_nce_explicit(info_nce_explicit)")
    g = torch.Generator().manual_seed(3)
    q = torch.randn(5, 8, generator=g)
    k = q + 0.3 * torch.randn(5, 8, generator=g)
    neg = 3.0 * torch.randn(7, 8, generator=g)            # not unit length: normalize inside
    for tau in (0.1, 0.5):
        got = fn(q, k, neg, tau)
        if not isinstance(got, torch.Tensor) or got.numel() != 1:
            raise AssertionError("return the mean loss as a 0-dim tensor (F.cross_entropy does that)")
        want = info_nce(q, k, neg, temperature=tau)
        if not torch.allclose(got.float(), want, atol=1e-4):
            raise AssertionError(
                f"at temperature {tau} you return {got.item():.4f}, info_nce gives {want.item():.4f}. "
                "Check: rows L2-normalized, logits = [q·k⁺ | q·negatives] / temperature of shape "
                "(N, 1 + M), and the target is column 0 for every query.")
    passed("InfoNCE with a queue of negatives is a (1 + M)-way cross-entropy with target 0")


@self_check
def check_nt_xent_without_false_negatives(fn) -> None:
    """Exercise 3: fn(z1 (N, D), z2 (N, D), labels (N,), temperature) → scalar: NT-Xent in which
    every view of ANOTHER image with the same label is removed from the candidates (a known
    false negative is neither pushed away nor pulled in); the twin stays the only positive."""
    from ..losses import nt_xent

    if not callable(fn):
        raise AssertionError("pass your function itself, e.g. "
                             "check_nt_xent_without_false_negatives(nt_xent_without_false_negatives)")
    g = torch.Generator().manual_seed(5)
    z1 = torch.randn(6, 8, generator=g)
    z2 = z1 + 0.5 * torch.randn(6, 8, generator=g)
    unique = torch.arange(6)
    got = fn(z1, z2, unique, 0.2)
    if not isinstance(got, torch.Tensor) or got.numel() != 1:
        raise AssertionError("return the mean loss over the 2N views as a 0-dim tensor")
    if not torch.allclose(got.float(), nt_xent(z1, z2, 0.2), atol=1e-4):
        raise AssertionError("with all labels different nothing should be removed: your loss should "
                             f"equal nt_xent ({nt_xent(z1, z2, 0.2).item():.4f}), got {got.item():.4f}")
    labels = torch.tensor([0, 0, 1, 1, 1, 2])
    want = _reference_without_false_negatives(z1, z2, labels, 0.2)
    got = fn(z1, z2, labels, 0.2)
    if not torch.allclose(got.float(), want, atol=1e-4):
        hint = ""
        if torch.allclose(got.float(), nt_xent(z1, z2, 0.2), atol=1e-4):
            hint = " You return plain nt_xent: nothing was removed."
        raise AssertionError(
            f"for labels {labels.tolist()} expected {want.item():.4f}, got {got.item():.4f}.{hint} "
            "Mask (set to −inf) the logits of self AND of other views with the same label, but "
            "keep each view's twin: it is the target.")
    if not got.item() <= nt_xent(z1, z2, 0.2).item() + 1e-6:
        raise AssertionError("removing negatives can only lower the loss")
    passed("false negatives removed from the denominator; the twin stays the target")


def _reference_without_false_negatives(z1, z2, labels, temperature):
    import torch.nn.functional as F

    n = z1.shape[0]
    z = F.normalize(torch.cat([z1, z2]).float(), dim=1)
    logits = z @ z.T / temperature
    twin = torch.cat([torch.arange(n, 2 * n), torch.arange(n)])
    lab = labels.repeat(2)
    drop = lab[:, None] == lab[None, :]                    # self, twin and same-label views
    drop[torch.arange(2 * n), twin] = False                # the twin stays
    return F.cross_entropy(logits.masked_fill(drop, float("-inf")), twin)
