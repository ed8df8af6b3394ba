"""Ranking metrics on score matrices: nDCG@k, MRR@k and Recall@k, worked by hand and against scikit-learn."""
import math

import numpy as np
import pytest
import torch
from sklearn.metrics import ndcg_score

from contrastive_lab.evaluate import mrr_at_k, ndcg_at_k, retrieval_metrics, retrieval_recall_at_k

LOG2_3 = math.log2(3)


def test_ndcg_one_relevant_document_at_rank_two():
    # ranking: doc 0, doc 1 (relevant), doc 2 → DCG = 1 / log2(3); the ideal puts it first: 1
    assert ndcg_at_k([[3.0, 2.0, 1.0]], [[0, 1, 0]], k=3) == pytest.approx(1 / LOG2_3)


def test_ndcg_graded_relevance_by_hand():
    # ranking: doc 0 (gain 1), doc 1 (gain 2), doc 2 (0)
    # DCG = 1/log2(2) + 2/log2(3) = 2.2619; ideal = 2/log2(2) + 1/log2(3) = 2.6309
    got = ndcg_at_k([[0.9, 0.8, 0.1]], [[1, 2, 0]], k=3)
    assert got == pytest.approx((1 + 2 / LOG2_3) / (2 + 1 / LOG2_3))


def test_ndcg_counts_only_the_top_k():
    assert ndcg_at_k([[3.0, 2.0, 1.0]], [[0, 0, 1]], k=2) == 0.0
    assert ndcg_at_k([[3.0, 2.0, 1.0]], [[0, 0, 1]], k=3) == pytest.approx(1 / 2)   # 1/log2(4)


def test_ndcg_ties_share_their_mean_gain_as_sklearn():
    # docs 0 and 1 tie for ranks 1–2; their mean gain 0.5 is spread over both discounts
    got = ndcg_at_k([[1.0, 1.0, 0.0]], [[1, 0, 0]], k=3)
    assert got == pytest.approx(0.5 * (1 + 1 / LOG2_3))
    assert got == pytest.approx(ndcg_score([[1, 0, 0]], [[1.0, 1.0, 0.0]], k=3))


def test_ndcg_query_without_relevant_documents_scores_zero():
    # two queries: a perfect one (1) and one with nothing relevant (0) → mean 0.5
    assert ndcg_at_k([[2.0, 1.0], [2.0, 1.0]], [[1, 0], [0, 0]], k=2) == pytest.approx(0.5)


@pytest.mark.parametrize("ties", [False, True])
def test_ndcg_matches_sklearn_on_random_rankings(ties):
    rng = np.random.default_rng(0)
    for _ in range(50):
        q, d = rng.integers(1, 6), rng.integers(2, 15)
        scores = rng.integers(0, 3, (q, d)).astype(float) if ties else rng.normal(size=(q, d))
        relevance = rng.integers(0, 4, (q, d)).astype(float)
        k = int(rng.integers(1, d + 3))
        assert ndcg_at_k(scores, relevance, k) == pytest.approx(ndcg_score(relevance, scores, k=k))


def test_mrr_by_hand():
    scores = [[3.0, 2.0, 1.0], [1.0, 2.0, 3.0]]
    relevance = [[0, 1, 0], [0, 0, 1]]
    # query 0: first relevant at rank 2 → 1/2; query 1: rank 1 → 1
    assert mrr_at_k(scores, relevance, k=10) == pytest.approx(0.75)
    assert mrr_at_k(scores, relevance, k=1) == pytest.approx(0.5)      # rank 2 is past k = 1


def test_mrr_uses_the_first_relevant_document_whatever_its_grade():
    # doc 0 has grade 1 and is ranked first; the grade-2 doc comes later: reciprocal rank 1
    assert mrr_at_k([[3.0, 2.0, 1.0]], [[1, 0, 2]]) == 1.0


def test_ties_are_pessimistic_for_mrr_and_recall():
    # every document scores the same: the relevant one counts after the two others
    constant = [[1.0, 1.0, 1.0]]
    assert mrr_at_k(constant, [[1, 0, 0]]) == pytest.approx(1 / 3)
    assert retrieval_recall_at_k(constant, [[1, 0, 0]], k=1) == 0.0
    assert retrieval_recall_at_k(constant, [[1, 0, 0]], k=3) == 1.0


def test_recall_is_a_hit_rate_by_hand():
    scores = [[0.1, 0.9, 0.5, 0.0], [0.9, 0.1, 0.5, 0.0]]
    relevance = [[1, 0, 0, 0], [0, 0, 0, 1]]
    # query 0: its document ranks 3rd; query 1: its document ranks last (4th)
    assert retrieval_recall_at_k(scores, relevance, k=1) == 0.0
    assert retrieval_recall_at_k(scores, relevance, k=3) == 0.5
    assert retrieval_recall_at_k(scores, relevance, k=4) == 1.0


def test_tensors_and_arrays_give_the_same_values():
    gen = torch.Generator().manual_seed(0)
    scores = torch.randn(6, 9, generator=gen)
    relevance = (torch.rand(6, 9, generator=gen) > 0.7).float() * 2
    for metric in (ndcg_at_k, mrr_at_k, retrieval_recall_at_k):
        assert metric(scores, relevance, 5) == pytest.approx(metric(scores.numpy(), relevance.numpy().tolist(), 5))
        assert isinstance(metric(scores, relevance, 5), float)


def test_retrieval_metrics_names_one_table_row():
    row = retrieval_metrics([[2.0, 1.0]], [[0, 1]])
    assert list(row) == ["nDCG@10", "MRR@10", "R@1", "R@10"]
    assert row["MRR@10"] == 0.5 and row["R@1"] == 0.0 and row["R@10"] == 1.0


@pytest.mark.parametrize("metric", [ndcg_at_k, mrr_at_k, retrieval_recall_at_k])
def test_bad_input_gets_a_clear_error(metric):
    with pytest.raises(ValueError, match="same shape"):
        metric(torch.zeros(2, 3), torch.zeros(2, 4))
    with pytest.raises(ValueError, match="NaN"):
        metric([[0.5, float("nan")]], [[1, 0]])
    with pytest.raises(ValueError, match="k must be an integer >= 1"):
        metric([[0.5, 0.1]], [[1, 0]], k=0)
    with pytest.raises(ValueError, match="k must be an integer >= 1"):
        metric([[0.5, 0.1]], [[1, 0]], k=2.5)
    with pytest.raises(ValueError, match=r"\(Q, D\)"):
        metric([0.5, 0.1], [1, 0])
    with pytest.raises(ValueError, match=">= 0"):
        metric([[0.5, 0.1]], [[-1, 0]])


def test_minus_infinity_scores_are_allowed_and_rank_last():
    # -inf is how a caller removes a document from the ranking (e.g. the query itself)
    assert mrr_at_k([[-math.inf, 0.2, 0.1]], [[0, 0, 1]]) == pytest.approx(1 / 2)


def test_ndcg_takes_infinite_scores_and_a_single_document():
    # ±inf keep their place in the ranking (scikit-learn itself refuses them); one document is its own ideal order
    want = ndcg_score([[1, 0, 0]], [[-9, 0.2, 9]], k=3)
    assert ndcg_at_k([[-math.inf, 0.2, math.inf]], [[1, 0, 0]], k=3) == pytest.approx(want)
    assert ndcg_at_k([[-math.inf, -math.inf, 0.1]], [[1, 0, 0]], k=3) == pytest.approx(0.5 * (1 / LOG2_3 + 0.5))
    assert ndcg_at_k([[0.3], [0.1]], [[2], [0]], k=5) == 0.5
