"""SupCon (Khosla et al. 2020): positives from labels, in the same two-view loop as SimCLR.

What is special about the method: every other view of the same class in the
batch is a positive, not only the twin view of the same image. The encoder's
output is the embedding (no projection head here: the course compares it with
cross-entropy on the same encoder).

    >>> history = train_supcon(encoder, train_x, train_y, profile, temperature=0.1)
"""
from __future__ import annotations

import torch
import torch.nn as nn

from ..losses import SUPCON_TEMPERATURE, supcon_loss
from ..train import History
from .views import train_on_views


def supcon_views_loss(model: nn.Module, temperature: float):
    """(view1, view2, labels (B,)) → SupCon over the 2B views, the labels repeated for both views."""
    def loss_fn(v1: torch.Tensor, v2: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        return supcon_loss(model(torch.cat([v1, v2])), torch.cat([labels, labels]), temperature)
    return loss_fn


def train_supcon(model: nn.Module, train_x: torch.Tensor, train_y: torch.Tensor, profile, *,
                 temperature: float = SUPCON_TEMPERATURE, desc: str = "SupCon", **kwargs) -> History:
    """Train `model` (images → embeddings) with SupCon on labelled images (N, C, H, W), (N,).

    temperature: τ, by default `losses.SUPCON_TEMPERATURE` = 0.1 (the paper's), the
    same default as `losses.supcon_loss`. Keyword arguments (augment, batch_size,
    epochs, lr, device, evaluate, checkpoint, seed, progress) go to `views.train_on_views`.
    """
    return train_on_views(supcon_views_loss(model, temperature), model, train_x, profile,
                          labels=train_y, desc=desc, **kwargs)
