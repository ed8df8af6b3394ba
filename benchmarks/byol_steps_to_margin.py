"""How many steps BYOL needs, against SimCLR, to beat the baselines by 10 points k-NN.

Notebooks 06 and 07 ask every trained method to beat raw pixels and a random-init
encoder by 10 points of k-NN accuracy. SimCLR does it within notebook 07's 4-epoch
sweep run; BYOL with the same recipe (batch 128, random crops, m = 0.99) needs several
times longer on the quick profile's cluttered digits, so notebook 07 only shows it not
collapsing, and notebook 06 trains it with the faster recipe this script found (batch 32,
m = 0.8, no crops). This script measures the gap instead of arguing about it: both
methods train on the profile's data with the same encoder (and, unless the flags say
otherwise, the same batch and augmentations), are scored by k-NN every `--eval-every`
epochs, and it prints the first step (and wall second) at which each one reached the
bar, and BYOL's ratio to SimCLR, all measured in this one run.

    python benchmarks/byol_steps_to_margin.py                       # quick profile, ~3 min on 2 cores
    python benchmarks/byol_steps_to_margin.py --momentum 0.96 --byol-epochs 24   # a faster-moving target
    python benchmarks/byol_steps_to_margin.py --momentum 0.9 --byol-no-crop --byol-epochs 16 --seed 1
    python benchmarks/byol_steps_to_margin.py --byol-batch 32 --momentum 0.8 --byol-no-crop --byol-epochs 8
                                                                    # notebook 06's BYOL recipe
    python benchmarks/byol_steps_to_margin.py --profile full        # CIFAR-10, ResNet-18, on a GPU
"""
from __future__ import annotations

import argparse
import time

from contrastive_lab.augment import AugmentConfig
from contrastive_lab.data import load_image_dataset
from contrastive_lab.device import get_device, seed_everything
from contrastive_lab.evaluate import knn_accuracy, knn_monitor, raw_pixel_features
from contrastive_lab.methods.byol import BYOL, train_byol
from contrastive_lab.methods.simclr import SimCLR, train_simclr
from contrastive_lab.models import make_encoder, prepare_model
from contrastive_lab.profiles import get_profile


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--profile", default=None, help="quick or full (default: by device)")
    parser.add_argument("--batch", type=int, default=None, help="batch size (default: the profile's)")
    parser.add_argument("--byol-batch", type=int, default=None, help="BYOL's batch size (default: --batch)")
    parser.add_argument("--simclr-epochs", type=int, default=8)
    parser.add_argument("--byol-epochs", type=int, default=40)
    parser.add_argument("--eval-every", type=int, default=2, help="epochs between k-NN scores")
    parser.add_argument("--momentum", type=float, default=0.99, help="BYOL's target EMA momentum")
    parser.add_argument("--margin", type=float, default=0.10, help="points over the best baseline")
    parser.add_argument("--byol-no-crop", action="store_true",
                        help="train BYOL on colour augmentations only (no random crops)")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()

    profile = get_profile(args.profile)
    device = get_device()
    batch = args.batch or profile.batch_size
    byol_batch = args.byol_batch or batch
    data = load_image_dataset(profile.dataset, profile.n_train, profile.n_test)

    def knn_score(encoder) -> float:
        return knn_monitor(encoder, data.train_x, data.train_y, data.test_x, data.test_y, profile.knn_k)()["knn"]

    seed_everything(args.seed)
    raw = knn_accuracy(raw_pixel_features(data.train_x), data.train_y,
                       raw_pixel_features(data.test_x), data.test_y, k=profile.knn_k)
    init = knn_score(prepare_model(make_encoder(profile), device, profile.channels_last))
    bar = max(raw, init) + args.margin
    print(f"{profile.name} profile, batch {batch} (BYOL {byol_batch}), {device.type}")
    print(f"raw pixels {raw:.3f}, random init {init:.3f}: the bar is {bar:.3f}")

    def run(name: str, build, train, epochs: int, run_batch: int, **kwargs) -> tuple[int | None, float | None]:
        # train build(), scoring k-NN every eval_every epochs; returns the first (step, seconds) at the bar
        steps_per_epoch = len(data.train_x) // run_batch  # minibatches drops the last partial batch
        seed_everything(args.seed)
        model = build()
        start, calls, reached = time.perf_counter(), [0], [None, None]

        def evaluate() -> dict[str, float]:
            calls[0] += 1
            step = min(calls[0] * args.eval_every, epochs) * steps_per_epoch
            seconds = time.perf_counter() - start
            score = knn_score(model.encoder)
            print(f"  {name:>6}  step {step:5d}  {seconds:6.0f} s  k-NN {score:.3f}", flush=True)
            if reached[0] is None and score >= bar:
                reached[:] = [step, seconds]
            return {"knn": score}

        train(model, data.train_x, profile, epochs=epochs, batch_size=run_batch, device=device, seed=args.seed,
              evaluate=evaluate, eval_every=args.eval_every, progress=False, **kwargs)
        return tuple(reached)

    simclr = run("SimCLR", lambda: SimCLR(make_encoder(profile), proj_dim=profile.proj_dim), train_simclr,
                 args.simclr_epochs, batch, temperature=0.2)
    byol = run("BYOL", lambda: BYOL(make_encoder(profile), proj_dim=profile.proj_dim,
                                    pred_hidden=4 * profile.proj_dim, momentum=args.momentum),
               train_byol, args.byol_epochs, byol_batch,
               augment=AugmentConfig().without("crop") if args.byol_no_crop else AugmentConfig())

    for name, (step, seconds) in (("SimCLR", simclr), ("BYOL", byol)):
        print(f"{name:>6}: " + (f"reached {bar:.3f} at step {step} ({seconds:.0f} s)" if step
                                else "did not reach the bar in this run"))
    if simclr[0] and byol[0]:
        ratio = byol[0] * byol_batch / (simclr[0] * batch)
        print(f"BYOL / SimCLR: {ratio:.1f}× the images seen ({byol[0] / simclr[0]:.1f}× the steps), "
              f"{byol[1] / simclr[1]:.1f}× the seconds")


if __name__ == "__main__":
    main()
