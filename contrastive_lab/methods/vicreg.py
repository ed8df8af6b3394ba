"""VICReg (Bardes, Ponce & LeCun 2022): no negatives, no asymmetry — explicit regularizers.

The invariance term pulls two views together; the variance term keeps every
dimension's std above gamma (this is what stops collapse); the covariance term
decorrelates dimensions (against dimensional collapse). Train with
variance_weight=0 to watch it collapse.
"""
from __future__ import annotations

import torch
import torch.nn as nn

from ..losses import vicreg_terms
from ..train import History
from .simclr import SimCLR
from .views import train_on_views


def vicreg_views_loss(model: nn.Module, invariance_weight: float = 25.0, variance_weight: float = 25.0,
                      covariance_weight: float = 1.0):
    """(view1, view2) → (VICReg loss, its three terms) on the model's projections.

    The loss is `losses.vicreg_loss` written out, so that the terms it adds up are
    logged too (as tensors: fit reads them with the loss, not every step).
    """
    weights = {"invariance": invariance_weight, "variance": variance_weight, "covariance": covariance_weight}

    def loss_fn(v1: torch.Tensor, v2: torch.Tensor):
        z1, z2 = model(torch.cat([v1, v2])).chunk(2)
        terms = vicreg_terms(z1, z2)
        loss = sum(weights[name] * term for name, term in terms.items())
        return loss, {name: term.detach() for name, term in terms.items()}
    return loss_fn


def train_vicreg(model: SimCLR, train_x: torch.Tensor, profile, *, invariance_weight: float = 25.0,
                 variance_weight: float = 25.0, covariance_weight: float = 1.0,
                 desc: str = "VICReg", **kwargs) -> History:
    """Train encoder + projector (a SimCLR module) with the VICReg loss; the three
    terms are logged in history.metrics every step. Keyword arguments go to
    `views.train_on_views`."""
    loss_fn = vicreg_views_loss(model, invariance_weight, variance_weight, covariance_weight)
    return train_on_views(loss_fn, model, train_x, profile, desc=desc, **kwargs)
