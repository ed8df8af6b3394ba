"""SimCLR training throughput: our batched on-device augmentation vs the usual recipe.

Same model, same batch size, same loss; only the input pipeline differs:
- batched: images live on the device; every step draws two views with per-image
  parameters in a few tensor ops (contrastive_lab.augment.two_views);
- recipe:  a DataLoader with worker processes applies per-sample torchvision v2
  transforms to each image twice, collates, and copies the batch to the device.
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

from contrastive_lab.augment import AugmentConfig, two_views
from contrastive_lab.data import make_cluttered_digits
from contrastive_lab.losses import nt_xent
from contrastive_lab.methods.simclr import SimCLR
from contrastive_lab.models import make_encoder, prepare_model
from contrastive_lab.profiles import FULL, QUICK
from contrastive_lab.train import autocast_context


class TwoViewDataset(Dataset):
    """Per-sample recipe: each __getitem__ augments one image twice."""

    def __init__(self, images: torch.Tensor, cfg: AugmentConfig):
        self.images = images
        self.transform = v2.Compose([
            v2.RandomResizedCrop(images.shape[-1], scale=cfg.crop_scale, ratio=cfg.crop_ratio, antialias=False),
            v2.RandomApply([v2.ColorJitter(cfg.brightness, cfg.contrast, cfg.saturation, cfg.hue)], p=cfg.jitter_p),
            v2.RandomGrayscale(p=cfg.grayscale_p),
        ])

    def __len__(self):
        return len(self.images)

    def __getitem__(self, i):
        img = self.images[i]
        return self.transform(img), self.transform(img)


def train_steps(model, opt, batches, steps, device, channels_last, amp):
    """Run `steps` SimCLR steps from an iterator of (v1, v2); return views per second."""
    done = 0
    start = time.perf_counter()
    for v1, v2_ in batches:
        views = torch.cat([v1, v2_]).to(device, non_blocking=True)
        if channels_last:
            views = views.contiguous(memory_format=torch.channels_last)
        with autocast_context(device, amp):
            z1, z2 = model(views).chunk(2)
            loss = nt_xent(z1, z2, 0.2)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        done += 1
        if done == steps:
            break
    if device.type == "cuda":
        torch.cuda.synchronize()
    return 2 * steps * len(v1) / (time.perf_counter() - start)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--backbone", default=None, help="small_cnn or resnet18 (default: by device)")
    parser.add_argument("--batch", type=int, default=None)
    parser.add_argument("--steps", type=int, default=8)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--images", type=int, default=4096)
    args = parser.parse_args()
    device = torch.device(args.device)
    profile = FULL if device.type == "cuda" else QUICK
    if args.backbone:
        profile = profile.replace(backbone=args.backbone)
    batch = args.batch or profile.batch_size
    cfg = AugmentConfig()
    images, _ = make_cluttered_digits(args.images, seed=0)

    torch.manual_seed(0)
    model = prepare_model(SimCLR(make_encoder(profile), profile.proj_dim), device, profile.channels_last)
    opt = torch.optim.Adam(model.parameters(), 1e-3)
    on_device = images.to(device)
    g = torch.Generator(device=device).manual_seed(0)

    def batched():
        while True:
            idx = torch.randint(len(on_device), (batch,), device=device, generator=g)
            yield two_views(on_device[idx], cfg, g)

    loader = DataLoader(TwoViewDataset(images, cfg), batch_size=batch, shuffle=True, drop_last=True,
                        num_workers=args.workers, pin_memory=device.type == "cuda",
                        persistent_workers=args.workers > 0)

    def recipe():
        while True:
            yield from loader

    run = lambda source: train_steps(model, opt, source, args.steps, device, profile.channels_last, profile.amp)
    run(batched())                         # warm-up both paths (and the workers)
    run(recipe())
    ours = run(batched())
    theirs = run(recipe())
    ours = max(ours, run(batched()))
    theirs = max(theirs, run(recipe()))
    name = torch.cuda.get_device_name() if device.type == "cuda" else f"cpu ({torch.get_num_threads()} threads)"
    print(f"{profile.backbone} on {name}, batch {batch} images = {2 * batch} views, {args.steps} steps per timing, "
          f"{args.workers} DataLoader workers")
    print(f"DataLoader + per-sample v2 transforms: {theirs:10.0f} views/s")
    print(f"batched per-image on {device.type}:              {ours:10.0f} views/s")
    print(f"ratio (batched / recipe):              {ours / theirs:10.2f}x")


if __name__ == "__main__":
    main()
