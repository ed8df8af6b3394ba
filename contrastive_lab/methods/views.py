"""Training on two augmented views: the part SimCLR, MoCo, BYOL, SimSiam and VICReg share.

Each method supplies only `loss_fn(view1, view2) -> loss`; this file owns the
rest: the data copied to the device once, shuffled minibatches, two per-image
augmented views of every batch (on the device), channels_last, and the call
to the one fit loop.
"""
from __future__ import annotations

import torch
import torch.nn as nn

from ..augment import AugmentConfig, two_views
from ..data.pairs import minibatches
from ..models import prepare_model
from ..train import History, fit


def default_device(device=None) -> torch.device:
    return torch.device(device or ("cuda" if torch.cuda.is_available() else "cpu"))


def train_on_views(loss_fn, model: nn.Module, train_x: torch.Tensor, profile, *,
                   augment: AugmentConfig = AugmentConfig(), batch_size: int | None = None,
                   epochs: int | None = None, lr: float | None = None, weight_decay: float = 0.0,
                   device=None, evaluate=None, eval_every: int | None = None, after_step=None,
                   seed: int = 0, progress: bool = True, desc: str = "train") -> History:
    """Train `model`'s parameters with `loss_fn(v1, v2)` on two views of each batch.

    Args:
        loss_fn: (view1, view2), each (B, C, H, W) on the device → scalar loss.
        model: the module whose trainable parameters are optimized; moved to the
            device (channels_last when the profile says so).
        train_x: (N, C, H, W) unlabelled images in [0, 1].
        profile: default batch size, epochs, lr, eval_every, amp, channels_last.
        after_step: called after each optimizer step (a momentum update, a clamp).
    """
    device = default_device(device)
    prepare_model(model, device, profile.channels_last)
    data = train_x.to(device)
    order = torch.Generator().manual_seed(seed)
    views = torch.Generator(device=device).manual_seed(seed + 1)
    batch_size = batch_size or profile.batch_size

    def step(idx: torch.Tensor) -> torch.Tensor:
        v1, v2 = two_views(data[idx.to(device)], augment, views)
        if profile.channels_last:
            v1 = v1.contiguous(memory_format=torch.channels_last)
            v2 = v2.contiguous(memory_format=torch.channels_last)
        return loss_fn(v1, v2)

    model.train()
    params = [p for p in model.parameters() if p.requires_grad]
    return fit(step, params, lambda epoch: minibatches(len(data), batch_size, order),
               epochs or profile.epochs, lr=lr or profile.lr, weight_decay=weight_decay, device=device,
               amp=profile.amp, evaluate=evaluate, eval_every=eval_every or profile.eval_every,
               after_step=after_step, progress=progress, desc=desc)
