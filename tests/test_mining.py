"""Miners against triplets worked out by hand on points of the unit circle.

Four points, two classes, cosine distance d = 1 − cos(angle between them):

    index  angle  label
      0      0°     0
      1     60°     0
      2     90°     1
      3    200°     1

    d(0,1) = 1 − cos 60°  = 0.500      d(1,2) = 1 − cos 30°  = 0.134
    d(0,2) = 1 − cos 90°  = 1.000      d(1,3) = 1 − cos 140° = 1.766
    d(0,3) = 1 − cos 200° = 1.940      d(2,3) = 1 − cos 110° = 1.342

Each class has one other member, so every anchor's positive is fixed
(0↔1, 2↔3); the miners differ only in the negative they pick.
"""
import math

import pytest
import torch

from contrastive_lab.losses import pairwise_distance
from contrastive_lab.mining import (DIFFICULTIES, MINERS, batch_all_triplets, batch_hard_triplets,
                                    random_triplets, semi_hard_triplets, triplet_difficulty)
from conftest import circle

ANGLES = (0, 60, 90, 200)
LABELS = torch.tensor([0, 0, 1, 1])


Z = circle(*ANGLES)


def as_set(triplets):
    a, p, n = triplets
    return {(int(i), int(j), int(k)) for i, j, k in zip(a, p, n)}


def assert_valid(triplets, labels):
    """Every triplet: anchor and positive share a label, the negative does not, anchor ≠ positive."""
    a, p, n = triplets
    assert a.shape == p.shape == n.shape and a.ndim == 1
    assert a.dtype == p.dtype == n.dtype == torch.long
    assert (labels[a] == labels[p]).all()
    assert (labels[a] != labels[n]).all()
    assert (a != p).all()


def test_hand_distances():
    d = pairwise_distance(Z)
    assert d[0, 1].item() == pytest.approx(0.5, abs=1e-5)
    assert d[1, 2].item() == pytest.approx(1 - math.cos(math.radians(30)), abs=1e-5)
    assert d[2, 3].item() == pytest.approx(1 - math.cos(math.radians(110)), abs=1e-5)


# ---------------------------------------------------------------- each miner by hand
def test_batch_hard_by_hand():
    # anchor 0: positive 1; closest negative is 2 (1.000 < 1.940)
    # anchor 1: positive 0; closest negative is 2 (0.134 < 1.766)
    # anchor 2: positive 3; closest negative is 1 (0.134 < 1.000)
    # anchor 3: positive 2; closest negative is 1 (1.766 < 1.940)
    triplets = batch_hard_triplets(Z, LABELS)
    assert as_set(triplets) == {(0, 1, 2), (1, 0, 2), (2, 3, 1), (3, 2, 1)}


def test_batch_hard_picks_farthest_positive():
    z = circle(0, 10, 50, 180)          # anchor 0 has positives 1 (10°) and 2 (50°)
    labels = torch.tensor([0, 0, 0, 1])
    a, p, n = batch_hard_triplets(z, labels)
    assert (int(a[0]), int(p[0]), int(n[0])) == (0, 2, 3)


def test_semi_hard_by_hand():
    # pair (0,1), d_ap 0.5: negatives 2 (1.000) and 3 (1.940) are both farther; closest is 2
    # pair (1,0), d_ap 0.5: negative 2 (0.134) is closer (hard, skipped); 3 (1.766) is farther
    # pair (2,3), d_ap 1.342: no negative is farther (1.000, 0.134) -> fallback: farthest, 0
    # pair (3,2), d_ap 1.342: both farther (1.940, 1.766); closest is 1
    triplets = semi_hard_triplets(Z, LABELS, margin=0.2)
    assert as_set(triplets) == {(0, 1, 2), (1, 0, 3), (2, 3, 0), (3, 2, 1)}


def test_semi_hard_prefers_the_negative_inside_the_margin():
    # anchor 0°, positive 60° (d_ap = 0.5); negatives at 55° (d 0.426: hard),
    # 70° (d 0.658: semi-hard, 0.5 < 0.658 < 0.5 + 0.2) and 180° (d 2: easy)
    z = circle(0, 60, 55, 70, 180)
    labels = torch.tensor([0, 0, 1, 1, 1])
    a, p, n = semi_hard_triplets(z, labels, margin=0.2)
    first = [(int(i), int(j), int(k)) for i, j, k in zip(a, p, n)][0]
    assert first == (0, 1, 3)
    d = pairwise_distance(z)
    assert triplet_difficulty(d[0, 1], d[0, 3], 0.2).item() == DIFFICULTIES.index("semi-hard")


def test_batch_all_by_hand():
    # active when d_ap − d_an + 0.2 > 0:
    # (1,0,2): 0.5 − 0.134 + 0.2 = 0.566   (2,3,0): 1.342 − 1.0 + 0.2 = 0.542
    # (2,3,1): 1.342 − 0.134 + 0.2 = 1.408; every other triplet has a negative value
    triplets = batch_all_triplets(Z, LABELS, margin=0.2)
    assert as_set(triplets) == {(1, 0, 2), (2, 3, 0), (2, 3, 1)}


def test_batch_all_with_zero_margin_drops_satisfied_triplets():
    # margin 0: only triplets with the negative strictly closer than the positive stay
    assert as_set(batch_all_triplets(Z, LABELS, margin=0.0)) == {(1, 0, 2), (2, 3, 0), (2, 3, 1)}
    assert as_set(batch_all_triplets(circle(0, 10, 90, 100), LABELS, margin=0.0)) == set()


