"""Training on two augmented views: the part SimCLR, MoCo, BYOL, SimSiam and VICReg share.

Each method supplies only `loss_fn(view1, view2) -> loss`; this file owns the
rest, written for a GPU and run unchanged on a CPU:
- the training images copied to the device ONCE (as uint8 when the profile says
  so), so a batch is an index operation, with no DataLoader;
- shuffled index batches drawn on the device, and two per-image augmented views
  of every batch made there (the profile's recipe for its dataset), in float32
  with autocast off, then cast to the encoder's autocast dtype;
- the model prepared once (device, channels_last, torch.compile when the profile asks);
- the one fit loop, with a checkpoint that resumes the run exactly;
- under torchrun (`rank`, `world_size`), this process's shard of every global
  batch and augmentations of its own (see `contrastive_lab.distributed`).
"""
from __future__ import annotations

import torch
import torch.nn as nn

from ..augment import AugmentConfig, two_views
from ..data.pairs import minibatches
from ..device import amp_dtype, get_device, make_generator
from ..distributed import rank_seed, shard_batches
from ..images import as_float_images, images_on_device
from ..models import prepare_model
from ..train import History, compile_once, fit


def fit_profile(step, model: nn.Module, profile, batches, steps_per_epoch: int, *,
                epochs: int | None = None, lr: float | None = None, weight_decay: float | None = None,
                **kwargs) -> History:
    """`fit` with the profile's optimizer recipe (optimizer, lr, weight decay, schedule,
    warm-up, log_every, amp) for the trainable parameters of `model`. Other keyword
    arguments go to `fit`; with `checkpoint`, the model is saved as "model"."""
    kwargs.setdefault("modules", {"model": model})
    return fit(step, [p for p in model.parameters() if p.requires_grad], batches,
               epochs or profile.epochs, lr=lr or profile.lr,
               weight_decay=profile.weight_decay if weight_decay is None else weight_decay,
               optimizer=profile.optimizer, schedule=profile.lr_schedule,
               warmup_steps=profile.warmup_epochs * steps_per_epoch, steps_per_epoch=steps_per_epoch,
               amp=profile.amp, log_every=profile.log_every, **kwargs)


def train_on_views(loss_fn, model: nn.Module, train_x: torch.Tensor, profile, *,
                   augment: AugmentConfig | None = None, batch_size: int | None = None,
                   epochs: int | None = None, lr: float | None = None, weight_decay: float | None = None,
                   device=None, evaluate=None, eval_every: int | None = None, after_step=None,
                   checkpoint=None, checkpoint_every_s: float | None = None,
                   labels: torch.Tensor | None = None, seed: int = 0,
                   max_seconds: float | None = None, progress: bool = True, desc: str = "train",
                   rank: int = 0, world_size: int = 1,
                   generators: dict[str, torch.Generator] | None = None) -> History:
    """Train `model`'s parameters with `loss_fn(v1, v2)` on two views of each batch.

    Args:
        loss_fn: (view1, view2), each (B, C, H, W) on the device → scalar loss
            (or (loss, {name: tensor}) to log); with `labels`, (view1, view2, labels (B,)).
        model: the module whose trainable parameters are optimized; moved to the device.
        train_x: (N, C, H, W) unlabelled images, float in [0, 1] or uint8.
        profile: sizes and the optimizer recipe; `augment` defaults to the
            profile's recipe for its dataset (`profile.augment`).
        after_step: called after each optimizer step (a momentum update, a clamp).
        checkpoint: a file path: saved every epoch, resumed from when it exists.
        checkpoint_every_s: also save inside an epoch every this many seconds (`fit`).
        labels: (N,) labels of train_x, for methods whose positives come from labels (SupCon).
        max_seconds: stop after this much wall-clock time (a benchmark's budget).
        rank, world_size: data-parallel training (torchrun). This process takes
            slice `rank` of every global batch of batch_size · world_size images
            and draws its own augmentations (seeded per rank and epoch). The
            caller builds `loss_fn` on the DDP-wrapped model, with negatives
            gathered from every process (`methods.data_parallel` does both).
        generators: more named generators `loss_fn` draws from (checkpointed with
            the loop's own "order" and "views").
    """
    device = get_device(device)
    prepare_model(model, device, profile.channels_last)
    compile_once(model, profile.compile)
    data = images_on_device(train_x, device, profile.store_uint8)
    targets = labels.to(device) if labels is not None else None
    order, views = make_generator(seed, device), make_generator(seed + 1, device)
    augment = augment or profile.augment
    batch_size = min(batch_size or profile.batch_size, len(data))

    half = amp_dtype(device) if profile.amp else None          # bf16 / fp16 on a GPU, None on a CPU

    def step(idx: torch.Tensor):
        v1, v2 = two_views(as_float_images(data[idx]), augment, views)     # float32, autocast off inside
        if half is not None:
            v1, v2 = v1.to(half), v2.to(half)                                # what the encoder computes in
        return loss_fn(v1, v2) if targets is None else loss_fn(v1, v2, targets[idx])

    def batches(epoch: int):
        if world_size == 1:
            return minibatches(len(data), batch_size, order)
        views.manual_seed(rank_seed(seed + 1, rank, epoch))      # every process its own augmentations
        return shard_batches(len(data), batch_size, order, rank, world_size)

    model.train()
    return fit_profile(step, model, profile, batches,
                       len(data) // (batch_size * world_size), epochs=epochs, lr=lr, weight_decay=weight_decay,
                       device=device, evaluate=evaluate, eval_every=eval_every or profile.eval_every,
                       after_step=after_step, checkpoint=checkpoint, checkpoint_every_s=checkpoint_every_s,
                       generators={"order": order, "views": views, **(generators or {})}, max_seconds=max_seconds,
                       progress=progress, desc=desc)
