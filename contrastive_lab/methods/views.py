"""Training on augmented views of images: the loop SimCLR, MoCo, BYOL, SimSiam, VICReg and SupCon share.

Each method supplies only `loss_fn(*views) -> loss`; this file owns the rest,
written for a GPU and run unchanged on a CPU:
- the training images copied to the device ONCE (as uint8 when the profile says
  so), so a batch is an index operation, with no DataLoader;
- shuffled index batches drawn on the device, and the views of every batch made
  there with per-image random parameters (`augment.make_views`: two views at the
  image size by default, or multi-crop when the method asks with `views=`), in
  float32 with autocast off, then cast to the encoder's autocast dtype;
- the model prepared once (device, channels_last, torch.compile when the profile asks);
- the optimization recipe (`train.Recipe`, the profile's unless changed) and the
  one fit loop, with a checkpoint that resumes the run exactly;
- under torchrun (`rank`, `world_size`), this process's shard of every global
  batch and augmentations of its own (see `contrastive_lab.distributed`).

`augment` names the augmentation: "profile" (the default) is the profile's recipe
for its dataset, an `AugmentConfig` is that recipe, None is no augmentation at all
(every view is the image itself). The same three values mean the same in
`train_supervised`.
"""
from __future__ import annotations

import torch
import torch.nn as nn

from ..augment import AugmentConfig, Views, make_views
from ..data.pairs import minibatches
from ..device import amp_dtype, get_device, make_generator
from ..distributed import rank_seed, shard_batches
from ..images import as_float_images, images_on_device
from ..models import prepare_model
from ..train import Checkpoint, History, Recipe, compile_once, fit

PROFILE_RECIPE = "profile"


def augment_recipe(augment: AugmentConfig | str | None, profile) -> AugmentConfig | None:
    """What `augment=` names: "profile" → the profile's recipe (`profile.augment`), an
    AugmentConfig → itself, None → None (no augmentation)."""
    if isinstance(augment, str):
        if augment != PROFILE_RECIPE:
            raise ValueError(f'augment must be "profile", an AugmentConfig or None (no augmentation), got {augment!r}')
        return profile.augment
    if augment is not None and not isinstance(augment, AugmentConfig):
        raise TypeError(f'augment must be "profile", an AugmentConfig or None, got {type(augment).__name__}')
    return augment


def fit_recipe(step, model: nn.Module, recipe: Recipe, batches, steps_per_epoch: int, *, checkpoint=None,
               checkpoint_every_s: float | None = None, generators: dict | None = None, **kwargs) -> History:
    """`fit` with `recipe`'s optimizer and schedule over the trainable parameters of `model`.
    checkpoint: a file path; `model` is saved in it as "model", with `generators`. Other
    keyword arguments go to `fit`."""
    optimizer, schedule = recipe.build([p for p in model.parameters() if p.requires_grad], steps_per_epoch)
    saved = None if checkpoint is None else Checkpoint(checkpoint, {"model": model}, generators or {},
                                                       every_s=checkpoint_every_s)
    return fit(step, optimizer, batches, recipe.epochs, schedule=schedule, steps_per_epoch=steps_per_epoch,
               checkpoint=saved, **kwargs)


def index_batches(n: int, batch_size: int, order: torch.Generator, rank: int = 0, world_size: int = 1,
                  per_rank: tuple[torch.Generator, int] | None = None):
    """epoch → the epoch's index batches on `order`'s device: all of each batch on one
    process, this process's shard of every global batch of batch_size · world_size under
    torchrun. per_rank: (generator, seed) re-seeded per rank and epoch, so that every
    process draws its own augmentations."""
    def batches(epoch: int):
        if world_size == 1:
            return minibatches(n, batch_size, order)
        if per_rank is not None:
            generator, seed = per_rank
            generator.manual_seed(rank_seed(seed, rank, epoch))
        return shard_batches(n, batch_size, order, rank, world_size)
    return batches


