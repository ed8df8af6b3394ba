"""Details of the losses a learner relies on without reading the code: the documented
defaults, float32 results whatever the input dtype, and the edge cases of each formula.
(The formulas themselves are worked out by hand in test_losses.py.)"""
import math
import re

import pytest
import torch

from contrastive_lab.losses import (DEFAULT_TEMPERATURE, arcface_loss, clip_loss, contrastive_loss, info_nce,
                                    multiple_negatives_ranking_loss, negative_cosine, nt_xent, pairwise_distance,
                                    supcon_loss, triplet_loss, vicreg_loss, vicreg_terms)


def batch(n=6, d=5, seed=0):
    return torch.randn(n, d, generator=torch.Generator().manual_seed(seed))


Z1, Z2, Z3 = batch(seed=0), batch(seed=1), batch(seed=2)
LABELS = torch.tensor([0, 1, 0, 1, 2, 2])
SAME = torch.tensor([1, 0, 1, 0, 0, 1])


def test_the_documented_defaults():
    assert DEFAULT_TEMPERATURE == 0.2
    close = lambda a, b: torch.testing.assert_close(a, b, atol=0, rtol=0)
    close(info_nce(Z1, Z2), info_nce(Z1, Z2, None, 0.2))
    close(nt_xent(Z1, Z2), nt_xent(Z1, Z2, 0.2))
    close(supcon_loss(Z1, LABELS), supcon_loss(Z1, LABELS, 0.1))
    close(triplet_loss(Z1, Z2, Z3), triplet_loss(Z1, Z2, Z3, margin=0.2, distance="cosine"))
    # scaled down so that different pairs sit inside the margin (distances of about 0.6): the margin counts
    close(contrastive_loss(0.2 * Z1, 0.2 * Z2, SAME),
          contrastive_loss(0.2 * Z1, 0.2 * Z2, SAME, margin=1.0, distance="euclidean"))
    close(pairwise_distance(Z1, Z2), pairwise_distance(Z1, Z2, "cosine"))
    close(pairwise_distance(Z1), pairwise_distance(Z1, Z1))
    close(vicreg_loss(Z1, Z2), vicreg_loss(Z1, Z2, 25.0, 25.0, 1.0, gamma=1.0, eps=1e-4))
    assert vicreg_terms(Z1, Z2) == vicreg_terms(Z1, Z2, gamma=1.0, eps=1e-4)
    close(arcface_loss(Z1, Z2, LABELS), arcface_loss(Z1, Z2, LABELS, margin=0.5, scale=30.0))
    close(multiple_negatives_ranking_loss(Z1, Z2), multiple_negatives_ranking_loss(Z1, Z2, None, 20.0, False))


def test_float64_inputs_give_float32_losses_of_the_same_value():
    """Every loss computes in float32 (the docstring's precision rule), whatever comes in."""
    z1, z2, z3 = Z1.double(), Z2.double(), Z3.double()
    pairs = [
        (info_nce(z1, z2), info_nce(Z1, Z2)),
        (info_nce(z1, z2, z3), info_nce(Z1, Z2, Z3)),
        (nt_xent(z1, z2), nt_xent(Z1, Z2)),
        (supcon_loss(z1, LABELS), supcon_loss(Z1, LABELS)),
        (clip_loss(z1, z2, torch.tensor(14.0, dtype=torch.float64)), clip_loss(Z1, Z2, 14.0)),
        (triplet_loss(z1, z2, z3), triplet_loss(Z1, Z2, Z3)),
        (triplet_loss(z1, z2, z3, distance="euclidean"), triplet_loss(Z1, Z2, Z3, distance="euclidean")),
        (contrastive_loss(z1, z2, SAME), contrastive_loss(Z1, Z2, SAME)),
        (contrastive_loss(z1, z2, SAME, distance="cosine"), contrastive_loss(Z1, Z2, SAME, distance="cosine")),
        (negative_cosine(z1, z2), negative_cosine(Z1, Z2)),
        (vicreg_loss(z1, z2), vicreg_loss(Z1, Z2)),
        (arcface_loss(z1, z2, LABELS), arcface_loss(Z1, Z2, LABELS)),
        (multiple_negatives_ranking_loss(z1, z2, z3, symmetric=True),
         multiple_negatives_ranking_loss(Z1, Z2, Z3, symmetric=True)),
        (pairwise_distance(z1, z2, "euclidean"), pairwise_distance(Z1, Z2, "euclidean")),
        (pairwise_distance(z1, z2), pairwise_distance(Z1, Z2)),
    ]
    for ours, reference in pairs:
        assert ours.dtype == torch.float32
        torch.testing.assert_close(ours, reference)


