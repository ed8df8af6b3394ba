"""How good is an embedding? Measured, not asserted.

    knn_accuracy(train_emb, train_labels, test_emb, test_labels, k)   cosine k-NN vote
    recall_at_k(query_emb, query_labels, gallery_emb, gallery_labels, k)
    linear_probe(backbone, train_x, train_y, test_x, test_y)          frozen features + converged logistic regression
    alignment(z1, z2), uniformity(z)                                  Wang & Isola 2020
    raw_pixel_features(x)                                             the baseline that bites
Ranking metrics on a (Q, D) score matrix and graded relevance (notebooks 09, 11), at the end:
    ndcg_at_k, mrr_at_k, retrieval_recall_at_k, retrieval_metrics
The evaluation toolkit (notebook 11): every number of a results table from one call:
    evaluate_encoder(encoder, data, name=...)                         probe and k-NN at 1/10/100 % labels, R@K, MRR, nDCG
    label_subset, choose_knn_k, label_retrieval_metrics, Table
Verification (notebook 10): pairs, ROC, EER, TAR@FAR, gallery/probe split.
"""
from __future__ import annotations

import contextlib
import hashlib
import math
import numbers
from dataclasses import dataclass

import torch
import torch.nn as nn
import torch.nn.functional as F

from .validate import check_class_labels, check_labels, check_matrix, check_same_shape, check_unit_norm


def _check_embedding_set(emb, labels, name):
    check_matrix(emb, f"{name}_emb")
    check_labels(labels, emb.shape[0], f"{name}_labels")


def _check_class_set(emb, labels, name):
    """emb (N, D) and labels (N,) integer class ids >= 0 (any integer dtype)."""
    check_matrix(emb, f"{name}_emb")
    check_class_labels(labels, emb.shape[0], f"{name}_labels")


def _check_same_dim(a, b, name_a, name_b):
    if a.shape[1] != b.shape[1]:
        raise ValueError(f"{name_a} and {name_b} embeddings differ in dimension: {a.shape[1]} vs {b.shape[1]}; "
                         "embed both with the same model")