class MultiCrop(nn.Module):
    """net applied to views of several sizes in ONE forward (DINO's `MultiCropWrapper`).

    forward(*views) runs `net` once per run of consecutive views of the same size (their
    batches concatenated) and returns the outputs of all views concatenated, in order:
    (sum of the views' N, D). One forward per step is what DDP expects, and every
    BatchNorm layer sees all the views of one size together. Holds no parameters of its own.
    """

    def __init__(self, net: nn.Module):
        super().__init__()
        self.net = net

    def forward(self, *views: torch.Tensor) -> torch.Tensor:
        groups, start = [], 0
        for i in range(1, len(views) + 1):
            if i == len(views) or views[i].shape[-2:] != views[start].shape[-2:]:
                groups.append(torch.cat(views[start:i]))
                start = i
        return torch.cat([self.net(group) for group in groups])


def train_on_views(loss_fn, model: nn.Module, train_x: torch.Tensor, profile, *,
                   augment: AugmentConfig | str | None = PROFILE_RECIPE, views: Views = Views(),
                   recipe: Recipe | None = None, batch_size: int | None = None, epochs: int | None = None, lr: float | None = None,
                   weight_decay: float | None = None, device=None, evaluate=None, eval_every: int | None = None,
                   after_step=None, checkpoint=None, checkpoint_every_s: float | None = None,
                   labels: torch.Tensor | None = None, seed: int = 0,
                   max_seconds: float | None = None, progress: bool = True, desc: str = "train",
                   rank: int = 0, world_size: int = 1,
                   generators: dict[str, torch.Generator] | None = None) -> History:
    """Train `model`'s parameters with `loss_fn(*views)` on the views of each batch.

    Args:
        loss_fn: (view1, view2, …), each (B, C, h, w) on the device (global views, then
            local ones) → scalar loss (or (loss, {name: tensor}) to log); with `labels`,
            the batch's labels (B,) come last: (view1, view2, labels).
        model: the module whose trainable parameters are optimized; moved to the device.
        train_x: (N, C, H, W) unlabelled images, float in [0, 1] or uint8.
        profile: sizes, switches (amp, compile, channels_last, ...) and the default
            optimization recipe (`train.Recipe.of(profile)`).
        recipe: another recipe; batch_size, epochs, lr, weight_decay change it when given.
        augment: "profile" (the profile's recipe for its dataset), an AugmentConfig,
            or None (no augmentation: every view is the image).
        views: how many views of which sizes (`augment.Views`; default two at the image size).
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
    order, draws = make_generator(seed, device), make_generator(seed + 1, device)
    recipe_of_views = augment_recipe(augment, profile)
    recipe = (recipe or Recipe.of(profile)).given(batch_size=batch_size, epochs=epochs, lr=lr,
                                                  weight_decay=weight_decay)
    batch_size = min(recipe.batch_size, len(data))

    half = amp_dtype(device) if profile.amp else None          # bf16 / fp16 on a GPU, None on a CPU

    def step(idx: torch.Tensor):
        crops = make_views(as_float_images(data[idx]), recipe_of_views, views, draws)   # float32, autocast off
        if half is not None:
            crops = [v.to(half) for v in crops]                                  # what the encoder computes in
        return loss_fn(*crops) if targets is None else loss_fn(*crops, targets[idx])

    model.train()
    return fit_recipe(step, model, recipe, index_batches(len(data), batch_size, order, rank, world_size,
                                                         (draws, seed + 1)),
                      len(data) // (batch_size * world_size), device=device, amp=profile.amp,
                      evaluate=evaluate, eval_every=eval_every or profile.eval_every, after_step=after_step,
                      checkpoint=checkpoint, checkpoint_every_s=checkpoint_every_s,
                      generators={"order": order, "views": draws, **(generators or {})},
                      log_every=profile.log_every, max_seconds=max_seconds, progress=progress, desc=desc)
