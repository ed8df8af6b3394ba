"""Verification metrics (FAR, FRR, EER, TAR@FAR) on pairs small enough to count by hand."""
import pytest
import torch
from scipy.interpolate import interp1d
from scipy.optimize import brentq
from sklearn.metrics import roc_curve

from contrastive_lab.evaluate import (accepts, auc, confusion_counts, equal_error_rate, far_frr, first_per_identity,
                                      gallery_probe_split,
                                      pair_scores, tar_at_far, threshold_at_far,
                                      verification_pairs, verification_report)

# four genuine pairs and six impostor pairs, scores chosen so every rate is a count
SCORES = torch.tensor([0.9, 0.8, 0.6, 0.3, 0.7, 0.5, 0.4, 0.2, 0.1, 0.0])
SAME = torch.tensor([True, True, True, True, False, False, False, False, False, False])


def test_a_score_exactly_at_the_threshold_is_accepted_one_step_below_is_not():
    # the course's one rule, score >= t: the threshold 0.6 is a genuine pair's own score
    t = 0.6
    below = torch.nextafter(torch.tensor(t), torch.tensor(-1.0)).item()
    assert accepts(torch.tensor([t, below]), t).tolist() == [True, False]
    assert far_frr(SCORES, SAME, t) == (pytest.approx(1 / 6), pytest.approx(1 / 4))       # 0.6 accepted: FRR 1/4
    assert far_frr(SCORES, SAME, torch.nextafter(SCORES[2], torch.tensor(1.0)).item())[1] == pytest.approx(2 / 4)
    assert confusion_counts(SCORES, SAME, SCORES[2].item())["true accepts"] == 3
    assert confusion_counts(SCORES, SAME, torch.nextafter(SCORES[2], torch.tensor(1.0)).item())["true accepts"] == 2


def test_far_frr_by_counting():
    # accept score ≥ 0.55: genuine 0.9, 0.8, 0.6 accepted, 0.3 rejected; impostor 0.7 accepted
    far, frr = far_frr(SCORES, SAME, 0.55)
    assert far == pytest.approx(1 / 6) and frr == pytest.approx(1 / 4)
    assert confusion_counts(SCORES, SAME, 0.55) == {"true accepts": 3, "false rejects": 1,
                                                    "false accepts": 1, "true rejects": 5}


def test_threshold_and_tar_at_far_by_counting():
    # FAR ≤ 0.2 allows one of six impostors (0.7): the lowest such threshold is 0.6, TAR 3/4
    assert threshold_at_far(SCORES, SAME, 0.2) == pytest.approx(0.6)
    assert tar_at_far(SCORES, SAME, 0.2) == pytest.approx(0.75)
    # FAR ≤ 0.1 allows none: threshold 0.8 (above 0.7), TAR 2/4
    assert threshold_at_far(SCORES, SAME, 0.1) == pytest.approx(0.8)
    assert tar_at_far(SCORES, SAME, 0.1) == pytest.approx(0.5)


def test_eer_by_hand():
    # walking the threshold down: at 0.6, FAR 1/6 < FRR 1/4; at 0.5, FAR 2/6 > FRR 1/4.
    # On that ROC step FRR stays 1/4 while FAR goes 1/6 → 2/6: they meet at 1/4.
    eer, threshold = equal_error_rate(SCORES, SAME)
    assert eer == pytest.approx(0.25)
    assert threshold == pytest.approx(0.5)


def test_eer_of_perfectly_separated_scores_is_zero():
    eer, threshold = equal_error_rate(torch.tensor([0.9, 0.8, 0.2, 0.1]), torch.tensor([True, True, False, False]))
    assert eer == 0.0 and 0.2 < threshold < 0.8 + 1e-6


def test_eer_agrees_with_the_roc_curve_recipe():
    # the usual recipe: the zero of 1 − FAR − TAR along the interpolated ROC (scipy's brentq)
    g = torch.Generator().manual_seed(0)
    same = torch.rand(4000, generator=g) < 0.3
    scores = torch.randn(4000, generator=g) + 1.5 * same
    fpr, tpr, _ = roc_curve(same.numpy(), scores.numpy())
    expected = brentq(lambda x: 1.0 - x - interp1d(fpr, tpr)(x), 0.0, 1.0)
    eer, threshold = equal_error_rate(scores, same)
    assert eer == pytest.approx(expected, abs=2e-3)
    far, frr = far_frr(scores, same, threshold)
    assert abs(far - frr) < 0.01                       # at the returned threshold the rates meet


