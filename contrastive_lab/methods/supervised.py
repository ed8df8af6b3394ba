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
from ..device import get_device, make_generator
from ..images import as_float_images, images_on_device
from ..models import prepare_model
from ..train import History, compile_once
from .views import fit_profile

PROFILE_RECIPE = "profile"


def train_supervised(encoder: nn.Module, train_x: torch.Tensor, train_y: torch.Tensor, profile, *,
                     n_classes: int = 10, augment: AugmentConfig | str | None = PROFILE_RECIPE,
                     batch_size: int | None = None, epochs: int | None = None, lr: float | None = None,
                     device=None, checkpoint=None, checkpoint_every_s: float | None = None, seed: int = 0,
                     progress: bool = True, desc: str = "supervised") -> tuple[nn.Module, History]:
    """Train encoder + a linear classifier with cross-entropy on (train_x (N, C, H, W), train_y (N,)).

    Returns (classifier, history); classifier(x) gives logits (N, n_classes) and
    classifier[0] is the trained encoder. Each batch is augmented per image the
    way the self-supervised runs see their data: the profile's recipe by default,
    another AugmentConfig, or None for no augmentation. checkpoint, checkpoint_every_s:
    as in `train.fit` (saved every epoch, and every so many seconds).
    """
    device = get_device(device)
    classifier = prepare_model(nn.Sequential(encoder, nn.Linear(encoder.feature_dim, n_classes)),
                               device, profile.channels_last)
    compile_once(classifier, profile.compile)
    x, y = images_on_device(train_x, device, profile.store_uint8), train_y.to(device)
    order, views = make_generator(seed, device), make_generator(seed + 1, device)
    recipe = profile.augment if augment == PROFILE_RECIPE else augment
    batch_size = min(batch_size or profile.batch_size, len(x))

    def step(idx):
        batch = as_float_images(x[idx])
        if recipe is not None:
            batch = augment_batch(batch, recipe, views)
        return F.cross_entropy(classifier(batch), y[idx])

    classifier.train()
    history = fit_profile(step, classifier, profile, lambda epoch: minibatches(len(x), batch_size, order),
                          len(x) // batch_size, epochs=epochs, lr=lr, device=device,
                          checkpoint=checkpoint, checkpoint_every_s=checkpoint_every_s,
                          generators={"order": order, "views": views},
                          progress=progress, desc=desc)
    return classifier, history


@torch.no_grad()
def accuracy(classifier: nn.Module, x: torch.Tensor, y: torch.Tensor, batch_size: int = 512) -> float:
    """Top-1 accuracy of a classifier on images x (N, C, H, W) with labels y (N,)."""
    device = next(classifier.parameters()).device
    was_training = classifier.training
    classifier.eval()
    correct = torch.zeros((), dtype=torch.long)
    for i in range(0, len(x), batch_size):
        logits = classifier(as_float_images(x[i:i + batch_size].to(device)))
        correct += (logits.argmax(1).cpu() == y[i:i + batch_size]).sum()
    classifier.train(was_training)
    return correct.item() / len(x)
