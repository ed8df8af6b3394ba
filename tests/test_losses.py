"""Losses against values worked out by hand on points of the unit circle.

Angles are chosen so the cosines are simple: cos 0° = 1, cos 60° = 0.5,
cos 90° = 0. Each expected value is written as the formula it comes from.
"""
import math

import pytest
import torch
import torch.nn.functional as F

from contrastive_lab.losses import (clip_loss, contrastive_loss, cosine_similarity_matrix, info_nce,
                                    nt_xent, pairwise_distance, supcon_loss, triplet_loss)


def unit(deg):
    """Point on the unit circle at `deg` degrees, shape (2,)."""
    r = math.radians(deg)
    return torch.tensor([math.cos(r), math.sin(r)])


def circle(*degs):
    return torch.stack([unit(d) for d in degs])


# ---------------------------------------------------------------- similarities
def test_cosine_similarity_matrix_known_angles():
    sim = cosine_similarity_matrix(circle(0, 60, 90))
    expected = torch.tensor([[1.0, 0.5, 0.0], [0.5, 1.0, math.cos(math.radians(30))], [0.0, 0.866025, 1.0]])
    torch.testing.assert_close(sim, expected, atol=1e-5, rtol=0)


def test_cosine_is_scale_invariant():
    a, b = torch.randn(5, 8), torch.randn(4, 8)
    torch.testing.assert_close(cosine_similarity_matrix(3 * a, 0.1 * b), cosine_similarity_matrix(a, b))


def test_euclidean_on_unit_vectors_is_sqrt_2_minus_2cos():
    z = circle(0, 60, 90)
    d = pairwise_distance(z, distance="euclidean")
    torch.testing.assert_close(d[0, 1], torch.tensor(math.sqrt(2 - 2 * 0.5)), atol=1e-4, rtol=0)
    torch.testing.assert_close(d[0, 2], torch.tensor(math.sqrt(2.0)), atol=1e-4, rtol=0)


# ---------------------------------------------------------------- margin losses
def test_triplet_loss_cosine_by_hand():
    anchor = circle(0, 0)
    positive = circle(60, 60)       # d(a, p) = 1 − 0.5 = 0.5
    negative = circle(90, 30)       # d(a, n) = 1.0 (easy) and 1 − cos 30° (hard)
    loss = triplet_loss(anchor, positive, negative, margin=0.2, distance="cosine")
    hard = 0.5 - (1 - math.cos(math.radians(30))) + 0.2
    expected = (0.0 + hard) / 2
    assert loss.item() == pytest.approx(expected, abs=1e-5)


def test_triplet_loss_euclidean_by_hand():
    loss = triplet_loss(circle(0), circle(60), circle(90), margin=0.5, distance="euclidean")
    # d(a, p) = 1, d(a, n) = √2
    assert loss.item() == pytest.approx(1 - math.sqrt(2) + 0.5, abs=1e-5)


def test_triplet_loss_is_zero_and_gradless_when_margin_is_met():
    a = circle(0).requires_grad_()
    loss = triplet_loss(a, circle(10), circle(180), margin=0.2)
    loss.backward()
    assert loss.item() == 0.0
    assert torch.all(a.grad == 0)


def test_triplet_loss_pushes_negative_away():
    n = circle(30).requires_grad_()
    triplet_loss(circle(0), circle(60), n, margin=0.2).backward()
    # gradient descent moves n along −grad: its angle to the anchor must grow
    moved = F.normalize(n.detach() - 0.1 * n.grad, dim=1)
    assert (moved @ unit(0)).item() < math.cos(math.radians(30))


def test_contrastive_loss_by_hand():
    z1 = torch.tensor([[0.0, 0.0], [0.0, 0.0]])
    z2 = torch.tensor([[0.5, 0.0], [0.3, 0.0]])
    same = torch.tensor([1, 0])
    # same pair: d² = 0.25; different pair: (margin − d)² = 0.7² = 0.49
    assert contrastive_loss(z1, z2, same, margin=1.0).item() == pytest.approx((0.25 + 0.49) / 2, abs=1e-5)


def test_contrastive_loss_ignores_far_negatives():
    assert contrastive_loss(torch.zeros(1, 2), torch.tensor([[2.0, 0.0]]), torch.tensor([0]), 1.0).item() == 0.0


# ---------------------------------------------------------------- temperature losses
def test_info_nce_in_batch_by_hand():
    q = k = circle(0, 90)
    # logits = I / τ with τ = 1: loss = −log(e / (e + 1)) = log(1 + e⁻¹)
    assert info_nce(q, k, temperature=1.0).item() == pytest.approx(math.log(1 + math.exp(-1)), abs=1e-6)


def test_info_nce_explicit_negatives_by_hand():
    q, k = circle(0), circle(0)
    negatives = circle(180, 90)
    # logits / τ = (1, −1, 0) / 0.5 = (2, −2, 0); loss = log(1 + e⁻⁴ + e⁻²)
    loss = info_nce(q, k, negatives, temperature=0.5)
    assert loss.item() == pytest.approx(math.log(1 + math.exp(-4) + math.exp(-2)), abs=1e-6)


def test_info_nce_at_init_is_log_of_candidates():
    q, k = torch.randn(16, 32), torch.randn(16, 32)
    assert info_nce(q, k, temperature=1e6).item() == pytest.approx(math.log(16), abs=1e-4)
    assert info_nce(q, k, torch.randn(99, 32), temperature=1e6).item() == pytest.approx(math.log(100), abs=1e-4)


def test_nt_xent_by_hand():
    z = circle(0, 90)
    # view 0 = (1,0): positive sim 1, negatives sims 0, 0 → log(1 + 2e⁻¹); same for all 4 views
    assert nt_xent(z, z, temperature=1.0).item() == pytest.approx(math.log(1 + 2 * math.exp(-1)), abs=1e-6)


