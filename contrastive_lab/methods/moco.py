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
  `_batch_shuffle_single_gpu`). `bn_groups=1` turns it off. On several
  processes (`moco_loss(..., shuffle=generator)`), the keys' images are
  shuffled across all processes (`encode_shuffled_across_processes`), as in
  MoCo's own `_batch_shuffle_ddp`.

    >>> model = MoCo(make_encoder(profile), proj_dim=64, queue_size=1024, momentum=0.99, bn_groups=4)
    >>> history = train_moco(model, train_x, profile, temperature=0.2)
"""
from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F

from ..device import get_rank, get_world_size
from ..distributed import gather
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


class GroupedQueries(nn.Module):
    """A MoCo model's query network applied in BatchNorm groups: the input (B, …) is cut into
    `groups` equal sub-batches, each through `model.query_net` on its own (`encode_in_groups`).

    It is the module DDP wraps on several processes: DDP needs ONE forward per step, so
    with `symmetric` both views go through it together, as 2 · bn_groups groups (each
    view still normalized on its own, as on one device). Holds no parameters of its own.
    """

    def __init__(self, model: MoCo):
        super().__init__()
        self.net = model.query_net
        self.groups = model.bn_groups * (2 if model.symmetric else 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return encode_in_groups(self.net, x, self.groups)


@torch.no_grad()
def encode_shuffled_across_processes(net: nn.Module, x: torch.Tensor, shuffle: torch.Generator,
                                     groups: int = 1) -> torch.Tensor:
    """net(x) with each process's BatchNorm seeing a random share of EVERY process's images.

    x: (n, …) this process's images (every process passes the same n). The n·W images of
    all W processes are gathered, permuted (the permutation drawn from `shuffle`, a
    generator in the same state on every process, so they all draw the same one with no
    message per step), and process r encodes rows n·r … n·r + n − 1 of the permuted batch
    (in `groups` BatchNorm groups). `shuffle` lives on x's device. The outputs are
    gathered and un-permuted, and this
    process keeps its own rows: row i is the key of x[i], normalized with companions
    drawn from all processes. Returns (n, D). No gradient (MoCo's keys take none).
    """
    n, world, rank = x.shape[0], get_world_size(), get_rank()
    everyone = gather(x)                                                      # (nW, …) in rank order
    order = torch.randperm(n * world, generator=shuffle, device=x.device)          # `shuffle` lives there too
    mine = everyone[order[rank * n:(rank + 1) * n]]
    keys = gather(encode_in_groups(net, mine, groups))                        # row j: key of everyone[order[j]]
    return keys[torch.argsort(order)][rank * n:(rank + 1) * n]                # back in rank order; my rows


def keys_per_step(model: MoCo, global_batch: int) -> int:
    """Keys that join the queue each step: the global batch, twice with `symmetric`."""
    return global_batch * (2 if model.symmetric else 1)


def moco_loss(model: MoCo, temperature: float, *, queries: nn.Module | None = None,
              shuffle: torch.Generator | None = None):
    """(view1, view2) → InfoNCE of queries (view1) against their keys (view2) and the queue.

    Order per step: queries (in model.bn_groups BatchNorm groups), momentum update of
    the key encoder, keys without gradient (in shuffled BatchNorm groups when
    model.bn_groups > 1), loss against the queue as it was, then the keys join the
    queue. With model.symmetric, view2's queries against view1's keys too (the mean of
    both losses; both batches of keys are queued).

    On several processes (torch.distributed): `queries` is the DDP-wrapped
    `GroupedQueries(model)`, `shuffle` a generator in the same state on every process
    (`distributed.shared_generator`): the keys' images are then shuffled across the
    processes (shuffle-BN, `encode_shuffled_across_processes`) and the keys of every
    process are queued, so that all the queues stay equal.
    """
    queries = queries if queries is not None else GroupedQueries(model)
    distributed = get_world_size() > 1
    if distributed and shuffle is None:
        raise ValueError("MoCo on several processes needs `shuffle`, a generator in the same state on every "
                         "process (distributed.shared_generator), for shuffle-BN across the processes")

    def keys_of(v: torch.Tensor) -> torch.Tensor:
        if distributed:
            k = encode_shuffled_across_processes(model.key_net, v, shuffle, model.bn_groups)
        else:
            order = torch.randperm(v.shape[0], device=v.device) if model.bn_groups > 1 else None
            k = encode_in_groups(model.key_net, v, model.bn_groups, order)
        return F.normalize(k.float(), dim=1)

    def loss_fn(v1: torch.Tensor, v2: torch.Tensor) -> torch.Tensor:
        queue = model.queue.keys.clone()
        q = queries(torch.cat([v1, v2]) if model.symmetric else v1)
        q1, q2 = q.chunk(2) if model.symmetric else (q, None)
        with torch.no_grad():
            ema_update(model.key_net, model.query_net, model.momentum)
            k2 = keys_of(v2)
            k1 = keys_of(v1) if model.symmetric else None
        loss = info_nce(q1, k2, queue, temperature)
        new_keys = torch.cat([k1, k2]) if model.symmetric else k2
        model.queue.enqueue(gather(new_keys) if distributed else new_keys)
        return loss if not model.symmetric else 0.5 * (loss + info_nce(q2, k1, queue, temperature))
    return loss_fn


def train_moco(model: MoCo, train_x: torch.Tensor, profile, *, temperature: float = DEFAULT_TEMPERATURE,
               desc: str = "MoCo", **kwargs) -> History:
    """Train a MoCo model on unlabelled images (N, C, H, W). Keyword arguments
    (augment, batch_size, epochs, lr, device, evaluate, eval_every, checkpoint, seed,
    max_seconds, progress) go to `views.train_on_views`; the queue and the key encoder
    are buffers and parameters of `model`, so a checkpoint holds them too."""
    return train_on_views(moco_loss(model, temperature), model, train_x, profile, desc=desc, **kwargs)
