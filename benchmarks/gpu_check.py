"""The GPU check: the full profile's SimCLR through the real `train_simclr` path, in one command.

    python benchmarks/gpu_check.py                  # on a CUDA machine: a 120 s budget
    python benchmarks/gpu_check.py --seconds 300
    python benchmarks/gpu_check.py --dry-run        # a few tiny steps on the CPU, same code path

It trains the full profile's SimCLR (ResNet-18 with the CIFAR stem, autocast in the
dtype this GPU computes fast, channels_last, torch.compile, AdamW with warm-up and
cosine decay, images kept on the GPU as uint8) on CIFAR-10 when it is already in the
cache, and otherwise on 50,000 offline cluttered digits at 32 × 32 (a machine without
network has only those), for a fixed wall-clock budget. Then it prints, measured in
this one run:
- the warm-up (compiling the forward and the backward, two steps), in seconds, apart;
- views per second through `fit`, timed from the end of the warm-up;
- peak GPU memory during the timed run (compile-time buffers excluded);
- host synchronisations and host↔device copies inside a training step, and the loop's
  own reads, per step (counted on a short eager run of the same path with
  `device.count_host_syncs`);
- k-NN accuracy of the encoder on the test split after the budget;
- views per second of the usual recipe (a DataLoader with per-sample torchvision v2
  transforms) on the same compiled model, with the same optimizer and precision, and
  the ratio.
"""
from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from simclr_throughput import dataloader_views_per_s  # noqa: E402  (the baseline, written once)

from contrastive_lab.data import DatasetUnavailable, load_real_dataset, make_cluttered_digits  # noqa: E402
from contrastive_lab.device import amp_dtype, count_host_syncs, get_device  # noqa: E402
from contrastive_lab.evaluate import knn_accuracy  # noqa: E402
from contrastive_lab.methods.simclr import SimCLR, train_simclr  # noqa: E402
from contrastive_lab.models import embed, make_encoder  # noqa: E402
from contrastive_lab.profiles import FULL  # noqa: E402


def load_data(profile, dry_run: bool):
    """CIFAR-10 from the cache (no download), else offline digits at the profile's size."""
    if not dry_run:
        try:
            tr_x, tr_y = load_real_dataset("cifar10", train=True, download=False)
            te_x, te_y = load_real_dataset("cifar10", train=False, download=False)
            return "cifar10 (cached)", tr_x, tr_y, te_x, te_y
        except DatasetUnavailable as exc:
            print(f"{exc} -> training on {profile.n_train + profile.n_val:,} offline cluttered digits")
    n_train, n_test = (64, 32) if dry_run else (profile.n_train + profile.n_val, profile.n_test)
    tr_x, tr_y = make_cluttered_digits(n_train, "train", seed=0)
    te_x, te_y = make_cluttered_digits(n_test, "test", seed=0)
    to_uint8 = lambda x: (x * 255).round().to(torch.uint8)
    return "cluttered_digits", to_uint8(tr_x), tr_y, to_uint8(te_x), te_y


