"""Self-checks for notebook 10 — verification and metric learning."""
from __future__ import annotations

import math

import torch

from . import passed, self_check


@self_check
def check_arcface_by_hand(true_logit: float, loss: float, largest_angle_deg: float) -> None:
    """Exercise 1: a sample with cos θ = 0.6 to its own centre and cosine 0.7 to the only
    other centre; ArcFace with m = 0.5, s = 30.

    true_logit: s · cos(θ + m). loss: −log of the true class's softmax probability.
    largest_angle_deg: the largest θ (degrees) at which the true class would still
    out-score the other one (its logit above 30 · 0.7).
    """
    m, s = 0.5, 30.0
    theta = math.acos(0.6)
    want_logit = s * math.cos(theta + m)
    other = s * 0.7
    want_loss = -(want_logit - math.log(math.exp(want_logit) + math.exp(other)))
    want_angle = math.degrees(math.acos(0.7) - m)
    if abs(true_logit - want_logit) > 0.01:
        if abs(true_logit - s * 0.6) < 0.01:
            hint = "that is s · cos θ, the logit without the margin: add m to the angle θ = arccos 0.6 first"
        elif abs(true_logit - s * (0.6 - m)) < 0.01:
            hint = "the margin is added to the angle, not to the cosine: s · cos(arccos 0.6 + 0.5)"
        elif abs(true_logit - math.cos(theta + m)) < 0.01:
            hint = "multiply by the scale s = 30"
        elif abs(true_logit - s * math.cos(math.radians(math.degrees(theta) + m))) < 0.01:
            hint = "m = 0.5 is in radians; θ = arccos 0.6 = 0.927 rad"
        else:
            hint = "θ = arccos 0.6 = 0.927 rad; the true-class logit is s · cos(θ + m)"
        raise AssertionError(f"true_logit: expected {want_logit:.3f}, got {true_logit:.3f}. Hint: {hint}.")
    if abs(loss - want_loss) > 0.01:
        raise AssertionError(
            f"loss: expected {want_loss:.3f}, got {loss:.3f}. With two classes the loss is "
            f"−log(e^a / (e^a + e^b)) for the true-class logit a = {want_logit:.2f} and the other b = 30 · 0.7 = 21; "
            "the other logit gets no margin.")
    if abs(largest_angle_deg - want_angle) > 0.1:
        hint = ("the true class wins when cos(θ + m) > 0.7, so θ + m < arccos 0.7"
                if abs(largest_angle_deg - math.degrees(math.acos(0.7))) > 0.1 else
                "that is arccos 0.7 without the margin: θ + m < arccos 0.7, so subtract m = 0.5 rad")
        raise AssertionError(f"largest_angle_deg: expected {want_angle:.2f}°, got {largest_angle_deg:.2f}°. Hint: {hint}.")
    passed(f"logit {want_logit:.2f}, loss {want_loss:.2f}: the sample must be within {want_angle:.1f}° of its "
           f"centre, {math.degrees(m):.1f}° closer than the {math.degrees(math.acos(0.7)):.1f}° at which plain "
           "softmax would already call it right — the margin.")


@self_check
def check_threshold_for_far(threshold_for_far) -> None:
    """Exercise 2: threshold_for_far(impostor_scores (P,), far) → the lowest threshold t such
    that at most a fraction `far` of the impostor scores are ≥ t (pairs with score ≥ t are accepted)."""
    g = torch.Generator().manual_seed(10)
    cases = [(torch.tensor([0.9, 0.1, 0.5, 0.3, 0.7, 0.2, 0.8, 0.4, 0.6, 0.0]), 0.2),
             (torch.tensor([0.9, 0.1, 0.5, 0.3, 0.7, 0.2, 0.8, 0.4, 0.6, 0.0]), 0.05),
             (torch.randn(20_000, generator=g), 1e-2), (torch.rand(5_000, generator=g), 1e-3)]
    for scores, far in cases:
        t = float(threshold_for_far(scores, far))
        n = len(scores)
        budget = math.floor(far * n + 1e-9)
        accepted = int((scores >= t).sum())
        where = f"with {n} impostor scores and far = {far:g} (at most {budget} may be accepted)"
        if accepted > budget:
            raise AssertionError(
                f"{where}: your threshold {t:.4f} accepts {accepted} impostors, so FAR = {accepted / n:.4f} > {far:g}. "
                "Raise it: sort the impostor scores from high to low; the budget allows the top "
                f"floor(far · n) = {budget} of them to pass, and no more (with a budget of 0, the threshold "
                "must lie above the highest impostor score).")
        if accepted < budget:
            raise AssertionError(
                f"{where}: your threshold {t:.4f} accepts only {accepted} impostors. That is safe, but it "
                "rejects more genuine pairs than it has to: lower it until exactly floor(far · n) impostors "
                "pass (the threshold equal to the floor(far · n)-th highest impostor score).")
    passed("each threshold spends exactly the false-accept budget, no more: the lowest threshold with "
           "FAR ≤ target accepts the most genuine pairs.")


@self_check
def check_gallery_recalls(recalls: dict, emb: torch.Tensor, labels: torch.Tensor, gallery: torch.Tensor,
                          probe: torch.Tensor) -> None:
    """Exercise 3: recalls = {n: Recall@1 of the probes of the first n identities against a
    gallery of the same n identities}, for the notebook's embeddings and gallery/probe split."""
    from ..evaluate import recall_at_k

    ids = labels[gallery].unique(sorted=True)
    sizes = sorted(recalls)
    assert len(sizes) >= 3, "compute Recall@1 for at least three gallery sizes (e.g. 10, 40, 160 and all)"
    for n in sizes:
        keep = ids[:n]
        g = gallery[torch.isin(labels[gallery], keep)]
        p = probe[torch.isin(labels[probe], keep)]
        want = recall_at_k(gallery_emb=emb[g], gallery_labels=labels[g], query_emb=emb[p], query_labels=labels[p])
        got = float(recalls[n])
        if abs(got - want) > 1e-6:
            raise AssertionError(
                f"gallery of {n} identities: expected Recall@1 {want:.4f}, got {got:.4f}. Keep the first n "
                "identities (labels[gallery].unique() is sorted) in BOTH the gallery and the probes: a probe "
                "whose identity is not enrolled cannot be identified.")
    first, last = recalls[sizes[0]], recalls[sizes[-1]]
    trend = "fell" if last < first else "did not fall"
    passed(f"Recall@1 {first:.3f} with {sizes[0]} enrolled identities, {last:.3f} with {sizes[-1]}: it {trend}. "
           "Every extra identity is one more impostor that can out-score the right one, so 1:N identification "
           "gets harder as the gallery grows; a 1:1 verification of one pair does not depend on who else is enrolled.")
