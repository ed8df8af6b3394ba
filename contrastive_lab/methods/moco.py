"""MoCo v2 (He et al. 2020; Chen et al. 2020): negatives from a queue, keys from a momentum encoder.

What is special about the method:
- the query encoder (encoder + head) is trained; the key encoder is its
  exponential moving average and takes no gradient;
- each query's positive is the key of its other view; its negatives are the
  keys of past batches, kept in a FIFO queue, so a small batch sees many negatives;
- the momentum keeps old keys consistent with new ones. With momentum 0 the key
  encoder jumps with every step and the queue fills with keys from
  encoders that no longer exist.

    >>> model = MoCo(make_encoder(profile), proj_dim=64, queue_size=4096, momentum=0.99)
    >>> history = train_moco(model, train_x, profile, temperature=0.2)
"""
from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F

from ..losses import DEFAULT_TEMPERATURE, info_nce
from ..train import History
from .momentum import KeyQueue, ema_update, frozen_copy
from .simclr import SimCLR
from .views import train_on_views


class MoCo(nn.Module):
    """Query network (encoder + head), its momentum twin, and the key queue."""

    def __init__(self, encoder: nn.Module, proj_dim: int = 64, queue_size: int = 4096,
                 momentum: float = 0.99, hidden_dim: int | None = None):
        super().__init__()
        self.query_net = SimCLR(encoder, proj_dim, hidden_dim)
        self.key_net = frozen_copy(self.query_net)
        self.queue = KeyQueue(queue_size, proj_dim)
        self.momentum = momentum

    @property
    def encoder(self) -> nn.Module:
        """The backbone whose features you keep (the query side)."""
        return self.query_net.encoder

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.query_net(x)


def moco_loss(model: MoCo, temperature: float):
    """(view1, view2) → InfoNCE of queries (view1) against their keys (view2) and the queue.

    Order per step: momentum update of the key encoder, keys without gradient,
    loss against the queue as it was, then the keys join the queue.
    """
    def loss_fn(v1: torch.Tensor, v2: torch.Tensor) -> torch.Tensor:
        q = model.query_net(v1)
        with torch.no_grad():
            ema_update(model.key_net, model.query_net, model.momentum)
            k = F.normalize(model.key_net(v2).float(), dim=1)
        loss = info_nce(q, k, model.queue.keys.clone(), temperature)
        model.queue.enqueue(k)
        return loss
    return loss_fn


def train_moco(model: MoCo, train_x: torch.Tensor, profile, *, temperature: float = DEFAULT_TEMPERATURE,
               desc: str = "MoCo", **kwargs) -> History:
    """Train a MoCo model on unlabelled images (N, C, H, W). Keyword arguments
    (augment, batch_size, epochs, lr, device, evaluate, eval_every, checkpoint, seed,
    max_seconds, progress) go to `views.train_on_views`; the queue and the key encoder
    are buffers and parameters of `model`, so a checkpoint holds them too."""
    return train_on_views(moco_loss(model, temperature), model, train_x, profile, desc=desc, **kwargs)