def knn_accuracy(train_emb: torch.Tensor, train_labels: torch.Tensor,
                 test_emb: torch.Tensor, test_labels: torch.Tensor, k: int = 20,
                 chunk: int = 1024, *, temperature: float | None = None) -> float:
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
    Returns a float in [0, 1].
    """
    _check_class_set(train_emb, train_labels, "train")
    _check_class_set(test_emb, test_labels, "test")
    _check_same_dim(train_emb, test_emb, "train", "test")
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


def recall_at_k(query_emb: torch.Tensor, query_labels: torch.Tensor,
                gallery_emb: torch.Tensor, gallery_labels: torch.Tensor,
                k: int | list[int] = 1, exclude_self: bool = False):
    """Recall@K: fraction of queries with at least one same-label item among their top K.

    Args:
        query_emb (Q, D), query_labels (Q,); gallery_emb (G, D), gallery_labels (G,).
        k: an int, or a list of ints (then a dict {k: recall} is returned).
        exclude_self: set True when the gallery is the query set itself, so
            that a query does not find itself (row i of both must be the same item).
    """
    _check_embedding_set(query_emb, query_labels, "query")
    _check_embedding_set(gallery_emb, gallery_labels, "gallery")
    _check_same_dim(query_emb, gallery_emb, "query", "gallery")
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


def alignment(z1: torch.Tensor, z2: torch.Tensor, alpha: float = 2.0) -> float:
    """Mean ‖z1_i − z2_i‖^alpha over positive pairs (lower = positives closer).

    z1, z2: (N, D), rows L2-normalized. Range [0, 2^alpha]; 0 when every pair coincides.
    """
    check_same_shape(z1, z2, "z1", "z2")
    check_unit_norm(z1, "z1")
    check_unit_norm(z2, "z2")
    return (z1 - z2).norm(dim=1).pow(alpha).mean().item()


def uniformity(z: torch.Tensor, t: float = 2.0) -> float:
    """log mean_{i<j} exp(−t ‖z_i − z_j‖²): how evenly z covers the sphere (lower = more uniform).

    z: (N, D), N ≥ 2, rows L2-normalized. 0 when every point is the same (collapse);
    about −t·2 = −4 for points spread uniformly on a high-dimensional sphere.
    """
    check_matrix(z, "z")
    check_unit_norm(z, "z")
    if z.shape[0] < 2:
        raise ValueError("uniformity needs at least 2 points")
    sq = torch.pdist(z.float(), p=2).pow(2)
    return torch.logsumexp(-t * sq, dim=0).item() - torch.log(torch.tensor(float(sq.numel()))).item()


def raw_pixel_features(x: torch.Tensor) -> torch.Tensor:
    """Images (N, C, H, W) → (N, C·H·W) flattened pixels, centred per image. The baseline."""
    flat = x.flatten(1).float()
    return flat - flat.mean(1, keepdim=True)


def _fingerprint(module: nn.Module) -> str:
    h = hashlib.sha1()
    for name, tensor in module.state_dict().items():
        h.update(name.encode())
        h.update(tensor.detach().cpu().contiguous().numpy().tobytes())
    return h.hexdigest()


PROBE_L2_GRID = (1e-3, 1e-2, 1e-1)


@dataclass(frozen=True)
class ProbeResult:
    """What `linear_probe_features(..., details=True)` measured.

    accuracy: on the test features; l2: the penalty chosen on validation;
    val_accuracy: the validation accuracy of every l2 tried; iterations: of the
    final fit; converged: the final fit's gradient fell below the tolerance.
    """

    accuracy: float
    l2: float
    val_accuracy: dict[float, float]
    iterations: int
    converged: bool


def fit_logistic_regression(features: torch.Tensor, labels: torch.Tensor, n_classes: int, l2: float = 1e-3,
                            max_iter: int = 500, tolerance: float = 1e-4,
                            init: nn.Linear | None = None) -> tuple[nn.Linear, int, bool]:
    """Multinomial logistic regression solved to convergence (full-batch L-BFGS, strong Wolfe).

    Minimizes  mean cross-entropy + l2 / 2 · ‖W‖²  (the bias is not penalized),
    a convex problem with one optimum, so the answer does not depend on a
    learning rate or a number of epochs. Converged: the largest gradient entry
    fell below `tolerance` (checked, and returned). scikit-learn's LogisticRegression(C)
    minimizes the same objective with l2 = 1 / (C · N).
    features (N, D) float, labels (N,); `init`: a classifier to start from (a
    warm start: the optimum is the same, it is only found sooner).
    Returns (classifier, iterations, converged).
    """
    features = features.float()
    clf = nn.Linear(features.shape[1], n_classes)
    with torch.no_grad():
        clf.weight.copy_(init.weight if init is not None else torch.zeros_like(clf.weight))
        clf.bias.copy_(init.bias if init is not None else torch.zeros_like(clf.bias))
    opt = torch.optim.LBFGS(clf.parameters(), lr=1.0, max_iter=max_iter, tolerance_grad=tolerance,
                            tolerance_change=1e-10, history_size=20, line_search_fn="strong_wolfe")

    def objective():
        opt.zero_grad()
        loss = F.cross_entropy(clf(features), labels) + 0.5 * l2 * clf.weight.pow(2).sum()
        loss.backward()
        return loss

    with torch.enable_grad():
        opt.step(objective)
        objective()
    iterations = opt.state[opt._params[0]]["n_iter"]
    grad = torch.cat([p.grad.flatten() for p in clf.parameters()]).abs().max().item()
    return clf, iterations, grad <= tolerance


def linear_probe(backbone: nn.Module, train_x: torch.Tensor, train_y: torch.Tensor,
                 test_x: torch.Tensor, test_y: torch.Tensor, *, val_x: torch.Tensor | None = None,
                 val_y: torch.Tensor | None = None, batch_size: int = 512, details: bool = False):
    """Accuracy of a linear classifier trained on FROZEN backbone features.

    Features are computed once in eval mode without gradient, then
    `linear_probe_features` fits a converged logistic regression, its L2
    penalty chosen on (val_x, val_y) (or on a split of the training set).
    Raises RuntimeError if the backbone's weights or buffers changed — a
    probe that trains its backbone is fine-tuning, not probing.

    train_x (N, C, H, W), train_y (N,); test_x (M, C, H, W), test_y (M,). Returns test accuracy.
    """
    from .models import embed

    before = _fingerprint(backbone)
    feats = [embed(backbone, x, batch_size=batch_size, normalize=False) if x is not None else None
             for x in (train_x, test_x, val_x)]
    if _fingerprint(backbone) != before:
        raise RuntimeError("the backbone changed during the linear probe; it must stay frozen")
    return linear_probe_features(feats[0], train_y, feats[1], test_y, val_f=feats[2], val_y=val_y,
                                 details=details)


def principal_components(features: torch.Tensor, n_components: int) -> tuple[torch.Tensor, torch.Tensor]:
    """The mean (D,) of features (N, D) and their top principal directions (D, q) as columns,
    q = min(n_components, N): no more components than samples. `(f - mean) @ directions`
    projects onto them. Randomized SVD (`torch.pca_lowrank`, 4 power iterations): the same
    subspace as scikit-learn's PCA where the spectrum has a gap (tests/test_evaluate.py)."""
    centre = features.float().mean(0)
    q = min(n_components, features.shape[0])
    _, _, v = torch.pca_lowrank(features.float() - centre, q=q, center=False, niter=4)
    return centre, v


