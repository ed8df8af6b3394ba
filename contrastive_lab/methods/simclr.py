"""SimCLR (Chen et al. 2020): two augmented views of every image, one NT-Xent loss.

What is special about the method, and nothing else:
- an encoder followed by a projection head (the loss is computed on the head's
  output; the encoder's features are what you keep);
- positives are two random augmentations of the same image, every other view
  in the batch is a negative.
The shared part (views, batches, the fit loop) is in `views.py`.

    >>> model = SimCLR(make_encoder(profile), proj_dim=profile.proj_dim)
    >>> history = train_simclr(model, train_x, profile, temperature=0.2)
    >>> features = embed(model.encoder, test_x)      # backbone features, not the head
"""
from __future__ import annotations

import torch
import torch.nn as nn

from ..augment import AugmentConfig, two_views
from ..losses import DEFAULT_TEMPERATURE, nt_xent
from ..models import ProjectionHead
from ..train import History
from .views import train_on_views


class SimCLR(nn.Module):
    """Encoder + projection head. forward: images (N, C, H, W) → projections (N, proj_dim)."""

    def __init__(self, encoder: nn.Module, proj_dim: int = 64, hidden_dim: int | None = None):
        super().__init__()
        self.encoder = encoder
        self.head = ProjectionHead(encoder.feature_dim, hidden_dim or encoder.feature_dim, proj_dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.encoder(x))


def simclr_loss(model: nn.Module, temperature: float):
    """(view1, view2) → NT-Xent of their projections. Both views go through the
    model in one forward pass, so BatchNorm sees the whole 2N batch."""
    def loss_fn(v1: torch.Tensor, v2: torch.Tensor) -> torch.Tensor:
        z1, z2 = model(torch.cat([v1, v2])).chunk(2)
        return nt_xent(z1, z2, temperature)
    return loss_fn


def simclr_step(model: nn.Module, augment: AugmentConfig, temperature: float,
                generator: torch.Generator | None = None):
    """One SimCLR step on raw images: images (N, C, H, W) → NT-Xent loss over their 2N views."""
    loss_fn = simclr_loss(model, temperature)

    def step(x: torch.Tensor) -> torch.Tensor:
        return loss_fn(*two_views(x, augment, generator))
    return step


def train_simclr(model: SimCLR, train_x: torch.Tensor, profile, *,
                 temperature: float = DEFAULT_TEMPERATURE, desc: str = "SimCLR", **kwargs) -> History:
    """Train a SimCLR model on unlabelled images (N, C, H, W) with NT-Xent.

    Keyword arguments (augment, batch_size, epochs, lr, device, evaluate,
    eval_every, checkpoint, checkpoint_every_s, seed, max_seconds, progress) go to
    `views.train_on_views`; sizes and the recipe default to the profile's (epochs:
    `profile.epochs_of("simclr")`, SimCLR's own count).
    """
    if kwargs.get("epochs") is None:
        kwargs["epochs"] = profile.epochs_of("simclr")
    return train_on_views(simclr_loss(model, temperature), model, train_x, profile, desc=desc, **kwargs)
