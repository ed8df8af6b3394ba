"""SimCLR, MoCo, BYOL and CLIP on several processes: what changes, and nothing else.

Each process builds the same model (same seed), takes its shard of every global
batch and trains with the course's own loop (`views.train_on_views`,
`train.fit`). Three things change per method:

- the module whose forward runs every trainable parameter is wrapped in DDP,
  so the gradients are averaged over the processes during backward;
- the loss takes its negatives from every process (`distributed.global_*`,
  targets offset by rank): SimCLR's 2N views see all 2NW, CLIP's N pairs all NW;
- MoCo puts EVERY process's keys in its queue, so all the queues stay equal,
  and shuffles the keys' images across the processes (shuffle-BN, in
  `methods.moco`), honouring `symmetric` and `bn_groups`; BYOL has no negatives
  and needs only DDP.

With `sync_bn`, every BatchNorm of the trainable part normalizes over the global
batch (`distributed.global_batchnorm`: one all-reduce per layer, no host sync);
MoCo's key network keeps per-process BatchNorm: shuffle-BN is its remedy.

With one process (world size 1) each trainer here is the single-process
trainer of its method, step for step (tests/test_data_parallel.py).

    world = distributed.setup()
    model = build_model("simclr", profile)
    history = train_data_parallel("simclr", model, train_x, profile, world, checkpoint="run.pt")
"""
from __future__ import annotations

import torch
import torch.nn as nn

from ..data.pairs import minibatches
from ..device import make_generator
from ..distributed import (World, global_batchnorm, global_clip_loss, global_nt_xent, rank_seed, shard_batches,
                           shared_generator, wrap_ddp)
from ..images import as_float_images, images_on_device
from ..losses import DEFAULT_TEMPERATURE, negative_cosine
from ..models import make_encoder, prepare_model
from ..text import Tokenizer
from ..train import History, compile_once, fit
from .byol import BYOL
from .clip import CLIP, CLIPSettings, build_clip, tokenize_captions
from .momentum import ema_update
from .moco import GroupedQueries, MoCo, keys_per_step, moco_loss
from .simclr import SimCLR
from .views import train_on_views

VIEW_METHODS = ("simclr", "moco", "byol")
METHODS = VIEW_METHODS + ("clip",)


def build_model(method: str, profile, *, in_channels: int = 3, queue_size: int = 4096,
                momentum: float = 0.99, symmetric: bool = False, tokenizer: Tokenizer | None = None,
                clip: CLIPSettings | None = None) -> nn.Module:
    """The course's model for `method` at the profile's size (seed torch first: every
    process must build the same one; DDP then copies rank 0's weights anyway).
    symmetric: MoCo's both-views-as-queries option."""
    if method not in METHODS:
        raise ValueError(f"method must be one of {METHODS}, got {method!r}")
    if method == "clip":
        if tokenizer is None:
            raise ValueError("CLIP needs the tokenizer built from its training captions")
        return build_clip(profile, tokenizer, clip)
    encoder = make_encoder(profile, in_channels=in_channels)
    if method == "simclr":
        return SimCLR(encoder, profile.proj_dim)
    if method == "moco":
        return MoCo(encoder, profile.proj_dim, queue_size=queue_size, momentum=momentum, symmetric=symmetric)
    return BYOL(encoder, profile.proj_dim, momentum=momentum)


class _OnlinePrediction(nn.Module):
    """BYOL's trainable path as one module (online network, then predictor), for DDP."""

    def __init__(self, model: BYOL):
        super().__init__()
        self.online, self.predictor = model.online, model.predictor

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.predictor(self.online(x))


def trainable_part(method: str, model: nn.Module) -> nn.Module:
    """The module whose forward runs every trainable parameter: what DDP wraps.
    (MoCo's key network and BYOL's target take no gradient: they follow by EMA.
    MoCo's part runs its query network in BatchNorm groups, both views at once
    when symmetric: DDP allows one forward per step.)"""
    if method == "moco":
        return GroupedQueries(model)
    if method == "byol":
        return _OnlinePrediction(model)
    return model


def negatives_for_method(method: str, model: nn.Module, batch_size: int, world_size: int) -> int:
    """Negatives one query is scored against in a step of `method` with W processes of B images."""
    if method == "simclr":
        return 2 * batch_size * world_size - 2
    if method == "moco":
        return model.queue.keys.shape[0]
    if method == "clip":
        return batch_size * world_size - 1
    return 0


def views_loss(method: str, model: nn.Module, ddp: nn.Module, temperature: float = DEFAULT_TEMPERATURE,
               shuffle: torch.Generator | None = None):
    """(view1, view2) → loss of SimCLR, MoCo or BYOL, on the DDP-wrapped trainable part
    `ddp`, with negatives from every process. MoCo: `moco_loss` with `ddp` as its queries
    and `shuffle` (a `shared_generator` on the device) for shuffle-BN across processes."""
    if method == "simclr":
        def loss_fn(v1, v2):
            z1, z2 = ddp(torch.cat([v1, v2])).chunk(2)
            return global_nt_xent(z1, z2, temperature)
    elif method == "moco":
        loss_fn = moco_loss(model, temperature, queries=ddp, shuffle=shuffle)
    elif method == "byol":
        def loss_fn(v1, v2):
            p1, p2 = ddp(torch.cat([v1, v2])).chunk(2)
            with torch.no_grad():
                t1, t2 = model.target(torch.cat([v1, v2])).chunk(2)
            return 0.5 * (negative_cosine(p1, t2) + negative_cosine(p2, t1))
    else:
        raise ValueError(f"views_loss takes one of {VIEW_METHODS}, got {method!r}")
    return loss_fn


