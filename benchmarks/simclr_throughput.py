"""SimCLR training throughput: the package's path through `fit` vs the usual recipe.

Same model, same batch size, same loss; only the input pipeline differs:
- package: `train_simclr` as the notebooks call it: images on the device, index
  batches drawn there, two views with per-image parameters in a few tensor ops
  (contrastive_lab.augment.two_views), the fit loop reading the loss every
  `log_every` steps;
- recipe:  a DataLoader with worker processes applies per-sample torchvision v2
  transforms to each image twice, collates, and copies the batch to the device
  (pinned memory, non_blocking, the two views concatenated on the device), with a
  plain loop around it. Everything else is the package's: the same model object
  (channels_last, compiled once when the profile says so), the same optimizer
  (`make_optimizer`: fused Adam/AdamW, the profile's lr and weight decay), the same
  autocast and gradient scaler. Only the input pipeline differs.
Each path is timed twice, in turns (A B A B), and the better run of each is kept.
Prints views per second and their ratio, measured in this one run.

    python benchmarks/simclr_throughput.py                       # small CNN on CPU
    python benchmarks/simclr_throughput.py --device cuda --backbone resnet18 --batch 512
"""
from __future__ import annotations

import argparse
import time

import torch
from torch.utils.data import DataLoader, Dataset
from torchvision.transforms import v2

from contrastive_lab.augment import AugmentConfig
from contrastive_lab.data import make_cluttered_digits
from contrastive_lab.losses import nt_xent
from contrastive_lab.methods.simclr import SimCLR, train_simclr
from contrastive_lab.models import make_encoder, prepare_model
from contrastive_lab.profiles import FULL, QUICK
from contrastive_lab.train import (autocast_context, backward_and_step, compile_once, make_grad_scaler,
                                   make_optimizer)


class TwoViewDataset(Dataset):
    """Per-sample recipe: each __getitem__ augments one image twice."""

    def __init__(self, images: torch.Tensor, cfg: AugmentConfig):
        self.images = images
        self.transform = v2.Compose([
            v2.RandomResizedCrop(images.shape[-1], scale=cfg.crop_scale, ratio=cfg.crop_ratio, antialias=False),
            v2.RandomHorizontalFlip(cfg.flip_p),
            v2.RandomApply([v2.ColorJitter(cfg.brightness, cfg.contrast, cfg.saturation, cfg.hue)], p=cfg.jitter_p),
            v2.RandomGrayscale(p=cfg.grayscale_p),
        ])

    def __len__(self):
        return len(self.images)

    def __getitem__(self, i):
        img = self.images[i]
        return self.transform(img), self.transform(img)


def dataloader_views_per_s(model, images, cfg, batch, steps, device, profile, workers) -> float:
    """The usual recipe: DataLoader + per-sample v2 transforms, a plain training loop, on the
    package's model, optimizer and precision (see the module docstring). The first step (the
    workers starting, a compile if the model was not compiled yet) is not timed."""
    loader = DataLoader(TwoViewDataset(images, cfg), batch_size=batch, shuffle=True, drop_last=True,
                        num_workers=workers, pin_memory=device.type == "cuda")
    prepare_model(model, device, profile.channels_last)          # no-op when the package already did it
    compile_once(model, profile.compile)
    opt = make_optimizer(model.parameters(), profile.optimizer, profile.lr, profile.weight_decay)
    scaler = make_grad_scaler(device, profile.amp)
    done, start = 0, None
    while done < steps + 1:
        for v1, v2_ in loader:
            if done == 1:                       # the first batch waits for the workers to start
                start = time.perf_counter()
            v1, v2_ = v1.to(device, non_blocking=True), v2_.to(device, non_blocking=True)   # pinned → device
            views = torch.cat([v1, v2_])                                                     # on the device
            with autocast_context(device, profile.amp):
                z1, z2 = model(views).chunk(2)
                loss = nt_xent(z1, z2, 0.2)
            opt.zero_grad(set_to_none=True)
            backward_and_step(loss, opt, scaler)
            done += 1
            if done == steps + 1:
                break
    if device.type == "cuda":
        torch.cuda.synchronize()
    return 2 * steps * batch / (time.perf_counter() - start)


def package_views_per_s(model, images, cfg, batch, steps, device, profile) -> float:
    """train_simclr through fit, on steps · batch images (one epoch); the first step is not timed."""
    train_simclr(model, images[:batch], profile, augment=cfg, batch_size=batch, epochs=1,
                 device=device, progress=False)                                      # warm-up step
    start = time.perf_counter()
    history = train_simclr(model, images[:steps * batch], profile, augment=cfg, batch_size=batch,
                           epochs=1, device=device, progress=False)
    if device.type == "cuda":
        torch.cuda.synchronize()
    return 2 * len(history.loss) * batch / (time.perf_counter() - start)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--backbone", default=None, help="small_cnn or resnet18 (default: by device)")
    parser.add_argument("--batch", type=int, default=None)
    parser.add_argument("--steps", type=int, default=8)
    parser.add_argument("--workers", type=int, default=2)
    args = parser.parse_args()
    device = torch.device(args.device)
    profile = (FULL if device.type == "cuda" else QUICK).replace(compile=False)
    if args.backbone:
        profile = profile.replace(backbone=args.backbone)
    batch = args.batch or profile.batch_size
    cfg = AugmentConfig()
    images, _ = make_cluttered_digits(args.steps * batch, seed=0)

    torch.manual_seed(0)
    model = prepare_model(SimCLR(make_encoder(profile), profile.proj_dim), device, profile.channels_last)
    ours = lambda: package_views_per_s(model, images, cfg, batch, args.steps, device, profile)
    theirs = lambda: dataloader_views_per_s(model, images, cfg, batch, args.steps, device, profile, args.workers)
    best_ours, best_theirs = max(ours(), 0), max(theirs(), 0)
    best_ours, best_theirs = max(best_ours, ours()), max(best_theirs, theirs())
    name = torch.cuda.get_device_name() if device.type == "cuda" else f"cpu ({torch.get_num_threads()} threads)"
    print(f"{profile.backbone} on {name}, batch {batch} images = {2 * batch} views, {args.steps} steps per timing, "
          f"{args.workers} DataLoader workers")
    print(f"DataLoader + per-sample v2 transforms: {best_theirs:10.0f} views/s")
    print(f"train_simclr through fit:              {best_ours:10.0f} views/s")
    print(f"ratio (package / recipe):              {best_ours / best_theirs:10.2f}x")


if __name__ == "__main__":
    main()
