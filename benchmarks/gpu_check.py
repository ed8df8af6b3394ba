"""The GPU check: the full profile's SimCLR through the real `train_simclr` path, in one command.

    python benchmarks/gpu_check.py                  # on a CUDA machine: a 120 s budget
    python benchmarks/gpu_check.py --seconds 300
    python benchmarks/gpu_check.py --dry-run        # a few tiny steps on the CPU, same code path

It trains the full profile's SimCLR (ResNet-18 with the CIFAR stem, bf16 autocast,
channels_last, torch.compile, AdamW with warm-up and cosine decay, images kept on
the GPU as uint8) on CIFAR-10 when it is already in the cache, and otherwise on
50,000 offline cluttered digits at 32 × 32 (a machine without network has only
those), for a fixed wall-clock budget. Then it prints, measured in this one run:
- views per second through `fit` (after the first epoch, which includes compiling),
- peak GPU memory,
- host synchronisations per training step (counted on a short eager run of the
  same path with `device.count_host_syncs`),
- k-NN accuracy of the encoder on the test split after the budget,
- views per second of the usual recipe (a DataLoader with per-sample torchvision
  v2 transforms) on the same model, and the ratio.
"""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from simclr_throughput import dataloader_views_per_s  # noqa: E402  (the baseline, written once)

from contrastive_lab.data import DatasetUnavailable, load_real_dataset, make_cluttered_digits  # noqa: E402
from contrastive_lab.device import count_host_syncs, get_device  # noqa: E402
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


def run(argv=None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=120.0, help="training budget (wall clock)")
    parser.add_argument("--baseline-steps", type=int, default=20)
    parser.add_argument("--workers", type=int, default=8)
    parser.add_argument("--dry-run", action="store_true", help="tiny sizes on the CPU, same code path")
    args = parser.parse_args(argv)

    device = torch.device("cpu") if args.dry_run else get_device()
    profile = FULL
    if args.dry_run:                     # the same recipe at toy size; compiling would dominate on a CPU
        profile = FULL.replace(batch_size=8, epochs=2, compile=False, knn_k=5, warmup_epochs=1,
                               cnn_widths=(8, 16, 16, 16), backbone="small_cnn")
    name, tr_x, tr_y, te_x, te_y = load_data(profile, args.dry_run)
    print(f"device {device} | data {name}: train {tuple(tr_x.shape)} {tr_x.dtype} | backbone {profile.backbone}, "
          f"batch {profile.batch_size}, amp {profile.amp}, compile {profile.compile}, "
          f"optimizer {profile.optimizer} + {profile.lr_schedule}")

    # 1. host synchronisations per step, on a short eager run of the same path
    torch.manual_seed(0)
    probe = SimCLR(make_encoder(profile.replace(compile=False)), profile.proj_dim)
    n_probe = min(len(tr_x), 4 * profile.batch_size)
    with count_host_syncs() as syncs:
        h = train_simclr(probe, tr_x[:n_probe], profile.replace(compile=False, log_every=10 ** 6),
                         epochs=1, device=device, progress=False)
    syncs_per_step = syncs.total / len(h.loss)

    # 2. the timed run, through fit, for the budget
    torch.manual_seed(0)
    model = SimCLR(make_encoder(profile), profile.proj_dim)
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats()
    steps_per_epoch = len(tr_x) // profile.batch_size
    epoch_ends = []
    start = time.perf_counter()
    history = train_simclr(model, tr_x, profile, device=device, max_seconds=args.seconds,
                           evaluate=lambda: epoch_ends.append(time.perf_counter()) or {}, eval_every=1)
    if device.type == "cuda":
        torch.cuda.synchronize()
    end = time.perf_counter()
    steps = len(history.loss)
    if len(epoch_ends) >= 2:              # after the first epoch (compilation, warm-up of kernels)
        later = steps - steps_per_epoch
        views_per_s = 2 * later * profile.batch_size / (end - epoch_ends[0])
    else:
        views_per_s = 2 * steps * profile.batch_size / (end - start)
    peak_gib = torch.cuda.max_memory_allocated() / 2 ** 30 if device.type == "cuda" else float("nan")

    # 3. k-NN of the encoder on the test split
    knn = knn_accuracy(embed(model.encoder, tr_x[:10000]), tr_y[:10000], embed(model.encoder, te_x), te_y,
                       k=min(profile.knn_k, len(tr_y)))

    # 4. the usual recipe on the same model
    torch.manual_seed(0)
    baseline = SimCLR(make_encoder(profile.replace(compile=False)), profile.proj_dim).to(device)
    images = tr_x[:max(args.baseline_steps + 2, 4) * profile.batch_size].float() / 255
    theirs = dataloader_views_per_s(baseline, images, profile.augment, profile.batch_size,
                                    2 if args.dry_run else args.baseline_steps, device, profile,
                                    0 if args.dry_run else args.workers)

    result = {"steps": steps, "seconds": end - start, "views_per_s": views_per_s, "peak_gib": peak_gib,
              "syncs_per_step": syncs_per_step, "knn": knn, "dataloader_views_per_s": theirs,
              "final_loss": history.loss[-1]}
    print(f"trained {steps} steps ({steps / max(steps_per_epoch, 1):.2f} epochs) in {end - start:.1f} s; "
          f"loss {history.loss[0]:.3f} → {history.loss[-1]:.3f}")
    print(f"views/s through fit:            {views_per_s:10.0f}")
    print(f"DataLoader + per-sample v2:     {theirs:10.0f}   (ratio {views_per_s / theirs:.2f}x)")
    print(f"peak GPU memory:                {peak_gib:10.2f} GiB")
    print(f"host syncs per training step:   {syncs_per_step:10.2f}")
    print(f"k-NN accuracy (test, k={min(profile.knn_k, len(tr_y))}): {knn:10.3f}")
    return result


if __name__ == "__main__":
    run()
