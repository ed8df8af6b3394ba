"""MoCo's and SimCLR's settings at notebook 06's small batch, scored on the VALIDATION split over seeds.

Notebook 06 compares SimCLR and MoCo at one seed. This script measures what one
seed cannot: how much a setting moves the validation k-NN compared with the
spread between seeds. Every run trains for the same number of steps at the
notebook's batch (a quarter of the profile's) with its augmentations (colour
only on the digits), from `seed_everything(seed)`, and is scored with k-NN on
the validation split; the test split is never read. It prints one line per run
and a table of the mean and the range over seeds.

    python benchmarks/moco_validation.py                               # MoCo τ ∈ {0.05, 0.1, 0.2}, SimCLR τ ∈ {0.1, 0.2}
    python benchmarks/moco_validation.py --taus 0.1 --groups 1 2       # shuffle-BN off / on
    python benchmarks/moco_validation.py --taus 0.1 --queues 32 256 4096 --momenta 0 0.9 0.99 --no-simclr
    python benchmarks/moco_validation.py --profile full                # CIFAR-10 on a GPU
    python benchmarks/moco_validation.py --taus 0.1 --momenta 0.99 --groups 1 --queues 8 1024 \
        --batch-divisor 16 --epochs 3 --no-simclr                      # section 9's batch of 8
"""
from __future__ import annotations

import argparse
import itertools
import statistics
import time

from contrastive_lab.data import load_image_dataset
from contrastive_lab.device import get_device, seed_everything
from contrastive_lab.evaluate import knn_monitor
from contrastive_lab.methods.moco import MoCo, train_moco
from contrastive_lab.methods.simclr import SimCLR, train_simclr
from contrastive_lab.models import make_encoder
from contrastive_lab.profiles import get_profile


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--profile", default=None, help="quick or full (default: by device)")
    parser.add_argument("--epochs", type=int, default=None, help="epochs per run (default: sweep_epochs // 2)")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--taus", type=float, nargs="+", default=[0.05, 0.1, 0.2], help="MoCo temperatures")
    parser.add_argument("--momenta", type=float, nargs="+", default=[0.99])
    parser.add_argument("--queues", type=int, nargs="+", default=[256])
    parser.add_argument("--groups", type=int, nargs="+", default=[2], help="bn_groups (1 = no shuffle-BN)")
    parser.add_argument("--simclr-taus", type=float, nargs="+", default=[0.1, 0.2])
    parser.add_argument("--no-simclr", action="store_true")
    parser.add_argument("--batch-divisor", type=int, default=4,
                        help="batch = the profile's batch // this (4: section 7's batch, 16: section 9's)")
    args = parser.parse_args()

    profile = get_profile(args.profile)
    device = get_device()
    data = load_image_dataset(profile.dataset, profile.n_train, profile.n_test, n_val=profile.n_val)
    batch = profile.batch_size // args.batch_divisor
    epochs = args.epochs or max(1, profile.sweep_epochs // 2)
    augment = profile.augment.without("crop") if profile.dataset == "cluttered_digits" else profile.augment
    steps = epochs * (len(data.train_x) // batch)
    print(f"{profile.name} profile, batch {batch}, {steps} steps per run, scored on {len(data.val_x)} "
          f"validation images, {device.type}", flush=True)

    def score(model, train, **kwargs) -> float:
        monitor = knn_monitor(model.encoder, data.train_x, data.train_y, data.val_x, data.val_y, profile.knn_k)
        history = train(model, data.train_x, profile, augment=augment, batch_size=batch, epochs=epochs,
                        evaluate=monitor, eval_every=epochs, device=device, progress=False, **kwargs)
        return history.last("knn")

    settings = []
    if not args.no_simclr:
        settings += [("SimCLR", {"tau": t}) for t in args.simclr_taus]
    settings += [("MoCo", {"tau": t, "m": m, "K": k, "groups": gr})
                 for t, m, k, gr in itertools.product(args.taus, args.momenta, args.queues, args.groups)]
    results = {}
    for (method, s), seed in itertools.product(settings, args.seeds):
        start = time.perf_counter()
        seed_everything(seed)
        if method == "SimCLR":
            model = SimCLR(make_encoder(profile), proj_dim=profile.proj_dim)
            value = score(model, train_simclr, temperature=s["tau"], seed=seed)
        else:
            model = MoCo(make_encoder(profile), proj_dim=profile.proj_dim, queue_size=s["K"], momentum=s["m"],
                         bn_groups=s["groups"])
            value = score(model, train_moco, temperature=s["tau"], seed=seed)
        name = f"{method:<6} " + " ".join(f"{k}={v:g}" for k, v in s.items())
        results.setdefault(name, []).append(value)
        print(f"  {name:<40} seed {seed}: validation k-NN {value:.3f}  ({time.perf_counter() - start:.0f} s)",
              flush=True)
    print(f"\n{'setting':<40} {'mean':>6}  {'min':>6}  {'max':>6}  (over seeds {args.seeds})")
    for name, values in results.items():
        print(f"{name:<40} {statistics.mean(values):6.3f}  {min(values):6.3f}  {max(values):6.3f}")


if __name__ == "__main__":
    main()
