"""SimCLR (Chen et al. 2020): two augmented views of every image, one NT-Xent loss.

What is special about the method, and nothing else:
- an encoder followed by a projection head (the loss is computed on the head's
  output; the encoder's features are what you keep);
- positives are two random augmentations of the same image, every other view
  in the batch is a negative;
- the augmentations run batched on the device, with per-image parameters.

    >>> model = SimCLR(make_encoder(profile), proj_dim=profile.proj_dim)
    >>> history = train_simclr(model, train_x, profile, temperature=0.2)
    >>> features = embed(model.encoder, test_x)      # backbone features, not the head
"""
from __future__ import annotations

import torch
import torch.nn as nn

from ..augment import AugmentConfig, two_views
from ..data.pairs import minibatches
from ..losses import nt_xent
from ..models import ProjectionHead, prepare_model
from ..train import History, fit


class SimCLR(nn.Module):
    """Encoder + projection head. forward: images (N, C, H, W) → projections (N, proj_dim)."""

    def __init__(self, encoder: nn.Module, proj_dim: int = 64, hidden_dim: int | None = None):
        super().__init__()
        self.encoder = encoder
        self.head = ProjectionHead(encoder.feature_dim, hidden_dim or encoder.feature_dim, proj_dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.encoder(x))


def simclr_step(model: nn.Module, augment: AugmentConfig, temperature: float,
                generator: torch.Generator | None = None, channels_last: bool = False):
    """The SimCLR training step: images (N, C, H, W) → NT-Xent loss over their 2N views.

    Both views go through the model in one forward pass, so BatchNorm sees
    the whole 2N batch.
    """
    def step(x: torch.Tensor) -> torch.Tensor:
        v1, v2 = two_views(x, augment, generator)
        views = torch.cat([v1, v2])
        if channels_last:
            views = views.contiguous(memory_format=torch.channels_last)
        z1, z2 = model(views).chunk(2)
        return nt_xent(z1, z2, temperature)
    return step


def train_simclr(model: nn.Module, train_x: torch.Tensor, profile, *,
                 augment: AugmentConfig = AugmentConfig(), temperature: float = 0.2,
                 batch_size: int | None = None, epochs: int | None = None, lr: float | None = None,
                 device=None, evaluate=None, eval_every: int | None = None, seed: int = 0,
                 progress: bool = True, desc: str = "SimCLR") -> History:
    """Train `model` (a SimCLR module) on unlabelled images with NT-Xent.

    Args:
        model: SimCLR(encoder, proj_dim); moved to `device` (channels_last if the profile says so).
        train_x: (N, C, H, W) images in [0, 1]; copied to `device` once, so the
            augmentations run where the model does.
        profile: supplies batch size, epochs, lr, eval_every, amp, channels_last, compile
            (each overridable by the keyword of the same name).
        augment, temperature: the two knobs notebooks 03–05 study.
        evaluate: () → {metric: value}, e.g. k-NN accuracy of model.encoder.
    Returns the History (loss per step, metrics per evaluation).
    """
    device = torch.device(device or ("cuda" if torch.cuda.is_available() else "cpu"))
    prepare_model(model, device, profile.channels_last)
    forward = torch.compile(model) if profile.compile else model
    data = train_x.to(device)
    order = torch.Generator().manual_seed(seed)
    views = torch.Generator(device=device).manual_seed(seed + 1)
    batch_size = batch_size or profile.batch_size
    step = simclr_step(forward, augment, temperature, views, profile.channels_last)
    model.train()
    return fit(step, model.parameters(), lambda epoch: (data[i.to(device)] for i in
                                                        minibatches(len(data), batch_size, order)),
               epochs or profile.epochs, lr=lr or profile.lr, device=device, amp=profile.amp,
               evaluate=evaluate, eval_every=eval_every or profile.eval_every,
               progress=progress, desc=desc)
