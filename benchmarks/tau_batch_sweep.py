"""SimCLR's temperature τ and batch size, swept jointly, scored on the VALIDATION split over seeds.

Notebook 07 sweeps τ at one batch size. The best τ can move with the batch size (a
bigger batch puts more negatives in every softmax), so the two are tuned together.
This script trains SimCLR as notebook 07 trains it, at every (τ, batch) of the grid and
every seed in --seeds:

- the same data (the profile's dataset, its validation split carved from the training
  data as `load_image_dataset(..., n_val=profile.n_val)` carves it; the test split is
  never read), the same encoder and projection head, the same augmentations (colour only
  on the digits, as in 07), the course's optimizer (`train_simclr`, `views.train_on_views`);
- the same number of epochs at every batch size, so every run sees the same examples
  (a batch of 32 takes 4 times the steps of a batch of 128);
- seed s: `seed_everything(s)` before the model is built, and `seed=s` for the batch
  order and the augmentations. The data is the same for every seed.

Each run is scored as notebook 07 scores it: cosine k-NN accuracy (k = profile.knn_k) of
the encoder's features, validation images against the training images. The random-init
encoder of each seed (the weights that seed's runs start from) is scored beside them.

It writes every run, and the mean, min and max over seeds of each (τ, batch) cell, to
benchmarks/results/tau_batch.json, which notebook 07 loads. The file is rewritten after
every run, so an interrupted sweep keeps what it finished. Sweeps run side by side are
joined with --merge, which trains nothing:

    OMP_NUM_THREADS=1 python benchmarks/tau_batch_sweep.py                  # what notebook 07 loads
    OMP_NUM_THREADS=1 python benchmarks/tau_batch_sweep.py --seeds 0 --out /tmp/a.json &
    OMP_NUM_THREADS=1 python benchmarks/tau_batch_sweep.py --seeds 1 2 --out /tmp/b.json
    python benchmarks/tau_batch_sweep.py --merge /tmp/a.json /tmp/b.json
    python benchmarks/tau_batch_sweep.py --temperatures 0.1 0.2 --batches 64 256 --epochs 2 --out /tmp/c.json

--epochs defaults to half of notebook 07's runs that must learn (`profile.sweep_epochs // 2`:
2 on the quick profile, 312 steps at batch 32 and 78 at batch 128). The batch sizes stay at
or below the profile's (128 on the quick profile): at 2 epochs of 5,000 images a batch of
512 would take 18 steps in all (after one epoch, 9 steps, it scored below its random init).
On one loaded CPU core the default grid (4 τ × 3 batch sizes × 3 seeds) takes about half an hour.
"""
from __future__ import annotations

import argparse
import platform
import statistics
import time
from pathlib import Path

import torch

from contrastive_lab.data import load_image_dataset
from contrastive_lab.device import get_device, seed_everything
from contrastive_lab.evaluate import knn_accuracy
from contrastive_lab.methods.simclr import SimCLR, train_simclr
from contrastive_lab.models import embed, make_encoder, prepare_model
from contrastive_lab.profiles import get_profile
from sweep_files import add_sweep_options, read_comparable, write