def test_euclidean_distance_of_a_point_to_itself_is_tiny_not_nan():
    """pairwise: ‖a‖² − 2a·b + ‖b‖² can round below 0 in float32; it is clamped at 1e-12 before
    the square root, so the distance stays a small number (float32 rounding of the squares: below
    2e-3 here) with a finite gradient. paired: the difference itself, so exactly √1e-12."""
    a = (Z1 * 10).clone().requires_grad_(True)
    d = pairwise_distance(a, a, "euclidean")
    assert not d.isnan().any() and d.diagonal().max().item() < 2e-3
    d.sum().backward()
    assert torch.isfinite(a.grad).all()
    assert contrastive_loss(Z1, Z1, torch.ones(6)).item() == pytest.approx(1e-12, rel=1e-3)   # d² = 1e-12


def test_supcon_skips_anchors_without_a_positive():
    """Labels 2 and 3 appear once: their anchors have no positive and are left out of the mean."""
    labels = torch.tensor([0, 1, 0, 1, 2, 3])
    z = batch(6, 5, seed=3)
    per_anchor = []
    for i in range(4):                                  # anchors 0..3 have a positive
        others = [a for a in range(6) if a != i]
        sims = torch.nn.functional.cosine_similarity(z[i:i + 1], z[others]) / 0.2
        log_prob = sims - torch.logsumexp(sims, 0)
        positives = [k for k, a in enumerate(others) if labels[a] == labels[i]]
        per_anchor.append(-log_prob[positives].mean())
    assert supcon_loss(z, labels, 0.2).item() == pytest.approx(torch.stack(per_anchor).mean().item(), rel=1e-5)


def test_clip_loss_takes_a_tensor_scale_and_its_gradient():
    scale = torch.tensor(14.0, requires_grad=True)
    loss = clip_loss(Z1, Z2, scale)
    torch.testing.assert_close(loss, clip_loss(Z1, Z2, 14.0))
    loss.backward()
    assert scale.grad is not None and scale.grad.abs() > 0


def test_arcface_margin_beyond_pi_keeps_falling():
    """Past θ + m = π the target logit is s · (cos θ − (1 − cos m)): continuous at θ = π − m."""
    m, s = 0.5, 30.0
    w = torch.tensor([[1.0, 0.0], [0.0, 1.0]])
    for theta in (math.pi - m - 0.01, math.pi - m + 0.01, 3.0):
        z = torch.tensor([[math.cos(theta), math.sin(theta)]])
        loss = arcface_loss(z, w, torch.tensor([0]), margin=m, scale=s)
        target = math.cos(theta + m) if theta + m <= math.pi else math.cos(theta) - (1 - math.cos(m))
        other = math.sin(theta)                                             # cos to class 1
        want = -(s * target - math.log(math.exp(s * target) + math.exp(s * other)))
        assert loss.item() == pytest.approx(want, rel=1e-4)


def test_euclidean_distance_equals_cdist_on_unequal_sets():
    torch.testing.assert_close(pairwise_distance(Z1[:2], Z2[:3], "euclidean"), torch.cdist(Z1[:2], Z2[:3]),
                               atol=1e-5, rtol=0)


def test_cosine_distance_by_hand():
    want = torch.tensor([[1 - torch.nn.functional.cosine_similarity(a, b, dim=0).item() for b in Z2] for a in Z1])
    torch.testing.assert_close(pairwise_distance(Z1, Z2), want, atol=1e-6, rtol=0)
    torch.testing.assert_close(pairwise_distance(Z1[:2], Z2[:3], "cosine").shape, torch.Size([2, 3]))


def mnrl_by_hand(q, d, h, scale, symmetric):
    """−log softmax of each query's own document among the candidates, with plain loops."""
    cos = lambda u, v: (u @ v / (u.norm() * v.norm())).item()
    candidates = list(d) + ([] if h is None else list(h))
    forward = sum(-(scale * cos(q[i], d[i])) + math.log(sum(math.exp(scale * cos(q[i], c)) for c in candidates))
                  for i in range(len(q))) / len(q)
    if not symmetric:
        return forward
    backward = sum(-(scale * cos(d[j], q[j])) + math.log(sum(math.exp(scale * cos(d[j], u)) for u in q))
                   for j in range(len(d))) / len(d)
    return (forward + backward) / 2


