"""Batched per-image augmentation vs the usual per-sample torchvision v2 loop.

Both pipelines give every image its own random crop, colour jitter and
grayscale draw (the v2 loop does it by calling the transform once per image;
ours draws (N, …) parameter tensors and applies them in one call). Prints
milliseconds per 256-image batch and the ratio, measured in this one run.

    python benchmarks/augment_vs_v2_loop.py [--batch 256] [--repeats 20] [--device cpu]
"""
from __future__ import annotations

import argparse
import statistics
import time

import torch
from torchvision.transforms import v2

from contrastive_lab.augment import AugmentConfig, augment
from contrastive_lab.data import make_cluttered_digits


def per_sample_v2(cfg: AugmentConfig, size: int):
    return v2.Compose([
        v2.RandomResizedCrop(size, scale=cfg.crop_scale, ratio=cfg.crop_ratio, antialias=False),
        v2.RandomApply([v2.ColorJitter(cfg.brightness, cfg.contrast, cfg.saturation, cfg.hue)], p=cfg.jitter_p),
        v2.RandomGrayscale(p=cfg.grayscale_p),
    ])


def _ms(fn, device: torch.device) -> float:
    if device.type == "cuda":
        torch.cuda.synchronize()
    start = time.perf_counter()
    fn()
    if device.type == "cuda":
        torch.cuda.synchronize()
    return (time.perf_counter() - start) * 1000


def interleaved_medians(fns, repeats: int, device: torch.device) -> list[float]:
    """Median milliseconds of each fn, run in turns (A B A B …) after one warm-up each,
    so that a noisy neighbour on a shared machine slows both sides alike."""
    for fn in fns:
        fn()
    times = [[] for _ in fns]
    for _ in range(repeats):
        for i, fn in enumerate(fns):
            times[i].append(_ms(fn, device))
    return [statistics.median(t) for t in times]


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--batch", type=int, default=256)
    parser.add_argument("--repeats", type=int, default=20)
    parser.add_argument("--device", default="cpu")
    args = parser.parse_args()
    device = torch.device(args.device)
    x, _ = make_cluttered_digits(args.batch, seed=0)
    x = x.to(device)
    cfg = AugmentConfig()
    loop = per_sample_v2(cfg, x.shape[-1])
    g = torch.Generator(device=device).manual_seed(0)

    batched_ms, loop_ms = interleaved_medians(
        [lambda: augment(x, cfg, g), lambda: torch.stack([loop(img) for img in x])], args.repeats, device)
    print(f"device {device}, batch {args.batch}, 3x{x.shape[-1]}x{x.shape[-1]}, threads {torch.get_num_threads()}")
    print(f"per-sample torchvision v2 loop: {loop_ms:8.1f} ms per batch")
    print(f"batched per-image (ours):       {batched_ms:8.1f} ms per batch")
    print(f"ratio (loop / batched):         {loop_ms / batched_ms:8.1f}x")


if __name__ == "__main__":
    main()