OUT = Path(__file__).resolve().parent / "results" / "tau_batch.json"
METRIC = "validation k-NN"
COMPARABLE = ("profile", "epochs", "n_train", "n_val", "knn_k", "augment")     # what --merge requires equal


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--profile", default=None, help="quick or full (default: by device)")
    parser.add_argument("--temperatures", type=float, nargs="+", default=[0.05, 0.1, 0.2, 0.5])
    parser.add_argument("--batches", type=int, nargs="+", default=[32, 64, 128])
    parser.add_argument("--epochs", type=int, default=None,
                        help="epochs at every batch size (default: profile.sweep_epochs // 2)")
    add_sweep_options(parser, OUT)
    args = parser.parse_args()
    if args.merge:
        parts = read_comparable(args.merge, COMPARABLE)
        runs = [run for part in parts for run in part["runs"]]
        baselines = {seed: value for part in parts for seed, value in part["random init"].items()}
        write(args.out, {**parts[0], "random init": baselines, "summary": summarize(runs), "runs": runs})
        return
    if any(t <= 0 for t in args.temperatures):
        raise SystemExit(f"--temperatures must all be > 0, got {args.temperatures}")

    profile = get_profile(args.profile)
    device = get_device()
    data = load_image_dataset(profile.dataset, profile.n_train, profile.n_test, n_val=profile.n_val)
    augment = profile.augment.without("crop") if profile.dataset == "cluttered_digits" else profile.augment
    epochs = args.epochs or max(1, profile.sweep_epochs // 2)
    too_big = [b for b in args.batches if b > len(data.train_x) // 2]
    if too_big:
        raise SystemExit(f"--batches {too_big}: a batch needs at least 2 steps per epoch on "
                         f"{len(data.train_x)} training images")

    def val_knn(encoder) -> float:
        return knn_accuracy(embed(encoder, data.train_x), data.train_y, embed(encoder, data.val_x), data.val_y,
                            k=profile.knn_k)

    record = {"what": __doc__.split("\n")[0], "profile": profile.name, "dataset": profile.dataset,
              "device": device.type, "epochs": epochs, "n_train": len(data.train_x), "n_val": len(data.val_x),
              "knn_k": profile.knn_k, "lr": profile.lr, "optimizer": profile.optimizer, "augment": repr(augment),
              "metric": METRIC, "chance": 1 / len(data.classes),
              "torch": torch.__version__, "machine": f"{platform.machine()}, {torch.get_num_threads()} threads"}
    baselines, runs = {}, []
    for seed in args.seeds:
        seed_everything(seed)
        baselines[str(seed)] = val_knn(prepare_model(make_encoder(profile), device, profile.channels_last))
        print(f"seed {seed}: random-init encoder, validation k-NN {baselines[str(seed)]:.3f}", flush=True)
    for seed in args.seeds:                   # seeds outermost: an interrupted sweep keeps whole grids
        for batch in args.batches:
            for tau in args.temperatures:
                seed_everything(seed)
                model = SimCLR(make_encoder(profile), proj_dim=profile.proj_dim)
                started = time.perf_counter()
                history = train_simclr(model, data.train_x, profile, temperature=tau, augment=augment,
                                       batch_size=batch, epochs=epochs, device=device, seed=seed, progress=False)
                seconds = time.perf_counter() - started
                run = {"tau": tau, "batch": batch, "seed": seed, "steps": len(history.loss),
                       "examples seen": len(history.loss) * batch, "train seconds": round(seconds, 1),
                       "first loss": history.loss[0], "last loss": history.loss[-1], METRIC: val_knn(model.encoder)}
                runs.append(run)
                print(f"batch {batch:>4} τ {tau:<5} seed {seed}: {run['steps']:>4} steps {seconds:5.0f} s  "
                      f"loss {run['first loss']:.2f} → {run['last loss']:.2f}  {METRIC} {run[METRIC]:.3f}", flush=True)
                write(args.out, {**record, "random init": baselines, "summary": summarize(runs), "runs": runs})
    print(f"wrote {args.out}")


def summarize(runs: list[dict]) -> list[dict]:
    """Mean, min and max over seeds of the validation k-NN, for each (τ, batch) cell."""
    summary = []
    for batch in sorted({r["batch"] for r in runs}):
        for tau in sorted({r["tau"] for r in runs}):
            group = sorted((r for r in runs if r["batch"] == batch and r["tau"] == tau), key=lambda r: r["seed"])
            if group:
                values = [r[METRIC] for r in group]
                summary.append({"tau": tau, "batch": batch, "seeds": [r["seed"] for r in group],
                                "steps": group[0]["steps"],
                                METRIC: {"mean": statistics.mean(values), "min": min(values), "max": max(values)}})
    return summary


if __name__ == "__main__":
    main()