def nt_xent_loop(z1, z2, t):
    """Plain-loop reference: 2N views, positive = twin, every other view a negative."""
    z = F.normalize(torch.cat([z1, z2]), dim=1)
    n2 = len(z)
    total = 0.0
    for i in range(n2):
        j = (i + n2 // 2) % n2
        denom = sum(math.exp((z[i] @ z[k]).item() / t) for k in range(n2) if k != i)
        total += -math.log(math.exp((z[i] @ z[j]).item() / t) / denom)
    return total / n2


def test_nt_xent_matches_loop_reference():
    g = torch.Generator().manual_seed(0)
    z1, z2 = torch.randn(6, 5, generator=g), torch.randn(6, 5, generator=g)
    assert nt_xent(z1, z2, 0.3).item() == pytest.approx(nt_xent_loop(z1, z2, 0.3), rel=1e-5)


def test_nt_xent_at_init_is_log_2n_minus_1():
    n = 32
    assert nt_xent(torch.randn(n, 64), torch.randn(n, 64), temperature=1e6).item() == \
        pytest.approx(math.log(2 * n - 1), abs=1e-4)


def test_nt_xent_gradient_reaches_both_views():
    z1, z2 = torch.randn(4, 8, requires_grad=True), torch.randn(4, 8, requires_grad=True)
    nt_xent(z1, z2, 0.5).backward()
    assert z1.grad.abs().sum() > 0 and z2.grad.abs().sum() > 0


def test_supcon_by_hand():
    features = circle(0, 0, 90)
    labels = torch.tensor([0, 0, 1])
    # anchors 0 and 1: positive sim 1, other candidate sim 0 → log(1 + e⁻¹); anchor 2 has no positive
    assert supcon_loss(features, labels, temperature=1.0).item() == \
        pytest.approx(math.log(1 + math.exp(-1)), abs=1e-6)


def test_supcon_with_unique_labels_equals_nt_xent():
    z1, z2 = torch.randn(5, 8), torch.randn(5, 8)
    labels = torch.arange(5).repeat(2)
    torch.testing.assert_close(supcon_loss(torch.cat([z1, z2]), labels, 0.2), nt_xent(z1, z2, 0.2))


def test_clip_loss_2x2_by_hand_and_symmetric():
    img, txt = circle(0, 90), circle(0, 90)
    assert clip_loss(img, txt, 1.0).item() == pytest.approx(math.log(1 + math.exp(-1)), abs=1e-6)
    a, b = torch.randn(6, 4), torch.randn(6, 4)
    torch.testing.assert_close(clip_loss(a, b, 10.0), clip_loss(b, a, 10.0))
    both_ways = 0.5 * (info_nce(a, b, temperature=0.1) + info_nce(b, a, temperature=0.1))
    torch.testing.assert_close(clip_loss(a, b, 10.0), both_ways)


def test_losses_are_float32_and_close_under_bf16_autocast():
    z1, z2 = torch.randn(16, 32), torch.randn(16, 32)
    reference = nt_xent(z1, z2, 0.1)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        loss = nt_xent(z1.bfloat16(), z2.bfloat16(), 0.1)
    assert loss.dtype == torch.float32
    assert loss.item() == pytest.approx(reference.item(), rel=2e-2)


def test_low_temperature_stays_finite():
    z1, z2 = torch.randn(8, 4), torch.randn(8, 4)
    assert torch.isfinite(nt_xent(z1, z2, 1e-4)) and torch.isfinite(info_nce(z1, z2, temperature=1e-4))


# ---------------------------------------------------------------- bad input
@pytest.mark.parametrize("t", [0.0, -0.1, float("nan"), float("inf")])
def test_bad_temperature_is_named(t):
    z = torch.randn(4, 8)
    for fn in (lambda: info_nce(z, z, temperature=t), lambda: nt_xent(z, z, t),
               lambda: supcon_loss(z, torch.tensor([0, 0, 1, 1]), t)):
        with pytest.raises(ValueError, match="temperature must be > 0"):
            fn()


def test_mismatched_shapes_are_named():
    with pytest.raises(ValueError, match=r"same shape \(N, D\), got \(8, 128\) and \(8, 64\)"):
        nt_xent(torch.randn(8, 128), torch.randn(8, 64))
    with pytest.raises(ValueError, match="anchor and negative"):
        triplet_loss(torch.randn(3, 4), torch.randn(3, 4), torch.randn(2, 4))
    with pytest.raises(ValueError, match="image_emb and text_emb"):
        clip_loss(torch.randn(3, 4), torch.randn(4, 4), 10.0)


def test_empty_nan_and_margin_errors():
    with pytest.raises(ValueError, match="empty"):
        triplet_loss(torch.empty(0, 4), torch.empty(0, 4), torch.empty(0, 4))
    bad = torch.tensor([[float("nan"), 0.0]])
    with pytest.raises(ValueError, match="NaN or Inf"):
        triplet_loss(bad, bad, bad)
    with pytest.raises(ValueError, match="margin must be >= 0"):
        triplet_loss(circle(0), circle(0), circle(0), margin=-0.1)
    with pytest.raises(ValueError, match="distance must be one of"):
        triplet_loss(circle(0), circle(0), circle(0), distance="manhattan")
    with pytest.raises(ValueError, match="logit_scale must be > 0"):
        clip_loss(circle(0), circle(0), 0.0)
    with pytest.raises(ValueError, match="N ≥ 2"):
        nt_xent(circle(0), circle(0))
    with pytest.raises(ValueError, match="no sample has a positive"):
        supcon_loss(circle(0, 90), torch.tensor([0, 1]))