@pytest.mark.parametrize("hard, symmetric", [(False, False), (True, False), (False, True), (True, True)])
def test_multiple_negatives_ranking_loss_by_hand(hard, symmetric):
    q, d, h = Z1[:4], Z2[:4], (Z3[:4] if hard else None)
    got = multiple_negatives_ranking_loss(q, d, h, scale=3.0, symmetric=symmetric)
    assert got.item() == pytest.approx(mnrl_by_hand(q, d, h, 3.0, symmetric), rel=1e-5)


BAD = torch.randn(3, 5)          # 3 rows where the batch has 6
BAD_NAMES = [
    (lambda: info_nce(Z1, BAD), "expected query and positive_key of the same shape"),
    (lambda: info_nce(Z1, Z2, BAD[0]), "expected negative_keys of shape (N, D)"),
    (lambda: info_nce(Z1, Z2, temperature=0.0), "temperature must be > 0"),
    (lambda: nt_xent(Z1, BAD), "expected z1 and z2 of the same shape"),
    (lambda: nt_xent(Z1, Z2, 0.0), "temperature must be > 0"),
    (lambda: supcon_loss(Z1[0], LABELS), "expected features of shape (N, D)"),
    (lambda: supcon_loss(Z1, LABELS[:3]), "expected labels of shape (6,)"),
    (lambda: supcon_loss(Z1, LABELS, 0.0), "temperature must be > 0"),
    (lambda: clip_loss(Z1, BAD, 10.0), "expected image_emb and text_emb of the same shape"),
    (lambda: clip_loss(Z1, Z2, 0.0), "logit_scale must be > 0"),
    (lambda: triplet_loss(Z1, BAD, Z3), "expected anchor and positive of the same shape"),
    (lambda: triplet_loss(Z1, Z2, BAD), "expected anchor and negative of the same shape"),
    (lambda: triplet_loss(Z1, Z2, Z3, margin=-1.0), "margin must be >= 0"),
    (lambda: contrastive_loss(Z1, BAD, SAME), "expected z1 and z2 of the same shape"),
    (lambda: contrastive_loss(Z1, Z2, SAME[:3]), "expected same of shape (6,)"),
    (lambda: contrastive_loss(Z1, Z2, SAME, margin=-1.0), "margin must be >= 0"),
    (lambda: negative_cosine(Z1, BAD), "expected prediction and target of the same shape"),
    (lambda: vicreg_loss(Z1, BAD), "expected z1 and z2 of the same shape"),
    (lambda: vicreg_loss(Z1, Z2, invariance_weight=-1.0), "invariance_weight must be >= 0, got -1.0"),
    (lambda: vicreg_loss(Z1, Z2, variance_weight=-1.0), "variance_weight must be >= 0, got -1.0"),
    (lambda: vicreg_loss(Z1, Z2, covariance_weight=-1.0), "covariance_weight must be >= 0, got -1.0"),
    (lambda: arcface_loss(Z1[0], Z2, LABELS), "expected embeddings of shape (N, D)"),
    (lambda: arcface_loss(Z1, Z2[0], LABELS), "expected class_weights of shape (N, D)"),
    (lambda: arcface_loss(Z1, Z2, LABELS, margin=-1.0), "margin must be >= 0"),
    (lambda: arcface_loss(Z1, Z2, LABELS, scale=0.0), "scale must be > 0"),
    (lambda: multiple_negatives_ranking_loss(Z1, BAD), "expected query and document of the same shape"),
    (lambda: multiple_negatives_ranking_loss(Z1, Z2, BAD), "expected query and hard_negative of the same shape"),
    (lambda: multiple_negatives_ranking_loss(Z1, Z2, scale=0.0), "scale must be > 0"),
    (lambda: pairwise_distance(Z1[0], Z2), "expected a of shape (N, D)"),
    (lambda: pairwise_distance(Z1[0], Z2, "euclidean"), "expected a of shape (N, D)"),
    (lambda: pairwise_distance(Z1, Z2[0], "euclidean"), "expected b of shape (N, D)"),
    (lambda: pairwise_distance(Z1, Z2[0]), "expected b of shape (N, D)"),
]


@pytest.mark.parametrize("call, words", BAD_NAMES, ids=[w for _, w in BAD_NAMES])
def test_an_error_names_the_argument_as_the_signature_spells_it(call, words):
    with pytest.raises(ValueError, match=re.escape(words)):
        call()


