"""Ranking metrics for retrieval on a (Q, D) score matrix against graded relevance: nDCG, MRR, Recall@K.

They take scores, not embeddings, so BM25, TF-IDF, a bi-encoder and a hybrid are
measured by the same code (notebooks 09 and 11):

    ndcg_at_k(scores, relevance, k=10)               graded: gain = relevance, discount 1/log2(1 + rank)
    mrr_at_k(scores, relevance, k=10)                1 / rank of the first relevant document
    retrieval_recall_at_k(scores, relevance, k=10)   a relevant document in the top k?
    retrieval_metrics(scores, relevance)             the three in one table row
    label_retrieval_metrics(gallery_emb=…, gallery_labels=…, query_emb=…, query_labels=…)
                                                     the same on embeddings, relevant = same label
"""
from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

from ..validate import check_embedding_set, check_same_dim


def _ranking_inputs(scores, relevance, k) -> tuple:
    """Check and convert the inputs shared by the ranking metrics → (scores, relevance) float64 arrays."""
    def as_array(x, name):
        if isinstance(x, torch.Tensor):
            x = x.detach().float().cpu().numpy()
        try:
            x = np.asarray(x, dtype=np.float64)
        except (TypeError, ValueError):
            raise TypeError(f"{name} must be a tensor or array of numbers, got {type(x).__name__}") from None
        if x.ndim != 2:
            raise ValueError(f"expected {name} of shape (Q, D): one row per query, one column per "
                             f"document; got shape {x.shape}")
        return x

    s, r = as_array(scores, "scores"), as_array(relevance, "relevance")
    if s.shape != r.shape:
        raise ValueError(f"scores and relevance must have the same shape (Q, D), got {s.shape} and {r.shape}")
    if s.shape[0] == 0 or s.shape[1] == 0:
        raise ValueError(f"need at least one query and one document, got shape {s.shape}")
    if np.isnan(s).any():
        raise ValueError(f"scores contain NaN (rows {np.flatnonzero(np.isnan(s).any(1))[:5].tolist()}…); "
                         "check the model output, or give missing documents -inf instead")
    if not np.isfinite(r).all() or (r < 0).any():
        raise ValueError("relevance must be finite and >= 0 (0 = not relevant, larger = more relevant)")
    if isinstance(k, bool) or not isinstance(k, (int, np.integer)) or k < 1:
        raise ValueError(f"k must be an integer >= 1, got {k!r}")
    return s, r


def _first_relevant_rank(s, r):
    """Rank (1-based) of each query's best-scored relevant document, PESSIMISTIC about ties:
    documents with the same score that are not relevant are counted before it. inf when a
    query has no relevant document."""
    relevant = r > 0
    best = np.where(relevant, s, -np.inf).max(1, keepdims=True)            # (Q, 1)
    ahead = (s > best) | ((s == best) & ~relevant)
    rank = ahead.sum(1) + 1.0
    return np.where(relevant.any(1), rank, np.inf)


def ndcg_at_k(scores, relevance, k: int = 10) -> float:
    """Normalised discounted cumulative gain at k, averaged over queries.

        DCG@k  = Σ_{rank=1..k} relevance(doc at rank) / log2(1 + rank)        (linear gain)
        nDCG@k = DCG@k / DCG@k of the ideal order (documents sorted by relevance)

    Computed by scikit-learn's `ndcg_score(relevance, scores, k=k)` (notebooks 09 and 11
    write DCG by hand). Ties in `scores` are averaged: tied documents share the mean gain
    of their group, so the order among them does not matter. A query without any
    relevant document scores 0.

    Args:
        scores: (Q, D) tensor or array, higher = ranked first (cosine, BM25, …); no NaN;
            -inf takes a document out of the ranking (it ranks last).
        relevance: (Q, D), graded, >= 0 (0 = not relevant).
        k: the cut-off, >= 1 (k > D means the whole ranking).
    Returns the mean over the Q queries, a float in [0, 1].
    """
    from sklearn.metrics import ndcg_score          # imported here: scikit-learn adds seconds to every import

    s, r = _ranking_inputs(scores, relevance, k)
    if s.shape[1] == 1:                      # one document is its own ideal order (scikit-learn refuses D = 1)
        return float((r[:, 0] > 0).mean())
    finite = np.isfinite(s)
    if not finite.all():                     # ±inf → just beyond every finite score: the same order, and finite
        s = np.where(finite, s, np.sign(s) * (np.abs(s[finite]).max(initial=0.0) + 1.0))
    return float(ndcg_score(r, s, k=int(k)))


