"""Temperature and batch size, tuned together: SimCLR's validation k-NN on a small τ × batch grid.

Notebook 07 sweeps τ at one batch size; the temperature that works best can move with the batch
(more negatives per anchor at a larger batch). This grid trains SimCLR (the course's encoder and
projection head, NT-Xent, the digits recipe without crops as in notebook 07) on the first 2,000
training images of the quick profile for the same number of epochs at every cell, so a larger
batch also means fewer steps, as it does when a budget of epochs is fixed. Each run is scored by
k-NN (k = 20) on the validation images (carved from the training data), under seeds 0, 1, 2.

    python benchmarks/tau_batch.py        # 18 short runs; a few minutes on 2 idle cores

writes benchmarks/results/tau_batch.json: {"seeds": [...], "values": {"τ = 0.2 · batch 32": [...], ...},
"temperatures": [...], "batch_sizes": [...]}, in the format of `contrastive_lab.spread.load_spread`.
"""
from __future__ import annotations

import argparse
import json
import subprocess
import time
from pathlib import Path

import torch

from contrastive_lab.atomic import write_atomically
from contrastive_lab.data import load_image_dataset
from contrastive_lab.evaluate import knn_accuracy
from contrastive_lab.methods import SimCLR, train_simclr
from contrastive_lab.models import embed, make_encoder
from contrastive_lab.profiles import QUICK
from contrastive_lab.spread import RESULTS_DIR

TEMPERATURES = (0.05, 0.2, 0.5)
BATCH_SIZES = (32, 128)
N_IMAGES, EPOCHS = 2000, 4


def name(tau: float, batch: int) -> str:
    return f"τ = {tau} · batch {batch}"


def run_seed(seed: int) -> dict[str, float]:
    data = load_image_dataset("cluttered_digits", QUICK.n_train, QUICK.n_test, n_val=QUICK.n_val)
    x, y = data.train_x[:N_IMAGES], data.train_y[:N_IMAGES]
    recipe = QUICK.augment.without("crop")
    out = {}
    for batch in BATCH_SIZES:
        for tau in TEMPERATURES:
            profile = QUICK.replace(batch_size=batch, epochs=EPOCHS)
            torch.manual_seed(seed)
            model = SimCLR(make_encoder(profile), profile.proj_dim)
            train_simclr(model, x, profile, augment=recipe, epochs=EPOCHS, temperature=tau, seed=seed,
                         progress=False)
            acc = knn_accuracy(embed(model.encoder, x), y, embed(model.encoder, data.val_x), data.val_y, 20)
            out[name(tau, batch)] = round(acc, 4)
            print(f"seed {seed}  {name(tau, batch)}: validation k-NN {acc:.3f}", flush=True)
    return out


def main(argv=None) -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2])
    parser.add_argument("--out", type=Path, default=RESULTS_DIR / "tau_batch.json")
    args = parser.parse_args(argv)
    parts = {seed: run_seed(seed) for seed in args.seeds}
    names = list(parts[args.seeds[0]])
    commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True).stdout.strip()
    result = {"seeds": args.seeds, "values": {n: [parts[s][n] for s in args.seeds] for n in names},
              "temperatures": list(TEMPERATURES), "batch_sizes": list(BATCH_SIZES),
              "what": f"SimCLR validation k-NN (k = 20), {N_IMAGES} cluttered digits, {EPOCHS} epochs at every "
                      "batch size, colour jitter + grayscale, no crop", "commit": commit}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    write_atomically(args.out, lambda tmp: Path(tmp).write_text(json.dumps(result, indent=1) + "\n"))
    print(f"wrote {args.out}")


if __name__ == "__main__":
    start = time.perf_counter()
    main()
    print(f"({time.perf_counter() - start:.0f} s)")