def test_vicreg_terms_ignore_a_shift_and_take_eps_inside_the_root():
    """Variance and covariance are about deviations from the batch mean: adding a constant to
    every embedding changes neither. eps is added to the variance before the square root."""
    z1 = torch.tensor([[1.0, 1.0], [-1.0, -1.0], [2.0, 0.0], [-2.0, 0.0]])
    z2 = torch.tensor([[1.0, 1.0], [-1.0, -1.0], [0.0, 2.0], [0.0, -2.0]])
    plain = vicreg_terms(z1, z2, eps=0.25)
    shifted = vicreg_terms(z1 + 3.0, z2 + 3.0, eps=0.25)
    for name in ("invariance", "variance", "covariance"):
        assert shifted[name].item() == pytest.approx(plain[name].item(), abs=1e-5)
    # per branch one dimension has variance 2/3 (std √(2/3 + 0.25) < 1), the other 10/3
    assert plain["variance"].item() == pytest.approx(1 - math.sqrt(2 / 3 + 0.25), rel=1e-5)


def test_negative_cosine_and_paired_distance_by_hand():
    # pairs at 0° and 90°: cos 1 and 0 → 2 − 2·cos = 0 and 2, mean 1; cosine distance 0 and 1
    p = torch.tensor([[1.0, 0.0], [1.0, 0.0]])
    t = torch.tensor([[3.0, 0.0], [0.0, 2.0]])
    assert negative_cosine(p, t).item() == pytest.approx(1.0)
    from contrastive_lab.losses import paired_distance
    torch.testing.assert_close(paired_distance(p, t), torch.tensor([0.0, 1.0]))
    torch.testing.assert_close(paired_distance(p, t, "euclidean"), torch.tensor([2.0, math.sqrt(5.0)]))


def test_every_loss_builds_its_masks_and_targets_on_the_embeddings_device():
    """The meta device stands in for a GPU: a target, mask or index made on the CPU beside
    meta embeddings fails, as it would beside CUDA ones. Value checks read values (a host
    copy), so they are off here, as they are inside `fit`."""
    from contrastive_lab.losses import dino_loss, siglip_loss
    from contrastive_lab.validate import value_checks
    m = lambda *shape: torch.empty(*shape, device="meta")
    labels = torch.tensor([0, 0, 1, 1], device="meta")
    calls = [lambda: info_nce(m(4, 3), m(4, 3)), lambda: info_nce(m(4, 3), m(4, 3), m(5, 3)),
             lambda: nt_xent(m(4, 3), m(4, 3)), lambda: supcon_loss(m(4, 3), labels),
             lambda: clip_loss(m(4, 3), m(4, 3), 10.0), lambda: siglip_loss(m(4, 3), m(4, 3), 10.0, -10.0),
             lambda: multiple_negatives_ranking_loss(m(4, 3), m(4, 3), m(4, 3), symmetric=True),
             lambda: arcface_loss(m(4, 3), m(5, 3), labels), lambda: dino_loss(m(3, 4, 3), m(2, 4, 3), m(3)),
             lambda: contrastive_loss(m(4, 3), m(4, 3), labels), lambda: triplet_loss(m(4, 3), m(4, 3), m(4, 3))]
    with value_checks(False):
        for call in calls:
            loss = call()
            assert loss.device.type == "meta" and loss.shape == ()


def test_two_pairs_are_enough_and_mnrl_is_info_nce_at_temperature_one_over_scale():
    """N ≥ 2 is the documented minimum of the in-batch losses: two pairs work (one is refused,
    unless a hard negative gives the query something to reject)."""
    from contrastive_lab.losses import siglip_loss
    q, d, h = Z1[:2], Z2[:2], Z3[:2]
    for loss in (info_nce(q, d), nt_xent(q, d), clip_loss(q, d, 10.0), siglip_loss(q, d, 10.0, -10.0)):
        assert torch.isfinite(loss)
    torch.testing.assert_close(multiple_negatives_ranking_loss(q, d), info_nce(q, d, None, 1 / 20))
    assert torch.isfinite(multiple_negatives_ranking_loss(q[:1], d[:1], h[:1]))
    with pytest.raises(ValueError, match="at least 2 pairs"):
        multiple_negatives_ranking_loss(q[:1], d[:1])


def test_vicreg_covariance_centres_each_dimension_on_its_own_mean():
    # x = 0, 2, 0, 2 (mean 1) and y = 10, 10, 12, 12 (mean 11) vary independently: covariance 0
    z = torch.tensor([[0.0, 10.0], [2.0, 10.0], [0.0, 12.0], [2.0, 12.0]])
    assert vicreg_terms(z, z)["covariance"].item() == pytest.approx(0.0, abs=1e-6)