def linear_probe_features(train_f: torch.Tensor, train_y: torch.Tensor, test_f: torch.Tensor,
                          test_y: torch.Tensor, *, val_f: torch.Tensor | None = None,
                          val_y: torch.Tensor | None = None, l2_grid=PROBE_L2_GRID,
                          pca_dim: int | None = None, seed: int = 0, details: bool = False):
    """A linear probe on fixed features (N, D): converged logistic regression, L2 chosen on validation.

    Features are standardized with the training set's mean and std. Each l2 in
    `l2_grid` is fitted on the training features and scored on (val_f, val_y);
    without them, on a random fifth of the training set held out for the choice.
    The best l2 is refitted on all training features and scored once on the test
    features. Returns the test accuracy, or a ProbeResult with `details=True`.

    pca_dim: first project onto the training set's top `pca_dim` principal
    components (at most one per training sample; still a linear map of the
    inputs; it keeps a probe on thousands of raw pixels affordable on a CPU).
    Labels are class ids >= 0 of any integer dtype.
    """
    _check_class_set(train_f, train_y, "train")
    _check_class_set(test_f, test_y, "test")
    _check_same_dim(train_f, test_f, "train", "test")
    has_val = val_f is not None and len(val_f)
    if has_val:
        if val_y is None:
            raise ValueError("val_f needs its labels: give val_y (val_labels) too")
        _check_class_set(val_f, val_y, "val")
        _check_same_dim(train_f, val_f, "train", "val")
        val_y = val_y.long()
    if len(train_f) < 2:
        raise ValueError(f"a linear probe needs at least 2 training samples (their std standardizes the "
                         f"features), got {len(train_f)}")
    grid = tuple(l2_grid) if isinstance(l2_grid, (list, tuple)) else ()
    if not grid or not all(isinstance(v, numbers.Real) and not isinstance(v, bool) and math.isfinite(v) and v >= 0
                           for v in grid):
        raise ValueError(f"l2_grid must be a non-empty sequence of penalties >= 0, got {l2_grid!r}")
    train_y, test_y = train_y.long(), test_y.long()
    n_classes = int(max(train_y.max(), test_y.max())) + 1
    if pca_dim is not None and train_f.shape[1] > pca_dim:
        centre, v = principal_components(train_f, pca_dim)
        project = lambda f: (f.float() - centre) @ v
        train_f, test_f = project(train_f), project(test_f)
        val_f = project(val_f) if val_f is not None and len(val_f) else val_f
    mean, std = train_f.float().mean(0), train_f.float().std(0) + 1e-6
    scale = lambda f: (f.float() - mean) / std
    tr, te = scale(train_f), scale(test_f)
    if has_val:
        fit_x, fit_y, va, va_y = tr, train_y, scale(val_f), val_y
    else:
        order = torch.randperm(len(tr), generator=torch.Generator().manual_seed(seed))
        hold = order[:max(1, len(tr) // 5)]
        rest = order[len(hold):]
        fit_x, fit_y, va, va_y = tr[rest], train_y[rest], tr[hold], train_y[hold]

    def accuracy(clf, x, y):
        with torch.no_grad():
            return (clf(x).argmax(1) == y).float().mean().item()

    scores, fitted, warm = {}, {}, None
    for l2 in sorted(grid, reverse=True):       # strongest penalty first, each warm-starting the next
        warm = fitted[l2] = fit_logistic_regression(fit_x, fit_y, n_classes, l2, init=warm)[0]
        scores[l2] = accuracy(warm, va, va_y)
    best = max(scores, key=lambda l2: (scores[l2], l2))          # ties: the stronger penalty
    clf, iterations, converged = fit_logistic_regression(tr, train_y, n_classes, best, init=fitted[best])
    result = ProbeResult(accuracy(clf, te, test_y), best, scores, iterations, converged)
    return result if details else result.accuracy


def knn_monitor(encoder: nn.Module, train_x: torch.Tensor, train_y: torch.Tensor,
                test_x: torch.Tensor, test_y: torch.Tensor, k: int = 20, name: str = "knn"):
    """A () → {name: k-NN accuracy} function for `fit(evaluate=...)`: embeds both sets
    with the encoder as it is at that moment and scores the test set."""
    def evaluate() -> dict[str, float]:
        from .models import embed
        return {name: knn_accuracy(embed(encoder, train_x), train_y, embed(encoder, test_x), test_y, k)}
    return evaluate


# ====================================================================== verification (notebook 10)
# "Are these two the same identity?": every pair gets a score (the cosine of its
# embeddings) and is accepted when score ≥ threshold. The pairs come from identities
# never seen in training. Two error rates trade against each other:
#     FAR (false accept rate) = accepted impostor pairs / impostor pairs
#     FRR (false reject rate) = rejected genuine pairs / genuine pairs
#     TAR (true accept rate)  = 1 − FRR
# ROC curves come from scikit-learn's `roc_curve` (fpr = FAR, tpr = TAR).
#
#     verification_pairs(labels)                    genuine and impostor index pairs
#     pair_scores(emb, i, j)                        cosine of each pair
#     roc(scores, same)                             (far, tar, thresholds), scikit-learn
#     equal_error_rate(scores, same)                (eer, threshold): where FAR = FRR
#     tar_at_far(scores, same, far)                 the best TAR with FAR ≤ far
#     threshold_at_far(scores, same, far)           the threshold that gives it
#     far_frr(scores, same, threshold)              both error rates at one threshold
#     confusion_counts(scores, same, threshold)     true/false accepts and rejects
#     verification_report(scores, same, fars)       AUC, EER and TAR@FAR in one dict
#     gallery_probe_split(labels, n_gallery)        1:N identification: who enrols, who asks
#     first_per_identity(labels, n)                 the first n items of every identity

def _check_scores(scores: torch.Tensor, same: torch.Tensor) -> tuple:
    """scores (P,) float and same (P,) bool → numpy arrays; both kinds of pair must be present."""
    import numpy as np

    if not isinstance(scores, torch.Tensor) or scores.ndim != 1:
        shape = tuple(scores.shape) if isinstance(scores, torch.Tensor) else type(scores).__name__
        raise ValueError(f"expected scores of shape (P,), one per pair, got {shape}")
    check_labels(same, scores.shape[0], "same")
    s = scores.detach().float().cpu().numpy()
    y = same.detach().cpu().numpy()
    if not np.isin(y, (0, 1)).all():
        raise ValueError("same must hold only True/False or 0/1 (is pair p genuine?), got other values such as "
                         f"{y[~np.isin(y, (0, 1))][0]!r}")
    y = y.astype(bool)
    if not np.isfinite(s).all():
        raise ValueError("scores contain NaN or Inf; check the embeddings")
    if y.all() or not y.any():
        raise ValueError(f"need both genuine (same=True) and impostor (same=False) pairs, got "
                         f"{int(y.sum())} genuine and {int((~y).sum())} impostor")
    return s, y


def _check_far(far: float) -> None:
    if not 0 < far < 1:
        raise ValueError(f"far (false accept rate) must be in (0, 1), got {far}")


def verification_pairs(labels: torch.Tensor, max_impostors: int | None = None,
                       generator: torch.Generator | None = None):
    """Every genuine pair and (a sample of) the impostor pairs among `labels`.

    labels (N,) identity of each item. Returns (i, j, same): (P,) index tensors with
    i < j and a (P,) bool tensor, genuine pairs first. With max_impostors, that many
    impostor pairs are drawn at random (without replacement) from all of them.
    """
    if not isinstance(labels, torch.Tensor) or labels.ndim != 1 or len(labels) < 2:
        raise ValueError("expected labels of shape (N,) with N ≥ 2")
    i, j = torch.triu_indices(len(labels), len(labels), offset=1)
    same = labels[i] == labels[j]
    if not same.any() or same.all():
        raise ValueError("labels must give both genuine pairs (an identity seen twice) and impostor pairs")
    gi, gj = i[same], j[same]
    ii, ij = i[~same], j[~same]
    if max_impostors is not None and max_impostors < len(ii):
        pick = torch.randperm(len(ii), generator=generator)[:max_impostors].sort().values
        ii, ij = ii[pick], ij[pick]
    flags = torch.cat([torch.ones(len(gi), dtype=torch.bool), torch.zeros(len(ii), dtype=torch.bool)])
    return torch.cat([gi, ii]), torch.cat([gj, ij]), flags


def pair_scores(emb: torch.Tensor, i: torch.Tensor, j: torch.Tensor) -> torch.Tensor:
    """Cosine similarity of each pair (emb[i_p], emb[j_p]): emb (N, D), i, j (P,) → (P,)."""
    check_matrix(emb, "emb")
    z = F.normalize(emb.float(), dim=1)
    if len(z) ** 2 <= 4 * len(i) and len(z) <= 16_384:    # many pairs: one matrix product is faster
        return (z @ z.T)[i, j]
    return (z[i] * z[j]).sum(1)


def roc(scores: torch.Tensor, same: torch.Tensor, drop_intermediate: bool = False):
    """ROC of a verifier: (far, tar, thresholds) as numpy arrays, thresholds decreasing.

    At thresholds[k], pairs with score ≥ thresholds[k] are accepted and give FAR far[k]
    and TAR tar[k]. scikit-learn's `roc_curve`, with every threshold kept unless
    drop_intermediate=True (fewer points, the same curve: enough for a plot).
    """
    from sklearn.metrics import roc_curve

    s, y = _check_scores(scores, same)
    far, tar, thresholds = roc_curve(y, s, drop_intermediate=drop_intermediate)
    return far, tar, thresholds


def auc(scores: torch.Tensor, same: torch.Tensor) -> float:
    """Area under the ROC curve: the chance that a random genuine pair outscores a random impostor."""
    from sklearn.metrics import roc_auc_score

    s, y = _check_scores(scores, same)
    return float(roc_auc_score(y, s))


def equal_error_rate(scores: torch.Tensor, same: torch.Tensor) -> tuple[float, float]:
    """The equal error rate (EER): the error where FAR = FRR, and the threshold there.

    scores (P,): higher = more alike; same (P,) bool: whether pair p is genuine.
    Walks the ROC to the first threshold where FRR ≤ FAR and interpolates linearly
    between it and the step before, where FRR > FAR. Returns (eer, threshold),
    eer in [0, 1]; the threshold is the one at that first step.
    """
    return _eer_from_roc(*roc(scores, same))


def _eer_from_roc(far, tar, thresholds) -> tuple[float, float]:
    frr = 1 - tar
    k = int((frr <= far).argmax())                       # first step where the curves have crossed
    if k == 0:
        return float(far[0]), float(thresholds[0])
    # on the segment from step k−1 to k, FRR − FAR goes from > 0 to ≤ 0: find its zero
    d0, d1 = frr[k - 1] - far[k - 1], frr[k] - far[k]
    w = d0 / (d0 - d1)
    eer = far[k - 1] + w * (far[k] - far[k - 1])
    return float(eer), float(thresholds[k])


def threshold_at_far(scores: torch.Tensor, same: torch.Tensor, far: float) -> float:
    """The lowest threshold whose FAR on these pairs is at most `far`.

    Lowest, because among all thresholds that keep the false accepts within budget
    it accepts the most genuine pairs. Calibrate it on validation identities; it
    holds on new identities only as well as their impostor scores resemble these.
    """
    _check_far(far)
    fars, _, thresholds = roc(scores, same)
    ok = fars <= far
    return float(thresholds[ok][-1])


def tar_at_far(scores: torch.Tensor, same: torch.Tensor, far: float) -> float:
    """True accept rate at the lowest threshold with FAR ≤ far (TAR@FAR), on these pairs.

    With P impostor pairs, FAR can only move in steps of 1/P: TAR@FAR = 1e-3 needs
    thousands of impostor pairs to mean anything.
    """
    _check_far(far)
    fars, tars, _ = roc(scores, same)
    return float(tars[fars <= far].max())


def far_frr(scores: torch.Tensor, same: torch.Tensor, threshold: float) -> tuple[float, float]:
    """(FAR, FRR) when pairs with score ≥ threshold are accepted."""
    s, y = _check_scores(scores, same)
    accept = s >= threshold
    return float(accept[~y].mean()), float((~accept[y]).mean())


def confusion_counts(scores: torch.Tensor, same: torch.Tensor, threshold: float) -> dict[str, int]:
    """Counts of the four outcomes at a threshold: true/false accepts, true/false rejects."""
    s, y = _check_scores(scores, same)
    accept = s >= threshold
    return {"true accepts": int((accept & y).sum()), "false rejects": int((~accept & y).sum()),
            "false accepts": int((accept & ~y).sum()), "true rejects": int((~accept & ~y).sum())}


def verification_report(scores: torch.Tensor, same: torch.Tensor,
                        fars: tuple[float, ...] = (1e-2, 1e-3)) -> dict[str, float]:
    """{"AUC", "EER", "TAR@FAR=…" for each far} of one set of scored pairs (one ROC for all)."""
    from sklearn.metrics import auc as area

    for far in fars:
        _check_far(far)
    curve = roc(scores, same)
    report = {"AUC": float(area(curve[0], curve[1])), "EER": _eer_from_roc(*curve)[0]}
    for far in fars:
        report[f"TAR@FAR={far:g}"] = float(curve[1][curve[0] <= far].max())
    return report


def first_per_identity(labels: torch.Tensor, n: int) -> torch.Tensor:
    """Indices of the first n items of every identity (in order of appearance), ascending.

    labels (N,) → (M,) indices; an identity with fewer than n items gives all of them.
    """
    if not isinstance(labels, torch.Tensor) or labels.ndim != 1:
        raise ValueError("expected labels of shape (N,)")
    if n < 1:
        raise ValueError(f"n must be ≥ 1, got {n}")
    order = torch.argsort(labels, stable=True)
    sorted_labels = labels[order]
    rank = torch.arange(len(labels)) - torch.searchsorted(sorted_labels, sorted_labels)   # 0, 1, 2 … per identity
    keep = torch.empty(len(labels), dtype=torch.bool)
    keep[order] = rank < n
    return keep.nonzero().flatten()


def gallery_probe_split(labels: torch.Tensor, n_gallery: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Split items into an enrolled gallery and probes for 1:N identification.

    The first n_gallery items of each identity (in order of appearance) enrol in the
    gallery; the rest are probes. Returns (gallery_index, probe_index). Score with
    `recall_at_k(emb[probe], labels[probe], emb[gallery], labels[gallery], 1)`:
    the share of probes whose nearest gallery item is their own identity.
    """
    gallery = first_per_identity(labels, n_gallery)
    counts = torch.unique(labels, return_counts=True)[1]
    if int(counts.min()) <= n_gallery:
        raise ValueError(f"every identity needs more than n_gallery={n_gallery} items so it has a probe; "
                         f"the smallest has {int(counts.min())}")
    in_gallery = torch.zeros(len(labels), dtype=torch.bool)
    in_gallery[gallery] = True
    return gallery, (~in_gallery).nonzero().flatten()


# ---------------------------------------------------------------------------------------------
# Ranking metrics for retrieval (notebooks 09 and 11): a (Q, D) score matrix against a (Q, D)
# graded relevance matrix. Unlike recall_at_k above, they take scores, not embeddings, so BM25,
# TF-IDF, a bi-encoder and a hybrid are measured by the same code.
#
#     ndcg_at_k(scores, relevance, k=10)               graded: gain = relevance, discount 1/log2(1 + rank)
#     mrr_at_k(scores, relevance, k=10)                1 / rank of the first relevant document
#     retrieval_recall_at_k(scores, relevance, k=10)   a relevant document in the top k?
# ---------------------------------------------------------------------------------------------
def _ranking_inputs(scores, relevance, k) -> tuple:
    """Check and convert the inputs shared by the ranking metrics → (scores, relevance) float64 arrays."""
    import numpy as np

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
    import numpy as np

    relevant = r > 0
    best = np.where(relevant, s, -np.inf).max(1, keepdims=True)            # (Q, 1)
    ahead = (s > best) | ((s == best) & ~relevant)
    rank = ahead.sum(1) + 1.0
    return np.where(relevant.any(1), rank, np.inf)


def ndcg_at_k(scores, relevance, k: int = 10) -> float:
    """Normalised discounted cumulative gain at k, averaged over queries.

        DCG@k  = Σ_{rank=1..k} relevance(doc at rank) / log2(1 + rank)        (linear gain)
        nDCG@k = DCG@k / DCG@k of the ideal order (documents sorted by relevance)

    as scikit-learn's `ndcg_score(relevance, scores, k=k)`. Ties in `scores` are
    averaged the same way: tied documents share the mean gain of their group,
    so the order among them does not matter. A query without any relevant
    document scores 0 (as in scikit-learn).

    Args:
        scores: (Q, D) tensor or array, higher = ranked first (cosine, BM25, …); no NaN.
        relevance: (Q, D), graded, >= 0 (0 = not relevant).
        k: the cut-off, >= 1 (k > D means the whole ranking).
    Returns the mean over the Q queries, a float in [0, 1].
    """
    import numpy as np

    s, r = _ranking_inputs(scores, relevance, k)
    n_docs = s.shape[1]
    k = min(int(k), n_docs)
    discount = np.zeros(n_docs)
    discount[:k] = 1.0 / np.log2(np.arange(2, k + 2))
    cumulative = np.concatenate([[0.0], np.cumsum(discount)])             # Σ discount over ranks < i
    ideal = (np.sort(r, axis=1)[:, ::-1] * discount).sum(1)
    values = np.zeros(s.shape[0])
    for i in range(s.shape[0]):
        if ideal[i] == 0:
            continue
        # groups of tied scores, best first; each group spreads its mean gain over its ranks
        unique, inverse = np.unique(-s[i], return_inverse=True)
        counts = np.bincount(inverse)
        gains = np.bincount(inverse, weights=r[i]) / counts
        ends = np.cumsum(counts)
        spans = cumulative[ends] - cumulative[ends - counts]
        values[i] = (gains * spans).sum() / ideal[i]
    return float(values.mean())


def mrr_at_k(scores, relevance, k: int = 10) -> float:
    """Mean reciprocal rank at k: 1 / rank of each query's first document with relevance > 0,
    0 when none is in the top k; averaged over queries.

    Ties are broken PESSIMISTICALLY: a relevant document tied with irrelevant
    ones ranks after them, so a scorer that gives every document the same score
    earns 0 instead of the luck of the column order. Shapes and errors as `ndcg_at_k`.
    """
    import numpy as np

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


# ---------------------------------------------------------------------------------------------
# The evaluation toolkit (notebook 11): every number of the course's tables from one call.
#
#     label_subset(labels, fraction, seed)                  class-balanced labelled subset (indices)
#     choose_knn_k(train_emb, train_y, val_emb, val_y)      k of the k-NN vote, chosen on validation
#     label_retrieval_metrics(query_emb, query_y, gallery_emb, gallery_y)
#                                                           R@K, MRR@10, nDCG@10 with "same label" = relevant
#     Table                                                 rows of numbers that print as a table
#     evaluate_encoder(encoder, data, name=...)             all of the above, one row per encoder
# ---------------------------------------------------------------------------------------------
KNN_K_GRID = (1, 5, 10, 20, 50, 100, 200)
LABEL_FRACTIONS = (0.01, 0.1, 1.0)


def label_subset(labels: torch.Tensor, fraction: float, seed: int = 0, balanced: bool = True) -> torch.Tensor:
    """Indices (sorted, int64) of a labelled subset holding `fraction` of `labels` (N,).

    balanced=True (the default): the same number of examples from every class,
    per_class = max(1, round(fraction · N / C)), drawn at random without
    repeats — 1 % of 5,000 digits is 5 of each digit, not a random 50 that may
    hold 2 sevens and 10 sixes. balanced=False: round(fraction · N) examples
    drawn at random, whatever their classes. fraction = 1 returns every index.
    Raises ValueError when a class has fewer examples than per_class.
    """
    if not isinstance(labels, torch.Tensor) or labels.ndim != 1 or len(labels) == 0:
        shape = tuple(labels.shape) if isinstance(labels, torch.Tensor) else type(labels).__name__
        raise ValueError(f"expected labels of shape (N,) with N >= 1, got {shape}")
    if isinstance(fraction, bool) or not isinstance(fraction, (int, float)) or not 0 < fraction <= 1:
        raise ValueError(f"fraction must be in (0, 1] (0.01 for 1 % of the labels), got {fraction!r}")
    n = len(labels)
    if fraction == 1:
        return torch.arange(n)
    g = torch.Generator().manual_seed(seed)
    if not balanced:
        return torch.randperm(n, generator=g)[:max(1, round(fraction * n))].sort().values
    classes, counts = labels.unique(return_counts=True)
    per_class = max(1, round(fraction * n / len(classes)))
    if (counts < per_class).any():
        short = classes[counts < per_class][0].item()
        raise ValueError(f"class {short} has only {counts[classes == short].item()} examples, fewer than the "
                         f"{per_class} per class that fraction={fraction} asks for; use a smaller fraction "
                         "or balanced=False")
    picks = []
    for c in classes:
        members = torch.where(labels == c)[0]
        picks.append(members[torch.randperm(len(members), generator=g)[:per_class]])
    return torch.cat(picks).sort().values


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


def label_retrieval_metrics(query_emb: torch.Tensor, query_labels: torch.Tensor, gallery_emb: torch.Tensor,
                            gallery_labels: torch.Tensor, ks=(1, 10), k_rank: int = 10,
                            exclude_self: bool = False) -> dict[str, float]:
    """Retrieval by cosine similarity where a gallery item is relevant when it shares the query's label.

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
    _check_embedding_set(query_emb, query_labels, "query")
    _check_embedding_set(gallery_emb, gallery_labels, "gallery")
    if query_emb.shape[1] != gallery_emb.shape[1]:
        raise ValueError(f"query and gallery embeddings differ in dimension: "
                         f"{query_emb.shape[1]} vs {gallery_emb.shape[1]}")
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


class Table:
    """Rows of results (dicts with the same keys) that print as an aligned text table.

        >>> table = Table([{"encoder": "SimCLR", "probe": 0.671}, {"encoder": "raw pixels", "probe": 0.118}])
        >>> print(table)
        encoder     probe
        SimCLR      0.671
        raw pixels  0.118
        >>> table.row("SimCLR")["probe"], table.column("probe")
        (0.671, [0.671, 0.118])

    Floats print with `digits` decimals; rows are looked up by their first column.
    `table + other` stacks the rows of two tables. `details` keeps what a row was
    computed with (chosen k, chosen L2 …), keyed by the row's first column.
    """

    def __init__(self, rows: list[dict], digits: int = 3, details: dict | None = None):
        rows = [dict(r) for r in rows]
        if not rows:
            raise ValueError("a Table needs at least one row")
        self.columns = list(rows[0])
        for r in rows[1:]:
            if list(r) != self.columns:
                raise ValueError(f"every row must have the columns {self.columns}, got {list(r)}")
        self.rows, self.digits, self.details = rows, digits, dict(details or {})

    def _cell(self, value) -> str:
        return f"{value:.{self.digits}f}" if isinstance(value, float) else str(value)

    def __str__(self) -> str:
        cells = [self.columns] + [[self._cell(r[c]) for c in self.columns] for r in self.rows]
        widths = [max(len(row[i]) for row in cells) for i in range(len(self.columns))]
        lines = []
        for row in cells:
            first = row[0].ljust(widths[0])              # names left, numbers right
            lines.append("  ".join([first] + [v.rjust(w) for v, w in zip(row[1:], widths[1:])]).rstrip())
        return "\n".join(lines)

    __repr__ = __str__

    def __len__(self) -> int:
        return len(self.rows)

    def __add__(self, other: "Table") -> "Table":
        return Table(self.rows + other.rows, self.digits, {**self.details, **other.details})

    def row(self, key) -> dict:
        """The row whose first column equals `key`."""
        for r in self.rows:
            if r[self.columns[0]] == key:
                return r
        raise KeyError(f"no row {key!r}; rows: {[r[self.columns[0]] for r in self.rows]}")

    def column(self, name: str) -> list:
        """Every row's value in column `name`."""
        if name not in self.columns:
            raise KeyError(f"no column {name!r}; columns: {self.columns}")
        return [r[name] for r in self.rows]


@contextlib.contextmanager
def single_thread():
    """Run torch on one CPU thread inside the block (and restore the count after).

    The probe's L-BFGS and the k-NN votes are thousands of small tensor ops; split
    over two threads each op waits for the other thread, and on a busy 2-core
    machine that made a probe 10-15× slower than on one thread (same result).
    """
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(before)


def _fraction_name(fraction: float) -> str:
    return f"{100 * fraction:g}%"


def evaluate_encoder(encoder, data, *, name: str, fractions=LABEL_FRACTIONS, knn_ks=KNN_K_GRID,
                     temperature: float | None = None, ks=(1, 10), k_rank: int = 10,
                     pca_dim: int | None = None, seed: int = 0, batch_size: int = 512) -> Table:
    """Every metric of the course for one encoder, as a one-row Table.

    Args:
        encoder: an nn.Module (its features are `embed(encoder, x, normalize=False)`;
            its weights and buffers are fingerprinted before and after, and a change
            raises RuntimeError: evaluation must not train it), or any function
            images (N, C, H, W) → features (N, D), such as `raw_pixel_features`.
        data: an ImageDataset (train_x/train_y, val_x/val_y, test_x/test_y); the
            validation split must not be empty.
        name: the row's name (first column).
        fractions: label fractions; for each, `label_subset` draws a class-balanced
            subset of the training labels AND of the validation labels (a learner
            with 1 % of the labels has 1 % of the validation labels too):
            - "probe f": `linear_probe_features` on that subset, its L2 chosen on the
              validation subset, scored on the whole test set;
            - "k-NN f": cosine k-NN with the subset as memory, k from `knn_ks` chosen on
              the validation subset (`choose_knn_k`), scored on the test set;
        ks, k_rank: retrieval of test queries in the training gallery, relevant =
            same label (`label_retrieval_metrics`): "R@k" for k in ks, "MRR@k_rank",
            "nDCG@k_rank". It uses no labels to rank, so it has no fraction.
        temperature: the k-NN vote (None: one vote per neighbour; see `knn_accuracy`).
        pca_dim: passed to the probe (for thousands of raw pixels); capped at the
            number of labelled examples of each fraction.

    Returns Table([{ "encoder": name, "probe 1%": …, …, "k-NN 1%": …, …, "R@1": …, … }]),
    with `table.details[name]` = {"probe_l2": {f: l2}, "knn_k": {f: k}, "dim": D}.
    """
    if not callable(encoder):
        raise TypeError(f"encoder must be an nn.Module or a function images → features, got {type(encoder).__name__}")
    for attr in ("train_x", "train_y", "val_x", "val_y", "test_x", "test_y"):
        if getattr(data, attr, None) is None:
            raise TypeError(f"data must be an ImageDataset (load_image_dataset(..., n_val=...)); it has no {attr}")
    if len(data.val_x) == 0:
        raise ValueError("data has no validation split; load it with n_val > 0 "
                         "(load_image_dataset(..., n_val=profile.n_val)) so k and L2 are chosen on it")
    if isinstance(encoder, nn.Module):
        from .models import embed

        before = _fingerprint(encoder)
        features = [embed(encoder, x, batch_size=batch_size, normalize=False)
                    for x in (data.train_x, data.val_x, data.test_x)]
        if _fingerprint(encoder) != before:
            raise RuntimeError(f"{name}: the encoder's weights or buffers changed while it was evaluated; "
                               "it must stay frozen (a module that trains in forward, or BatchNorm in train mode?)")
    else:
        features = [encoder(x) for x in (data.train_x, data.val_x, data.test_x)]
    train_f, val_f, test_f = (f.detach().float().cpu() for f in features)

    with single_thread():
        return _evaluate_features(train_f, val_f, test_f, data, name, fractions, knn_ks, temperature, ks,
                                  k_rank, pca_dim, seed)


def _evaluate_features(train_f, val_f, test_f, data, name, fractions, knn_ks, temperature, ks, k_rank,
                       pca_dim, seed) -> Table:
    row: dict = {"encoder": name}
    details = {"probe_l2": {}, "knn_k": {}, "dim": train_f.shape[1]}
    subsets = {f: (label_subset(data.train_y, f, seed), label_subset(data.val_y, f, seed)) for f in fractions}
    for f, (tr, va) in subsets.items():
        dim = None if pca_dim is None else min(pca_dim, len(tr))        # PCA keeps at most N components
        result = linear_probe_features(train_f[tr], data.train_y[tr], test_f, data.test_y, val_f=val_f[va],
                                       val_y=data.val_y[va], pca_dim=dim, seed=seed, details=True)
        row[f"probe {_fraction_name(f)}"] = result.accuracy
        details["probe_l2"][f] = result.l2
    for f, (tr, va) in subsets.items():
        k, _ = choose_knn_k(train_f[tr], data.train_y[tr], val_f[va], data.val_y[va], knn_ks, temperature)
        row[f"k-NN {_fraction_name(f)}"] = knn_accuracy(train_f[tr], data.train_y[tr], test_f, data.test_y, k,
                                                        temperature=temperature)
        details["knn_k"][f] = k
    row.update(label_retrieval_metrics(test_f, data.test_y, train_f, data.train_y, ks=ks, k_rank=k_rank))
    return Table([row], details={name: details})


def retrieval_monitor(encoder: nn.Module, x: torch.Tensor, y: torch.Tensor, ks=(1, 10), name: str = "val"):
    """A () → {"val R@1": …, "val R@10": …} function for `fit(evaluate=...)`: embeds the held-out
    images x (N, C, H, W) with the encoder as it is at that moment, and scores label retrieval
    among them (each image queries the others, `exclude_self`)."""
    def evaluate() -> dict[str, float]:
        from .models import embed
        z = embed(encoder, x)
        recall = recall_at_k(z, y, z, y, list(ks), exclude_self=True)
        return {f"{name} R@{k}": recall[k] for k in ks}
    return evaluate
