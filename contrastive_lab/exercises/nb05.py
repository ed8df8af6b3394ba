"""Self-checks for notebook 05 (SimCLR)."""
from __future__ import annotations

import torch
import torch.nn.functional as F

from . import passed, self_check


@self_check
def check_keep_features(fn) -> None:
    """Exercise 1: fn(model, x) → the features a trained SimCLR model is used with.

    model is a SimCLR (model.encoder, model.head); x (N, C, H, W). The answer must be
    the ENCODER's output (not the head's), L2-normalized, computed in eval mode
    without gradient, shape (N, model.encoder.feature_dim) on the CPU.
    """
    from ..methods.simclr import SimCLR
    from ..models import SmallCNN, embed

    if not callable(fn):
        raise AssertionError("pass your function itself, e.g. check_keep_features(keep_features)")
    torch.manual_seed(5)
    model = SimCLR(SmallCNN((4, 8, 8, 16)), proj_dim=6)
    x = torch.rand(12, 3, 16, 16, generator=torch.Generator().manual_seed(5))
    model.train()
    with torch.no_grad():                     # move the BatchNorm running stats away from 0 / 1
        for _ in range(3):
            model(x)
    got = fn(model, x)
    if not isinstance(got, torch.Tensor):
        raise AssertionError(f"return a tensor (N, D), got {type(got).__name__}")
    if not model.training:
        raise AssertionError("put the model back in train mode afterwards (embed does that for you)")
    if got.requires_grad:
        raise AssertionError("compute the features without gradient (torch.no_grad(), or use embed)")
    got = got.detach().cpu().float()
    if got.shape == (12, model.head.out_dim):
        raise AssertionError(f"shape {tuple(got.shape)}: that is the projection head's output. "
                             "The head is a training aid; keep the encoder's features.")
    if got.shape != (12, model.encoder.feature_dim):
        raise AssertionError(f"expected shape (12, {model.encoder.feature_dim}) "
                             f"(N, encoder.feature_dim), got {tuple(got.shape)}")
    want = embed(model.encoder, x)
    if torch.allclose(got, want, atol=1e-5):
        passed("encoder features, L2-normalized, eval mode: what you ship and probe")
        return
    model.train()
    with torch.no_grad():
        train_mode = F.normalize(model.encoder(x), dim=1)
        raw = embed(model.encoder, x, normalize=False)
    if torch.allclose(got, train_mode, atol=1e-5):
        raise AssertionError("these are train-mode features: BatchNorm used the batch's statistics. "
                             "Call model.eval() first (embed does).")
    if torch.allclose(got, raw, atol=1e-5):
        raise AssertionError("right features, but not L2-normalized: divide each row by its length "
                             "(F.normalize(z, dim=1)).")
    raise AssertionError("the features differ from embed(model.encoder, x); "
                         "use the encoder in eval mode and normalize each row")


@self_check
def check_balanced_subset(fn) -> None:
    """Exercise 2: fn(labels (N,), per_class, generator) → indices (per_class · C,) with exactly
    `per_class` distinct examples of every class, drawn at random with the generator."""
    if not callable(fn):
        raise AssertionError("pass your function itself, e.g. check_balanced_subset(balanced_subset)")
    labels = torch.arange(10).repeat_interleave(torch.tensor([30, 12, 25, 40, 9, 18, 22, 31, 16, 27]))
    labels = labels[torch.randperm(len(labels), generator=torch.Generator().manual_seed(0))]
    for per_class in (1, 5, 9):
        idx = fn(labels, per_class, torch.Generator().manual_seed(1))
        if not isinstance(idx, torch.Tensor) or idx.dtype not in (torch.int64, torch.int32):
            raise AssertionError("return a tensor of integer indices into labels")
        idx = idx.flatten().long()
        if len(idx) != 10 * per_class:
            raise AssertionError(f"per_class={per_class}: expected {10 * per_class} indices "
                                 f"(10 classes × {per_class}), got {len(idx)}")
        if idx.unique().numel() != len(idx):
            raise AssertionError("some index appears twice: draw without replacement (torch.randperm)")
        counts = torch.bincount(labels[idx], minlength=10)
        if not (counts == per_class).all():
            raise AssertionError(f"per_class={per_class}: the classes got {counts.tolist()} examples; "
                                 "pick from each class separately")
    a = fn(labels, 5, torch.Generator().manual_seed(1)).flatten().long().sort().values
    b = fn(labels, 5, torch.Generator().manual_seed(2)).flatten().long().sort().values
    if torch.equal(a, b):
        raise AssertionError("two different seeds gave the same subset: draw at random with the generator")
    first = {int(c): (labels == c).nonzero().flatten()[:5].tolist() for c in range(10)}
    if all(sorted(a[labels[a] == c].tolist()) == first[c] for c in range(10)):
        raise AssertionError("you took the first examples of each class; draw them at random")
    passed("the same number of labelled examples for every class, drawn at random")


@self_check
def check_balanced_probe(accuracy, balanced_subset, features, labels, test_features, test_labels) -> None:
    """Exercise 3: accuracy = the linear probe's test accuracy on the SimCLR encoder features of a
    balanced subset of 5 labelled images per class, drawn with
    balanced_subset(labels, 5, torch.Generator().manual_seed(0))."""
    from ..evaluate import linear_probe_features

    idx = balanced_subset(labels, 5, torch.Generator().manual_seed(0)).flatten().long()
    counts = torch.bincount(labels[idx], minlength=int(labels.max()) + 1)
    if not (counts == 5).all():
        raise AssertionError(f"the subset should hold 5 images of every class, it holds {counts.tolist()}")
    want = linear_probe_features(features[idx], labels[idx], test_features, test_labels)
    if abs(float(accuracy) - want) > 1e-6:
        raise AssertionError(f"expected the probe's accuracy {want:.3f} on that subset, got {float(accuracy):.3f}: "
                             "probe features[idx] with labels[idx], score on the test features")
    passed(f"5 labels per class: probe accuracy {want:.3f}. Compare it with the 1 % row of the table: "
           "that row drew 50 images at random, so some digits had fewer examples.")