def prepare_data_parallel(method: str, model: nn.Module, profile, world: World, *,
                          sync_bn: bool = False) -> nn.Module:
    """Put `model` on the process's device (channels_last as the profile says), optionally
    with BatchNorm over the global batch (`global_batchnorm`), and return its trainable
    part wrapped in DDP."""
    part = trainable_part(method, model)
    if sync_bn:
        global_batchnorm(part)                        # in place: BatchNorm children are replaced
    prepare_model(model, world.device, profile.channels_last)
    return wrap_ddp(part, world)


def train_data_parallel(method: str, model: nn.Module, train_x: torch.Tensor, profile, world: World, *,
                        temperature: float = DEFAULT_TEMPERATURE, batch_size: int | None = None,
                        epochs: int | None = None, lr: float | None = None, checkpoint=None, seed: int = 0,
                        sync_bn: bool = False, progress: bool = True) -> History:
    """Train SimCLR, MoCo or BYOL on this process's shard of `train_x` (every process passes
    all of it). batch_size is per process (the profile's by default). MoCo's queue must
    hold at least one step's keys (the global batch, twice with symmetric). MoCo's
    shuffle-BN generator is shared by the processes and checkpointed. Returns this
    process's History (rank 0's is logged)."""
    if method not in VIEW_METHODS:
        raise ValueError(f"train_data_parallel takes one of {VIEW_METHODS}; CLIP: train_clip_data_parallel")
    batch_size = profile.batch_size if batch_size is None else batch_size
    epochs = profile.epochs_of(method) if epochs is None else epochs
    if method == "moco" and model.queue.keys.shape[0] < keys_per_step(model, batch_size * world.world_size):
        twice = " × 2 views" if model.symmetric else ""
        raise ValueError(f"MoCo's queue ({model.queue.keys.shape[0]} keys) must hold at least one step's keys "
                         f"({world.world_size} × {batch_size}{twice}); raise queue_size")
    ddp = prepare_data_parallel(method, model, profile, world, sync_bn=sync_bn)
    after_step = (lambda: ema_update(model.target, model.online, model.momentum)) if method == "byol" else None
    shuffle = shared_generator(seed + 2, world.device) if method == "moco" else None
    return train_on_views(views_loss(method, model, ddp, temperature, shuffle), model, train_x, profile,
                          batch_size=batch_size, epochs=epochs, lr=lr, device=world.device,
                          after_step=after_step, checkpoint=checkpoint, seed=seed, progress=progress,
                          desc=f"{method} ×{world.world_size}", rank=world.rank, world_size=world.world_size,
                          generators={"key_shuffle": shuffle} if shuffle is not None else None)


def train_clip_data_parallel(model: CLIP, scenes, tokenizer: Tokenizer, settings: CLIPSettings, profile,
                             world: World, *, batch_size: int | None = None, epochs: int | None = None,
                             lr: float | None = None, checkpoint=None, seed: int = 0, sync_bn: bool = False,
                             progress: bool = True) -> History:
    """`methods.clip.train_clip` on W processes: every image is scored against the captions
    of all processes and every caption against all images (`global_clip_loss`).

    The same recipe as train_clip (Adam, cosine decay over the run, the logit
    scale clamped after every step, one phrasing of each caption drawn per
    step); batch_size is per process (settings.batch_size by default).
    """
    ddp = prepare_data_parallel("clip", model, profile, world, sync_bn=sync_bn)
    compile_once(model, profile.compile)
    device = world.device
    images = images_on_device(scenes.images, device, profile.store_uint8)
    ids = tokenize_captions(tokenizer, scenes.captions).to(device)
    order, phrasing = make_generator(seed, device), make_generator(seed + 1, device)
    batch_size = min(settings.batch_size if batch_size is None else batch_size, len(images))

    def step(idx: torch.Tensor):
        pick = torch.randint(ids.shape[1], (len(idx),), generator=phrasing, device=device)
        image_emb, text_emb, scale = ddp(as_float_images(images[idx]), ids[idx, pick])
        return global_clip_loss(image_emb, text_emb, scale), {"logit_scale": scale.detach()}

    def batches(epoch: int):
        if world.world_size == 1:
            return minibatches(len(images), batch_size, order)
        phrasing.manual_seed(rank_seed(seed + 1, world.rank, epoch))
        return shard_batches(len(images), batch_size, order, world.rank, world.world_size)

    model.train()
    epochs = settings.epochs if epochs is None else epochs
    return fit(step, model.parameters(), batches, epochs, lr=settings.lr if lr is None else lr,
               optimizer="adam", schedule="cosine", steps_per_epoch=len(images) // (batch_size * world.world_size),
               device=device, amp=profile.amp, after_step=model.clamp_logit_scale_, checkpoint=checkpoint,
               modules={"model": model}, generators={"order": order, "phrasing": phrasing},
               log_every=profile.log_every, progress=progress, desc=f"clip ×{world.world_size}")