def test_auc_is_the_chance_a_genuine_pair_outscores_an_impostor():
    # 4 × 6 genuine–impostor comparisons; the genuine 0.3 loses to 0.7, 0.5, 0.4; the genuine 0.6 to 0.7
    assert auc(SCORES, SAME) == pytest.approx(1 - 4 / 24)


def test_report_has_every_number():
    report = verification_report(SCORES, SAME, fars=(0.2, 0.1))
    assert set(report) == {"AUC", "EER", "TAR@FAR=0.2", "TAR@FAR=0.1"}
    assert report["TAR@FAR=0.2"] == pytest.approx(0.75)
    # the same numbers as the one-metric functions; FAR = 1/6 is reached exactly: ≤, not <
    report = verification_report(SCORES, SAME, fars=(1 / 6,))
    assert report["AUC"] == pytest.approx(auc(SCORES, SAME))
    assert report["EER"] == pytest.approx(equal_error_rate(SCORES, SAME)[0])
    assert report[f"TAR@FAR={1 / 6:g}"] == tar_at_far(SCORES, SAME, 1 / 6) == pytest.approx(0.75)
    assert verification_report(SCORES, SAME) == verification_report(SCORES, SAME, fars=(1e-2, 1e-3))


def test_verification_pairs_counts_every_genuine_pair():
    labels = torch.tensor([0, 0, 0, 1, 1, 2])
    i, j, same = verification_pairs(labels)
    assert int(same.sum()) == 3 + 1                    # C(3,2) + C(2,2)
    assert int((~same).sum()) == 15 - 4               # all C(6,2) pairs minus the genuine ones
    assert torch.equal(labels[i] == labels[j], same) and bool((i < j).all())
    i, j, same = verification_pairs(labels, max_impostors=5, generator=torch.Generator().manual_seed(0))
    assert int(same.sum()) == 4 and int((~same).sum()) == 5
    again = verification_pairs(labels, max_impostors=5, generator=torch.Generator().manual_seed(0))
    other = verification_pairs(labels, max_impostors=5, generator=torch.Generator().manual_seed(1))
    assert torch.equal(again[0], i) and torch.equal(again[1], j)              # the seed repeats the draw
    assert not (torch.equal(other[0], i) and torch.equal(other[1], j))


def test_identity_helpers_refuse_what_is_not_a_label_vector():
    for bad in ([0, 0, 1], torch.zeros(3, 2, dtype=torch.long)):
        with pytest.raises(ValueError, match=r"expected labels of shape \(N,\) with N ≥ 2"):
            verification_pairs(bad)
        with pytest.raises(ValueError, match=r"expected labels of shape \(N,\)"):
            first_per_identity(bad, 1)
    with pytest.raises(ValueError, match="both genuine pairs"):
        verification_pairs(torch.tensor([3, 3]))                 # two items: one pair, genuine only
    # identity 0 has 2 items, identity 5 has 3: with n_gallery = 2 identity 0 has no probe left
    with pytest.raises(ValueError, match="the smallest has 2"):
        gallery_probe_split(torch.tensor([0, 0, 5, 5, 5]), 2)


def test_pair_scores_are_cosines():
    emb = torch.tensor([[1.0, 0.0], [3.0, 0.0], [0.0, 2.0]])
    torch.testing.assert_close(pair_scores(emb, torch.tensor([0, 0]), torch.tensor([1, 2])), torch.tensor([1.0, 0.0]))


def test_pair_scores_agree_whichever_way_they_are_computed():
    """Few pairs: row by row; many pairs: one matrix product, then indexing. Same cosines."""
    emb = torch.randn(6, 4, generator=torch.Generator().manual_seed(0))
    i, j = torch.triu_indices(6, 6, offset=1)                       # 15 pairs: 36 ≤ 60, the matrix way
    want = torch.nn.functional.cosine_similarity(emb[i], emb[j], dim=1)
    torch.testing.assert_close(pair_scores(emb, i, j), want, atol=1e-6, rtol=0)
    torch.testing.assert_close(pair_scores(emb, i[:3], j[:3]), want[:3], atol=1e-6, rtol=0)   # row by row


def test_gallery_probe_split_enrols_the_first_of_each_identity():
    labels = torch.tensor([7, 7, 3, 7, 3, 3, 3])
    gallery, probe = gallery_probe_split(labels, 1)
    assert gallery.tolist() == [0, 2] and probe.tolist() == [1, 3, 4, 5, 6]
    gallery, probe = gallery_probe_split(labels, 2)
    assert gallery.tolist() == [0, 1, 2, 4] and probe.tolist() == [3, 5, 6]
    assert first_per_identity(labels, 3).tolist() == [0, 1, 2, 3, 4, 5]     # identity 7 has only three