def test_random_triplets_with_one_positive_per_anchor():
    g = torch.Generator().manual_seed(0)
    a, p, n = random_triplets(LABELS, g)
    assert a.tolist() == [0, 1, 2, 3]
    assert p.tolist() == [1, 0, 3, 2]               # the only positive of each anchor
    assert_valid((a, p, n), LABELS)


def test_random_triplets_cover_every_negative():
    g = torch.Generator().manual_seed(0)
    seen = set()
    for _ in range(50):
        _, _, n = random_triplets(LABELS, g)
        seen.add(int(n[0]))
    assert seen == {2, 3}                            # anchor 0's two negatives both come up


def test_euclidean_ranks_unit_vectors_like_cosine():
    # on unit vectors ‖a − b‖ = √(2 d_cos): same order, so the same hardest triplets
    assert as_set(batch_hard_triplets(Z, LABELS, "euclidean")) == as_set(batch_hard_triplets(Z, LABELS))
    assert as_set(semi_hard_triplets(Z, LABELS, 0.2, "euclidean")) == as_set(semi_hard_triplets(Z, LABELS))


# ---------------------------------------------------------------- contracts on random batches
@pytest.mark.parametrize("name", list(MINERS))
def test_every_returned_triplet_is_valid(name):
    g = torch.Generator().manual_seed(1)
    labels = torch.arange(4).repeat_interleave(5)   # P = 4 classes × K = 5
    z = torch.randn(20, 8, generator=g)
    triplets = random_triplets(labels, g) if name == "random" else MINERS[name](z, labels)
    assert len(triplets[0]) > 0
    assert_valid(triplets, labels)


def test_semi_hard_gives_one_triplet_per_positive_pair_and_no_hard_negative_when_it_can():
    g = torch.Generator().manual_seed(2)
    labels = torch.arange(3).repeat_interleave(4)
    z = torch.randn(12, 5, generator=g)
    a, p, n = semi_hard_triplets(z, labels, margin=0.3)
    assert len(a) == 3 * 4 * 3                       # every ordered positive pair once
    d = pairwise_distance(z)
    negatives = labels[:, None] != labels[None, :]
    has_farther = ((d[a] > d[a, p][:, None]) & negatives[a]).any(1)
    kind = triplet_difficulty(d[a, p], d[a, n], 0.3)
    assert (kind[has_farther] != DIFFICULTIES.index("hard")).all()


def test_anchor_without_positive_gives_no_triplet():
    labels = torch.tensor([0, 0, 1])                 # anchor 2 is alone in its class
    z = circle(0, 30, 90)
    for triplets in (batch_hard_triplets(z, labels), semi_hard_triplets(z, labels),
                     random_triplets(labels), batch_all_triplets(z, labels)):
        assert 2 not in triplets[0].tolist()
        assert_valid(triplets, labels)


def test_single_class_batch_gives_empty_triplets():
    labels = torch.zeros(4, dtype=torch.long)
    for triplets in (batch_hard_triplets(Z, labels), semi_hard_triplets(Z, labels),
                     random_triplets(labels), batch_all_triplets(Z, labels)):
        assert all(len(t) == 0 for t in triplets)


# ---------------------------------------------------------------- difficulty labels
def test_triplet_difficulty_regions():
    d_ap = torch.tensor([0.5, 0.5, 0.5, 0.5, 0.5])
    d_an = torch.tensor([0.3, 0.5, 0.6, 0.7, 0.9])
    names = [DIFFICULTIES[c] for c in triplet_difficulty(d_ap, d_an, margin=0.2)]
    assert names == ["hard", "hard", "semi-hard", "easy", "easy"]


def test_difficulty_matches_batch_all():
    # batch-all keeps exactly the triplets that are not easy
    a, p, n = batch_all_triplets(Z, LABELS, margin=0.2)
    d = pairwise_distance(Z)
    assert (triplet_difficulty(d[a, p], d[a, n], 0.2) != DIFFICULTIES.index("easy")).all()


# ---------------------------------------------------------------- bad input
def test_bad_inputs_raise_clear_errors():
    with pytest.raises(ValueError, match=r"shape \(N, D\)"):
        batch_hard_triplets(torch.randn(4), LABELS)
    with pytest.raises(ValueError, match=r"labels of shape \(4,\)"):
        semi_hard_triplets(Z, torch.tensor([0, 1, 1]))
    with pytest.raises(ValueError, match="margin must be >= 0"):
        batch_all_triplets(Z, LABELS, margin=-0.1)
    with pytest.raises(ValueError, match="margin must be >= 0"):
        semi_hard_triplets(Z, LABELS, margin=float("nan"))
    with pytest.raises(ValueError, match="distance must be one of"):
        batch_hard_triplets(Z, LABELS, distance="manhattan")
    with pytest.raises(ValueError, match="NaN or Inf"):
        batch_hard_triplets(torch.full((4, 2), float("nan")), LABELS)
    with pytest.raises(ValueError, match=r"labels of shape \(N,\)"):
        random_triplets(LABELS[None, :])
    with pytest.raises(ValueError, match="same shape"):
        triplet_difficulty(torch.zeros(3), torch.zeros(2))
