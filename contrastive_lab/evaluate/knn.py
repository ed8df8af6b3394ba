"""Nearest neighbours under cosine similarity, scored with labels: k-NN accuracy and Recall@K.

    knn_accuracy(train_emb, train_labels, test_emb, test_labels, k)   the k-NN vote of a test point
    recall_at_k(gallery_emb=…, gallery_labels=…, query_emb=…, query_labels=…, k=1)
                                                                      a same-label item in the top K?
    choose_knn_k(train_emb, train_labels, val_emb, val_labels)        k chosen on validation

The reference set (training points, gallery) comes first, the scored set (test points,
queries) second, as everywhere in `evaluate`.
"""
from __future__ import annotations

import math
import numbers

import torch
import torch.nn.functional as F

from ..validate import check_embedding_set, check_same_dim

KNN_K_GRID = (1, 5, 10, 20, 50, 100, 200)


def knn_accuracy(train_emb: torch.Tensor, train_labels: torch.Tensor,
                 test_emb: torch.Tensor, test_labels: torch.Tensor, k: int = 20,
                 *, temperature: float | None = None, chunk: int = 1024) -> float:
    """Fraction of test points whose k nearest training points (cosine) vote their label.

    Args:
        train_emb (N, D), train_labels (N,); test_emb (M, D), test_labels (M,); labels are
           class ids >= 0 of any integer dtype (any values: they are renumbered 0..C−1 first).
        k: neighbours that vote, 1 ≤ k ≤ N. Each neighbour has one vote; a tie
           goes to the tied class with the larger summed similarity.
        temperature: None (default) for one vote per neighbour. A number τ > 0
           weights each neighbour's vote by exp(cos / τ), as the k-NN monitors of
           InstDisc (Wu et al. 2018) and SimCLR do (τ = 0.07 to 0.1 there): the
           nearest neighbours count most, and a small τ tends to 1-NN.
        chunk: test points scored at once (memory, not the result).
    Returns a float in [0, 1].
    """
    check_embedding_set(train_emb, train_labels, "train", classes=True)
    check_embedding_set(test_emb, test_labels, "test", classes=True)
    check_same_dim(train_emb, test_emb, "train", "test")
    if isinstance(k, bool) or not isinstance(k, numbers.Integral) or not 1 <= k <= train_emb.shape[0]:
        raise ValueError(f"k must be between 1 and the number of training points "
                         f"({train_emb.shape[0]}), a whole number; got {k!r}")
    if temperature is not None and not (isinstance(temperature, (int, float)) and 0 < temperature < math.inf):
        raise ValueError(f"temperature must be None (one vote per neighbour) or a number > 0, got {temperature!r}")
    train = F.normalize(train_emb.float(), dim=1)
    test = F.normalize(test_emb.float(), dim=1)
    # classes renumbered 0..C−1 (in the order of their ids), so a label id of 100000 costs nothing
    classes, renumbered = torch.unique(torch.cat([train_labels.long(), test_labels.long()]), return_inverse=True)
    train_y, test_y = renumbered[:len(train_labels)], renumbered[len(train_labels):]
    n_classes = len(classes)
    correct = 0
    for start in range(0, len(test), chunk):
        sim = test[start:start + chunk] @ train.T                 # (m, N)
        top_sim, top_idx = sim.topk(k, dim=1)
        voter = train_y[top_idx]                                  # (m, k): each neighbour's class

        def tally(weights):                                       # (m, k) → (m, C): summed per class
            return torch.zeros(len(voter), n_classes, device=voter.device).scatter_add_(1, voter, weights)

        if temperature is None:
            score = tally(torch.ones_like(top_sim)) + 1e-3 * tally(top_sim) / k
        else:       # exp((cos − cos of the nearest) / τ): the same weights up to a factor, and the nearest
            score = tally(torch.exp((top_sim - top_sim[:, :1]) / temperature))   # neighbour's is 1, never 0
        pred = score.argmax(1)
        correct += (pred == test_y[start:start + chunk]).sum().item()
    return correct / len(test)


def recall_at_k(*, gallery_emb: torch.Tensor, gallery_labels: torch.Tensor,
                query_emb: torch.Tensor, query_labels: torch.Tensor,
                k: int | list[int] = 1, exclude_self: bool = False):
    """Recall@K: fraction of queries with at least one same-label item among their top K.

        >>> recall_at_k(gallery_emb=train_emb, gallery_labels=train_y, query_emb=test_emb, query_labels=test_y, k=1)

    Args (by name only: an order of four same-shaped tensors is too easy to swap):
        gallery_emb (G, D), gallery_labels (G,): the reference set searched;
        query_emb (Q, D), query_labels (Q,): the items that search it.
        k: an int, or a list of ints (then a dict {k: recall} is returned).
        exclude_self: set True when the gallery is the query set itself, so
            that a query does not find itself (row i of both must be the same item).
    """
    check_embedding_set(query_emb, query_labels, "query")
    check_embedding_set(gallery_emb, gallery_labels, "gallery")
    check_same_dim(query_emb, gallery_emb, "query", "gallery")
    single = isinstance(k, numbers.Integral) and not isinstance(k, bool)
    ks = [k] if single else list(k) if isinstance(k, (list, tuple)) else None
    if not ks:
        raise ValueError(f"k must be a whole number or a non-empty list of whole numbers, got {k!r}")
    limit = gallery_emb.shape[0] - int(exclude_self)
    for kk in ks:
        if isinstance(kk, bool) or not isinstance(kk, numbers.Integral) or not 1 <= kk <= limit:
            raise ValueError(f"k must be a whole number between 1 and {limit} (gallery size), got {kk!r}")
    sim = F.normalize(query_emb.float(), dim=1) @ F.normalize(gallery_emb.float(), dim=1).T
    if exclude_self:
        if query_emb.shape[0] != gallery_emb.shape[0]:
            raise ValueError("exclude_self needs the query and gallery to be the same set")
        sim.fill_diagonal_(-torch.inf)
    top = sim.topk(max(ks), dim=1).indices
    hit = gallery_labels[top] == query_labels[:, None]           # (Q, maxK)
    result = {kk: hit[:, :kk].any(1).float().mean().item() for kk in ks}
    return result[ks[0]] if single else result


def choose_knn_k(train_emb: torch.Tensor, train_labels: torch.Tensor, val_emb: torch.Tensor,
                 val_labels: torch.Tensor, ks=KNN_K_GRID, temperature: float | None = None
                 ) -> tuple[int, dict[int, float]]:
    """The k of a cosine k-NN classifier, chosen on validation data.

    Scores `knn_accuracy(train → val, k)` for every k in `ks` that is at most the
    number of training points, and returns (best k, {k: validation accuracy});
    ties go to the smaller k. train_emb (N, D), val_emb (V, D); `temperature` as
    in `knn_accuracy`. The test set is not touched: score it once with the k returned.
    """
    usable = sorted({int(k) for k in ks if 1 <= k <= len(train_emb)})
    if not usable:
        raise ValueError(f"no k in {tuple(ks)} fits {len(train_emb)} training points; add a smaller k")
    scores = {k: knn_accuracy(train_emb, train_labels, val_emb, val_labels, k, temperature=temperature)
              for k in usable}
    best = max(usable, key=lambda k: (scores[k], -k))
    return best, scores