@pytest.mark.parametrize("call, match", [
    (lambda: equal_error_rate(SCORES, SAME[:5]), r"expected same of shape \(10,\)"),
    (lambda: equal_error_rate(SCORES[:, None], SAME), r"expected scores of shape \(P,\)"),
    (lambda: equal_error_rate(SCORES[:4], SAME[:4]), "need both genuine"),
    (lambda: tar_at_far(SCORES, SAME, 0.0), r"far \(false accept rate\) must be in \(0, 1\)"),
    (lambda: threshold_at_far(SCORES, SAME, 1.5), r"must be in \(0, 1\)"),
    (lambda: equal_error_rate(torch.tensor([0.1, float("nan")]), torch.tensor([True, False])), "NaN"),
    (lambda: verification_pairs(torch.tensor([0, 1, 2])), "genuine pairs"),
    (lambda: gallery_probe_split(torch.tensor([0, 0, 1]), 1), "more than n_gallery=1"),
    (lambda: pair_scores(torch.ones(4), torch.tensor([0]), torch.tensor([1])), r"expected emb of shape \(N, D\)"),
])
def test_bad_input_gives_a_clear_error(call, match):
    with pytest.raises(ValueError, match=match):
        call()


# ---------------------------------------------------------------- notebook 10's settings and embedder
def test_settings_follow_the_profile_and_the_embedder_runs_at_toy_size():
    from contrastive_lab.losses import arcface_loss
    from contrastive_lab.methods.verification import make_embedder, verification_settings
    from contrastive_lab.profiles import get_profile

    quick, full = verification_settings(get_profile("quick")), verification_settings(get_profile("full"))
    assert quick.source == "generated" and full.source == "omniglot"
    assert quick.n_train_ids >= 600 and quick.n_val_ids >= 100 and quick.n_test_ids >= 300
    assert quick.n_gallery < quick.eval_per_identity            # every test identity has probes
    for settings in (quick, full):
        model = make_embedder(settings)
        z = model(torch.rand(4, 1, settings.image_size, settings.image_size))
        assert z.shape == (4, settings.embed_dim)
        centres = torch.nn.Parameter(torch.randn(3, settings.embed_dim))
        arcface_loss(z, centres, torch.tensor([0, 1, 2, 0]), settings.arcface_margin, settings.arcface_scale).backward()
        assert centres.grad is not None and torch.isfinite(centres.grad).all()


def test_rates_at_a_threshold_equal_to_a_score_count_it_as_accepted():
    # score ≥ 0.6 is accepted: the genuine 0.6 is in, the impostor 0.7 too; FAR = 1/6 is within 1/6
    assert far_frr(SCORES, SAME, 0.6) == pytest.approx((1 / 6, 1 / 4))
    assert tar_at_far(SCORES, SAME, 1 / 6) == pytest.approx(0.75)
    assert threshold_at_far(SCORES, SAME, 1 / 6) == pytest.approx(0.6)
    with pytest.raises(ValueError, match=r"must be in \(0, 1\)"):
        tar_at_far(SCORES, SAME, 1.0)


def test_eer_where_the_rates_meet_exactly_on_a_step():
    # genuine 0.9, 0.7, 0.5, 0.3; impostor 0.8, 0.6, 0.4, 0.2: at 0.6 FAR = FRR = 1/2 exactly
    # (quarters are exact in binary), the first step where FRR ≤ FAR: its threshold is returned
    scores = torch.tensor([0.9, 0.7, 0.5, 0.3, 0.8, 0.6, 0.4, 0.2])
    same = torch.tensor([True] * 4 + [False] * 4)
    eer, threshold = equal_error_rate(scores, same)
    assert eer == 0.5 and threshold == pytest.approx(0.6)


def test_eer_agrees_with_the_roc_curve_recipe_when_scores_tie():
    """Scores rounded to one decimal: many genuine and impostor pairs share a score, so ROC steps
    move FAR and TAR at once. The EER is still where the polyline meets FAR = FRR."""
    g = torch.Generator().manual_seed(1)
    for _ in range(5):
        same = torch.rand(300, generator=g) < 0.4
        scores = (torch.randn(300, generator=g) + 1.0 * same).mul(10).round().div(10)
        fpr, tpr, _ = roc_curve(same.numpy(), scores.numpy(), drop_intermediate=False)
        expected = brentq(lambda x: 1.0 - x - interp1d(fpr, tpr)(x), 0.0, 1.0, xtol=1e-12)
        assert equal_error_rate(scores, same)[0] == pytest.approx(expected, abs=1e-9)
