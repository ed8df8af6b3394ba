"""BYOL (Grill et al. 2020) and SimSiam (Chen & He 2021): no negatives at all.

Both predict one view's projection from the other's, with `negative_cosine`.
Nothing in that loss forbids mapping every image to one point; what prevents
it is asymmetry between the two branches:
- SimSiam: a predictor on the online branch, and a stop-gradient on the
  target branch (the other view's projection is a constant: `.detach()`);
- BYOL: the same predictor and stop-gradient, and in addition a target network
  that is an exponential moving average (EMA) of the online one instead of
  the online network itself. SimSiam is BYOL without the EMA (momentum 0).
`simsiam_loss(model, stop_gradient=False)` removes SimSiam's stop-gradient, to
watch the collapse. `METHOD` is BYOL's registry entry (DDP wraps the online
network and its predictor; the target follows by EMA after every step).
"""
from __future__ import annotations

import torch
import torch.nn as nn

from ..losses import negative_cosine
from ..models import ProjectionHead, make_encoder
from ..train import History
from .momentum import ema_update, frozen_copy
from .registry import Method, Option
from .simclr import SimCLR
from .views import train_on_views


class SimSiam(nn.Module):
    """Encoder + projector (`online`) and a predictor MLP."""

    def __init__(self, encoder: nn.Module, proj_dim: int = 64, pred_hidden: int = 32):
        super().__init__()
        self.online = SimCLR(encoder, proj_dim)
        self.predictor = ProjectionHead(proj_dim, pred_hidden, proj_dim)

    @property
    def encoder(self) -> nn.Module:
        return self.online.encoder


class BYOL(SimSiam):
    """SimSiam's online network and predictor, plus a target network: an EMA of the online
    one (`ema_update` after every step), which takes no gradient."""

    def __init__(self, encoder: nn.Module, proj_dim: int = 64, pred_hidden: int = 32,
                 momentum: float = 0.99):
        super().__init__(encoder, proj_dim, pred_hidden)
        self.target = frozen_copy(self.online)
        self.momentum = momentum


def simsiam_loss(model: SimSiam, stop_gradient: bool = True):
    """(view1, view2) → symmetric negative cosine between predictions and the other view's projection."""
    def loss_fn(v1: torch.Tensor, v2: torch.Tensor) -> torch.Tensor:
        z1, z2 = model.online(torch.cat([v1, v2])).chunk(2)
        p1, p2 = model.predictor(torch.cat([z1, z2])).chunk(2)
        t1, t2 = (z1.detach(), z2.detach()) if stop_gradient else (z1, z2)
        return 0.5 * (negative_cosine(p1, t2) + negative_cosine(p2, t1))
    return loss_fn


class OnlinePrediction(nn.Module):
    """BYOL's trainable path as one module: the online network, then the predictor. It is
    what DDP wraps on several processes (one forward per step runs every trainable parameter)."""

    def __init__(self, model: SimSiam):
        super().__init__()
        self.online, self.predictor = model.online, model.predictor

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.predictor(self.online(x))


def byol_loss(model: BYOL, predictions: nn.Module | None = None):
    """(view1, view2) → symmetric negative cosine between online predictions and target projections.
    predictions: the module that gives the online predictions (`OnlinePrediction(model)`, the
    default; its DDP-wrapped copy on several processes)."""
    predictions = predictions if predictions is not None else OnlinePrediction(model)

    def loss_fn(v1: torch.Tensor, v2: torch.Tensor) -> torch.Tensor:
        p1, p2 = predictions(torch.cat([v1, v2])).chunk(2)
        with torch.no_grad():
            t1, t2 = model.target(torch.cat([v1, v2])).chunk(2)
        return 0.5 * (negative_cosine(p1, t2) + negative_cosine(p2, t1))
    return loss_fn


def train_simsiam(model: SimSiam, train_x: torch.Tensor, profile, *, stop_gradient: bool = True,
                  desc: str = "SimSiam", **kwargs) -> History:
    """Train SimSiam (with or without stop-gradient) on unlabelled images (N, C, H, W)."""
    return train_on_views(simsiam_loss(model, stop_gradient), model, train_x, profile, desc=desc, **kwargs)


def train_byol(model: BYOL, train_x: torch.Tensor, profile, *, desc: str = "BYOL", **kwargs) -> History:
    """Train BYOL; the target network follows the online one after every step."""
    return train_on_views(byol_loss(model), model, train_x, profile, desc=desc, after_step=byol_after_step(model),
                          **kwargs)


def byol_after_step(model: BYOL):
    """The target network's EMA step, called after every optimizer step."""
    return lambda: ema_update(model.target, model.online, model.momentum)


METHOD = Method(
    name="byol", title="BYOL",
    options=(Option("momentum", 0.99, "m of the target network's EMA"),),
    build=lambda profile, options, data: BYOL(make_encoder(profile, in_channels=data.channels), profile.proj_dim,
                                              momentum=options.momentum),
    trainable_part=OnlinePrediction,
    loss=lambda run: byol_loss(run.model, run.part),
    after_step=byol_after_step,
)
