"""The notebook-09 (sentence embeddings) self-checks accept right answers and reject wrong ones with a hint."""
import math

import pytest
import torch

from contrastive_lab.exercises.nb09 import check_bm25_k1, check_loss_with_hard_negatives, check_ndcg_one_query


def test_check_loss_with_hard_negatives():
    check_loss_with_hard_negatives(math.log(128), batch_size=64)
    with pytest.raises(AssertionError, match="hard negatives are candidates too"):
        check_loss_with_hard_negatives(math.log(64), batch_size=64)
    with pytest.raises(AssertionError, match="EVERY hard negative"):
        check_loss_with_hard_negatives(math.log(65), batch_size=64)


def test_an_unanswered_exercise_1_is_reported_kindly(capsys):
    check_loss_with_hard_negatives(None)
    assert "not done yet: check_loss_with_hard_negatives is waiting for answer" in capsys.readouterr().out


def test_check_bm25_k1():
    measured = {0.5: 0.50, 0.9: 0.55, 1.2: 0.58, 1.5: 0.57, 2.0: 0.52}
    check_bm25_k1(1.2, measured)
    with pytest.raises(AssertionError, match="choose the best on validation"):
        check_bm25_k1(1.5, measured)
    with pytest.raises(AssertionError, match="for every k1"):
        check_bm25_k1(1.2, {1.2: 0.58})
    with pytest.raises(AssertionError, match=r"\[0, 1\]"):
        check_bm25_k1(1.2, {k: 3.0 for k in measured})


def right_ndcg(scores, relevance, k):
    order = scores.argsort(descending=True)
    discount = 1 / torch.log2(torch.arange(2, len(scores) + 2, dtype=torch.float32))
    dcg = (relevance[order][:k] * discount[:k]).sum()
    ideal = (relevance.sort(descending=True).values[:k] * discount[:k]).sum()
    return (dcg / ideal).item() if ideal > 0 else 0.0


def test_check_ndcg_one_query():
    check_ndcg_one_query(right_ndcg)

    def unnormalised(scores, relevance, k):
        order = scores.argsort(descending=True)
        return (relevance[order][:k] / torch.log2(torch.arange(2, k + 2)[:len(scores)].float())).sum().item()
    with pytest.raises(AssertionError, match="ideal order"):
        check_ndcg_one_query(unnormalised)
    with pytest.raises(AssertionError, match="only the top k"):
        check_ndcg_one_query(lambda s, r, k: right_ndcg(s, r, len(s)))
    with pytest.raises(AssertionError, match="pass the function"):
        check_ndcg_one_query(0.5)


def test_check_mean_pooling():
    import torch.nn.functional as F
    from contrastive_lab.exercises.nb09 import check_mean_pooling

    def right(states, mask):
        m = mask.unsqueeze(-1).float()
        return F.normalize((states * m).sum(1) / m.sum(1), dim=1)
    check_mean_pooling(right)
    with pytest.raises(AssertionError, match="averages the padding"):
        check_mean_pooling(lambda s, m: F.normalize(s.mean(1), dim=1))
    with pytest.raises(AssertionError, match="not unit length"):
        check_mean_pooling(lambda s, m: (s * m.unsqueeze(-1)).sum(1) / m.sum(1, keepdim=True))
    with pytest.raises(AssertionError, match="pass the function"):
        check_mean_pooling(0.5)
