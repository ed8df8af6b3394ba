"""The linear probe: a converged logistic regression on frozen features, its L2 chosen on validation.

    linear_probe(backbone, train_x, train_y, test_x, test_y)       embeds the images, then the probe
    linear_probe_features(train_f, train_y, test_f, test_y)        the probe on features (N, D)
    fit_logistic_regression(features, labels, n_classes, l2)       one fit, full-batch L-BFGS
    principal_components(features, n_components)                   the PCA the probe may project on
    frozen_features(encoder, images, ...)                          features, and proof the encoder stayed frozen
"""
from __future__ import annotations

import hashlib
import math
import numbers
from dataclasses import dataclass

import torch
import torch.nn as nn
import torch.nn.functional as F

from ..models import embed
from ..validate import check_embedding_set, check_same_dim


def _fingerprint(module: nn.Module) -> str:
    h = hashlib.sha1()
    for name, tensor in module.state_dict().items():
        h.update(name.encode())
        h.update(tensor.detach().cpu().contiguous().numpy().tobytes())
    return h.hexdigest()


FROZEN_HINT = "it must stay frozen (a module that trains in forward, or BatchNorm in train mode?)"


def frozen_features(encoder: nn.Module, images, *, batch_size: int = 512,
                    changed: str = f"the encoder's weights or buffers changed while it was evaluated; {FROZEN_HINT}"
                    ) -> list:
    """The features `embed(encoder, x, normalize=False)` of each tensor x (N, C, H, W) in `images`
    (a None stays None), and proof that the encoder stayed frozen.

    Its weights and buffers are fingerprinted before and after; a change raises RuntimeError
    with the message `changed`: an evaluation that trains its encoder is fine-tuning, not evaluation.
    """
    before = _fingerprint(encoder)
    features = [None if x is None else embed(encoder, x, batch_size=batch_size, normalize=False) for x in images]
    if _fingerprint(encoder) != before:
        raise RuntimeError(changed)
    return features


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
    feats = frozen_features(backbone, (train_x, test_x, val_x), batch_size=batch_size,
                            changed="the backbone changed during the linear probe; it must stay frozen")
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
    check_embedding_set(train_f, train_y, "train", classes=True)
    check_embedding_set(test_f, test_y, "test", classes=True)
    check_same_dim(train_f, test_f, "train", "test")
    has_val = val_f is not None and len(val_f)
    if has_val:
        if val_y is None:
            raise ValueError("val_f needs its labels: give val_y (val_labels) too")
        check_embedding_set(val_f, val_y, "val", classes=True)
        check_same_dim(train_f, val_f, "train", "val")
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