def mrr_at_k(scores, relevance, k: int = 10) -> float:
    """Mean reciprocal rank at k: 1 / rank of each query's first document with relevance > 0,
    0 when none is in the top k; averaged over queries.

    Ties are broken PESSIMISTICALLY: a relevant document tied with irrelevant
    ones ranks after them, so a scorer that gives every document the same score
    earns 0 instead of the luck of the column order. Shapes and errors as `ndcg_at_k`.
    """
    s, r = _ranking_inputs(scores, relevance, k)
    rank = _first_relevant_rank(s, r)
    return float(np.where(rank <= k, 1.0 / rank, 0.0).mean())


def retrieval_recall_at_k(scores, relevance, k: int = 10) -> float:
    """Recall@k on a score matrix: the fraction of queries with at least one document of
    relevance > 0 among their top k (ties pessimistic, as `mrr_at_k`).

    The same meaning as `recall_at_k` on embeddings and labels (a hit rate); with one
    relevant document per query it equals the IR recall |relevant ∩ top k| / |relevant|.
    Shapes and errors as `ndcg_at_k`.
    """
    s, r = _ranking_inputs(scores, relevance, k)
    return float((_first_relevant_rank(s, r) <= k).mean())


def retrieval_metrics(scores, relevance, ks=(1, 10), k_rank: int = 10) -> dict[str, float]:
    """{"nDCG@10": …, "MRR@10": …, "R@1": …, "R@10": …} for one score matrix (one row of a table)."""
    out = {f"nDCG@{k_rank}": ndcg_at_k(scores, relevance, k_rank), f"MRR@{k_rank}": mrr_at_k(scores, relevance, k_rank)}
    out.update({f"R@{k}": retrieval_recall_at_k(scores, relevance, k) for k in ks})
    return out


def label_retrieval_metrics(*, gallery_emb: torch.Tensor, gallery_labels: torch.Tensor, query_emb: torch.Tensor,
                            query_labels: torch.Tensor, ks=(1, 10), k_rank: int = 10,
                            exclude_self: bool = False) -> dict[str, float]:
    """Retrieval by cosine similarity where a gallery item is relevant when it shares the query's label.

    Every argument by name, as `recall_at_k`: gallery_emb (G, D), gallery_labels (G,) the
    reference set; query_emb (Q, D), query_labels (Q,) the items that search it.

    Ranks the gallery (G, D) for every query (Q, D) by cosine, and scores the
    ranking with `retrieval_recall_at_k` (R@k for every k in ks), `mrr_at_k` and
    `ndcg_at_k` (both at k_rank) on the relevance matrix [gallery label == query
    label]. exclude_self: the gallery is the query set (row i the same item), and
    an item may not retrieve itself. Returns {"R@1": …, "R@10": …, "MRR@10": …, "nDCG@10": …}.

    With labels as relevance, R@10 counts a query as answered when ANY of its
    10 neighbours shares its class: with few classes it saturates quickly
    (10 balanced classes: 1 − 0.9^10 ≈ 0.65 for a random ranking). MRR and
    nDCG weigh where the first and the other relevant items sit.
    """
    check_embedding_set(query_emb, query_labels, "query")
    check_embedding_set(gallery_emb, gallery_labels, "gallery")
    check_same_dim(query_emb, gallery_emb, "query", "gallery")
    scores = F.normalize(query_emb.float(), dim=1) @ F.normalize(gallery_emb.float(), dim=1).T   # (Q, G)
    relevance = (query_labels[:, None] == gallery_labels[None, :]).float()
    if exclude_self:
        if query_emb.shape[0] != gallery_emb.shape[0]:
            raise ValueError("exclude_self needs the query and gallery to be the same set (same length)")
        scores.fill_diagonal_(-torch.inf)
        relevance.fill_diagonal_(0.0)
    metrics = retrieval_metrics(scores, relevance, ks=tuple(ks), k_rank=k_rank)
    order = [f"R@{k}" for k in ks] + [f"MRR@{k_rank}", f"nDCG@{k_rank}"]
    return {name: metrics[name] for name in order}
