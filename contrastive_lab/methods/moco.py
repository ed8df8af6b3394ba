"""MoCo v2 (He et al. 2020; Chen et al. 2020): negatives from a queue, keys from a momentum encoder.

What is special about the method:
- the query encoder (encoder + head) is trained; the key encoder is its
  exponential moving average and takes no gradient;
- each query's positive is the key of its other view; its negatives are the
  keys of past batches, kept in a FIFO queue, so a small batch sees many negatives;
- the momentum keeps old keys consistent with new ones. With momentum 0 the key
  encoder jumps with every step and the queue fills with keys from
  encoders that no longer exist;
- **shuffle-BN**. BatchNorm normalizes with the statistics of the batch it sees.
  The positive key was computed in the same batch as its query, the queued
  negatives in other batches, so batch statistics alone can tell the positive
  apart: a shortcut that lowers the loss without learning the image. MoCo
  trains on several GPUs, each normalizing its own part of the batch, and
  shuffles the images across GPUs before the key encoder, so that a query and
  its key are normalized with different companions. On one device
  `bn_groups > 1` does the same: queries and keys are encoded in `bn_groups`
  sub-batches each (every BatchNorm layer sees one sub-batch at a time), the
  keys after a random shuffle of the batch, undone afterwards. This is what
  MoCo's own one-GPU CIFAR-10 demo does (its `SplitBatchNorm` and
  `_batch_shuffle_single_gpu`). `bn_groups=1` turns it off.

    >>> model = MoCo(make_encoder(profile), proj_dim=64, queue_size=1024, momentum=0.99, bn_groups=4)
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
    """Query network (encoder + head), its momentum twin, and the key queue.

    Args:
        encoder: the backbone (exposes `feature_dim`).
        proj_dim: size of the projections (and of the queued keys).
        queue_size: K, the number of queued keys (negatives per query).
        momentum: m of the key encoder's EMA, in [0, 1].
        bn_groups: sub-batches for shuffle-BN (see the module docstring); the batch
            size must be a multiple of it, with at least 2 images per group.
        symmetric: also use the second view as queries against the first view's keys
            (MoCo's CIFAR-10 demo option): both views then get gradient, as in SimCLR.
    """

    def __init__(self, encoder: nn.Module, proj_dim: int = 64, queue_size: int = 4096,
                 momentum: float = 0.99, hidden_dim: int | None = None, bn_groups: int = 1,
                 symmetric: bool = False):
        super().__init__()
        if bn_groups < 1:
            raise ValueError(f"bn_groups must be >= 1 (1 = no shuffle-BN), got {bn_groups}")
        if not 0.0 <= momentum <= 1.0:
            raise ValueError(f"momentum must be in [0, 1], got {momentum}")
        self.query_net = SimCLR(encoder, proj_dim, hidden_dim)
        self.key_net = frozen_copy(self.query_net)
        self.queue = KeyQueue(queue_size, proj_dim)
        self.momentum = momentum
        self.bn_groups = bn_groups
        self.symmetric = symmetric

    @property
    def encoder(self) -> nn.Module:
        """The backbone whose features you keep (the query side)."""
        return self.query_net.encoder

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.query_net(x)


def encode_in_groups(net: nn.Module, x: torch.Tensor, groups: int,
                     order: torch.Tensor | None = None) -> torch.Tensor:
    """net(x) computed on `groups` equal sub-batches, so each BatchNorm layer (in train
    mode) normalizes every sub-batch with its own statistics, as on `groups` devices.

    x: (B, …) with B a multiple of `groups`. order: an optional permutation (B,): the
    sub-batches are then cut from x[order] (shuffle-BN), and the outputs are put back
    in x's order. Returns (B, D). With groups=1 and no order it is net(x).
    """
    n = x.shape[0]
    if n % groups or n // groups < 2:
        raise ValueError(f"a batch of {n} cannot be split into {groups} BatchNorm groups of >= 2 images; "
                         f"use a batch size that is a multiple of bn_groups (e.g. {2 * groups * max(1, n // (2 * groups))})")
    if order is not None:
        x = x[order]
    out = torch.cat([net(part) for part in x.chunk(groups)]) if groups > 1 else net(x)
    if order is not None:
        out = out[torch.argsort(order)]            # undo the shuffle: row i is image i again
    return out


def moco_loss(model: MoCo, temperature: float):
    """(view1, view2) → InfoNCE of queries (view1) against their keys (view2) and the queue.

    Order per step: momentum update of the key encoder, keys without gradient
    (in shuffled BatchNorm groups when model.bn_groups > 1), loss against the
    queue as it was, then the keys join the queue. With model.symmetric, view2's
    queries against view1's keys too (the mean of both losses; both batches of
    keys are queued).
    """
    def keys_of(v: torch.Tensor) -> torch.Tensor:
        order = torch.randperm(v.shape[0], device=v.device) if model.bn_groups > 1 else None
        return F.normalize(encode_in_groups(model.key_net, v, model.bn_groups, order).float(), dim=1)

    def loss_fn(v1: torch.Tensor, v2: torch.Tensor) -> torch.Tensor:
        queue = model.queue.keys.clone()
        q1 = encode_in_groups(model.query_net, v1, model.bn_groups)
        with torch.no_grad():
            ema_update(model.key_net, model.query_net, model.momentum)
            k2 = keys_of(v2)
        loss = info_nce(q1, k2, queue, temperature)
        if not model.symmetric:
            model.queue.enqueue(k2)
            return loss
        q2 = encode_in_groups(model.query_net, v2, model.bn_groups)
        with torch.no_grad():
            k1 = keys_of(v1)
        model.queue.enqueue(torch.cat([k1, k2]))
        return 0.5 * (loss + info_nce(q2, k1, queue, temperature))
    return loss_fn


def train_moco(model: MoCo, train_x: torch.Tensor, profile, *, temperature: float = DEFAULT_TEMPERATURE,
               desc: str = "MoCo", **kwargs) -> History:
    """Train a MoCo model on unlabelled images (N, C, H, W). Keyword arguments
    (augment, batch_size, epochs, lr, device, evaluate, eval_every, checkpoint, seed,
    max_seconds, progress) go to `views.train_on_views`; the queue and the key encoder
    are buffers and parameters of `model`, so a checkpoint holds them too."""
    return train_on_views(moco_loss(model, temperature), model, train_x, profile, desc=desc, **kwargs)
