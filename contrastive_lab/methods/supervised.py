"""The supervised baseline: the same encoder trained with labels and cross-entropy.

Self-supervised results are compared against it (the ceiling a probe can be
measured against, and the label-efficiency curve of notebook 05).
"""
from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F

from ..augment import AugmentConfig, augment as augment_batch
from ..data.pairs import minibatches
from ..models import prepare_model
from ..train import History, fit


def train_supervised(encoder: nn.Module, train_x: torch.Tensor, train_y: torch.Tensor, profile, *,
                     n_classes: int = 10, augment: AugmentConfig | None = AugmentConfig(),
                     batch_size: int | None = None, epochs: int | None = None, lr: float | None = None,
                     device=None, seed: int = 0, progress: bool = True,
                     desc: str = "supervised") -> tuple[nn.Module, History]:
    """Train encoder + a linear classifier with cross-entropy on (train_x (N, C, H, W), train_y (N,)).

    Returns (classifier, history); classifier(x) gives logits (N, n_classes) and
    classifier[0] is the trained encoder. With `augment`, each batch is augmented
    (per image) the same way the self-supervised runs see their data.
    """
    device = torch.device(device or ("cuda" if torch.cuda.is_available() else "cpu"))
    classifier = prepare_model(nn.Sequential(encoder, nn.Linear(encoder.feature_dim, n_classes)),
                               device, profile.channels_last)
    x, y = train_x.to(device), train_y.to(device)
    order = torch.Generator().manual_seed(seed)
    views = torch.Generator(device=device).manual_seed(seed + 1)
    batch_size = min(batch_size or profile.batch_size, len(x))

    def step(idx):
        idx = idx.to(device)
        batch = x[idx] if augment is None else augment_batch(x[idx], augment, views)
        if profile.channels_last:
            batch = batch.contiguous(memory_format=torch.channels_last)
        return F.cross_entropy(classifier(batch), y[idx])

    classifier.train()
    history = fit(step, classifier.parameters(), lambda epoch: minibatches(len(x), batch_size, order),
                  epochs or profile.epochs, lr=lr or profile.lr, device=device, amp=profile.amp,
                  progress=progress, desc=desc)
    return classifier, history


@torch.no_grad()
def accuracy(classifier: nn.Module, x: torch.Tensor, y: torch.Tensor, batch_size: int = 512) -> float:
    """Top-1 accuracy of a classifier on images x (N, C, H, W) with labels y (N,)."""
    device = next(classifier.parameters()).device
    was_training = classifier.training
    classifier.eval()
    correct = sum((classifier(x[i:i + batch_size].to(device)).argmax(1).cpu() == y[i:i + batch_size]).sum().item()
                  for i in range(0, len(x), batch_size))
    classifier.train(was_training)
    return correct / len(x)
