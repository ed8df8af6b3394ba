"""Notebook 10's self-checks accept the right answers and explain wrong ones."""
import math

import pytest
import torch

from contrastive_lab.exercises.nb10 import check_arcface_by_hand, check_gallery_recalls, check_threshold_for_far

RIGHT_LOGIT = 30 * math.cos(math.acos(0.6) + 0.5)
RIGHT_LOSS = -(RIGHT_LOGIT - math.log(math.exp(RIGHT_LOGIT) + math.exp(21.0)))
RIGHT_ANGLE = math.degrees(math.acos(0.7) - 0.5)


def test_arcface_by_hand_accepts_the_right_answer(capsys):
    check_arcface_by_hand(RIGHT_LOGIT, RIGHT_LOSS, RIGHT_ANGLE)
    assert "✓" in capsys.readouterr().out


@pytest.mark.parametrize("answer, hint", [
    ((30 * 0.6, RIGHT_LOSS, RIGHT_ANGLE), "without the margin"),
    ((30 * (0.6 - 0.5), RIGHT_LOSS, RIGHT_ANGLE), "added to the angle, not to the cosine"),
    ((math.cos(math.acos(0.6) + 0.5), RIGHT_LOSS, RIGHT_ANGLE), "multiply by the scale"),
    ((RIGHT_LOGIT, 1.0, RIGHT_ANGLE), "the other logit gets no margin"),
    ((RIGHT_LOGIT, RIGHT_LOSS, math.degrees(math.acos(0.7))), "subtract m"),
])
def test_arcface_by_hand_explains_a_wrong_answer(answer, hint):
    with pytest.raises(AssertionError, match=hint):
        check_arcface_by_hand(*answer)


def right_threshold(scores, far):
    budget = math.floor(far * len(scores) + 1e-9)
    ranked = scores.sort(descending=True).values
    return ranked[0].item() + 1e-6 if budget == 0 else ranked[budget - 1].item()


def test_threshold_for_far_accepts_the_right_answer(capsys):
    check_threshold_for_far(right_threshold)
    assert "✓" in capsys.readouterr().out


def test_threshold_for_far_says_when_too_many_impostors_pass():
    with pytest.raises(AssertionError, match="Raise it"):
        check_threshold_for_far(lambda s, far: right_threshold(s, far) - 1e-3)


def test_threshold_for_far_says_when_the_budget_is_not_spent():
    # a quantile without care for the budget: one impostor fewer than allowed
    def too_high(scores, far):
        budget = math.floor(far * len(scores) + 1e-9)
        ranked = scores.sort(descending=True).values
        return ranked[max(budget - 2, 0)].item() + (1e-6 if budget <= 1 else 0)
    with pytest.raises(AssertionError, match="lower it"):
        check_threshold_for_far(too_high)


def gallery_setup():
    labels = torch.arange(20).repeat_interleave(4)
    emb = torch.nn.functional.normalize(torch.randn(80, 8, generator=torch.Generator().manual_seed(0)), dim=1)
    gallery = torch.tensor([i for i in range(80) if i % 4 < 2])
    probe = torch.tensor([i for i in range(80) if i % 4 >= 2])
    return emb, labels, gallery, probe


def test_gallery_recalls_accepts_the_right_answer(capsys):
    from contrastive_lab.evaluate import recall_at_k

    emb, labels, gallery, probe = gallery_setup()
    recalls = {}
    for n in (2, 5, 20):
        g = gallery[labels[gallery] < n]
        p = probe[labels[probe] < n]
        recalls[n] = recall_at_k(gallery_emb=emb[g], gallery_labels=labels[g], query_emb=emb[p], query_labels=labels[p])
    check_gallery_recalls(recalls, emb, labels, gallery, probe)
    assert "✓" in capsys.readouterr().out


def test_gallery_recalls_explains_probes_left_unrestricted():
    from contrastive_lab.evaluate import recall_at_k

    emb, labels, gallery, probe = gallery_setup()
    recalls = {}
    for n in (2, 5, 20):
        g = gallery[labels[gallery] < n]
        recalls[n] = recall_at_k(gallery_emb=emb[g], gallery_labels=labels[g],      # every probe, small gallery
                                 query_emb=emb[probe], query_labels=labels[probe])
    with pytest.raises(AssertionError, match="in BOTH the gallery and the probes"):
        check_gallery_recalls(recalls, emb, labels, gallery, probe)