def _sync(device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize()


def run(argv=None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=120.0, help="training budget after the warm-up (wall clock)")
    parser.add_argument("--baseline-steps", type=int, default=20)
    parser.add_argument("--workers", type=int, default=min(8, os.cpu_count() or 1),
                        help="DataLoader workers of the baseline (default: up to 8, no more than the CPUs)")
    parser.add_argument("--dry-run", action="store_true", help="tiny sizes on the CPU, same code path")
    args = parser.parse_args(argv)

    device = torch.device("cpu") if args.dry_run else get_device()
    profile = FULL
    if args.dry_run:                     # the same recipe at toy size; compiling would dominate on a CPU
        profile = FULL.replace(batch_size=8, epochs=2, compile=False, knn_k=5, warmup_epochs=1,
                               cnn_widths=(8, 16, 16, 16), backbone="small_cnn")
    name, tr_x, tr_y, te_x, te_y = load_data(profile, args.dry_run)
    half = amp_dtype(device) if profile.amp else None
    print(f"device {device} | data {name}: train {tuple(tr_x.shape)} {tr_x.dtype} | backbone {profile.backbone}, "
          f"batch {profile.batch_size}, autocast {str(half).removeprefix('torch.') if half else 'off (float32)'}, "
          f"compile {profile.compile}, optimizer {profile.optimizer} + {profile.lr_schedule}")

    # 1. host synchronisations and copies, on a short eager run of the same path
    torch.manual_seed(0)
    probe = SimCLR(make_encoder(profile.replace(compile=False)), profile.proj_dim)
    n_probe = min(len(tr_x), 4 * profile.batch_size)
    with count_host_syncs() as syncs:
        train_simclr(probe, tr_x[:n_probe], profile.replace(compile=False), epochs=1, device=device, progress=False)
    syncs_per_step = syncs.step_total / max(syncs.steps, 1)
    loop_reads_per_step = (syncs.total - syncs.step_total) / max(syncs.steps, 1)

    # 2. the warm-up: compiling (forward and backward) and two steps, timed apart
    torch.manual_seed(0)
    model = SimCLR(make_encoder(profile), profile.proj_dim)
    started = time.perf_counter()
    train_simclr(model, tr_x[:2 * profile.batch_size], profile, epochs=1, device=device, progress=False)
    _sync(device)
    warmup_s = time.perf_counter() - started
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats()

    # 3. the timed run, through fit, for the budget
    steps_per_epoch = len(tr_x) // profile.batch_size
    start = time.perf_counter()
    history = train_simclr(model, tr_x, profile, device=device, max_seconds=args.seconds)
    _sync(device)
    end = time.perf_counter()
    steps = len(history.loss)
    views_per_s = 2 * steps * profile.batch_size / (end - start)
    peak_gib = torch.cuda.max_memory_allocated() / 2 ** 30 if device.type == "cuda" else float("nan")

    # 4. k-NN of the encoder on the test split
    knn = knn_accuracy(embed(model.encoder, tr_x[:10000]), tr_y[:10000], embed(model.encoder, te_x), te_y,
                       k=min(profile.knn_k, len(tr_y)))

    # 5. the usual recipe on the same (compiled) model, optimizer and precision
    images = tr_x[:max(args.baseline_steps + 2, 4) * profile.batch_size].float() / 255
    theirs = dataloader_views_per_s(model, images, profile.augment, profile.batch_size,
                                    2 if args.dry_run else args.baseline_steps, device, profile,
                                    0 if args.dry_run else args.workers)

    result = {"steps": steps, "seconds": end - start, "warmup_s": warmup_s, "views_per_s": views_per_s,
              "peak_gib": peak_gib, "syncs_per_step": syncs_per_step, "loop_reads_per_step": loop_reads_per_step,
              "knn": knn, "dataloader_views_per_s": theirs, "final_loss": history.loss[-1]}
    print(f"warm-up (compiling forward and backward, 2 steps): {warmup_s:.1f} s")
    print(f"trained {steps} steps ({steps / max(steps_per_epoch, 1):.2f} epochs) in {end - start:.1f} s after it; "
          f"loss {history.loss[0]:.3f} → {history.loss[-1]:.3f}")
    print(f"views/s through fit:            {views_per_s:10.0f}")
    print(f"DataLoader + per-sample v2:     {theirs:10.0f}   (ratio {views_per_s / theirs:.2f}x; same model, "
          "optimizer and precision)")
    print(f"peak GPU memory:                {peak_gib:10.2f} GiB")
    print(f"host syncs/copies in a step:    {syncs_per_step:10.2f}   (the loop's reads: {loop_reads_per_step:.2f} "
          f"per step, one every {profile.log_every} steps on a GPU)")
    print(f"k-NN accuracy (test, k={min(profile.knn_k, len(tr_y))}): {knn:10.3f}")
    return result


if __name__ == "__main__":
    run()
