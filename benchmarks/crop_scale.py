"""Do random crops help SimCLR on the cluttered digits? Validation k-NN by crop scale, two budgets, three seeds.

The digits recipe (`augment.DIGITS_RECIPE`, crops of at least 80 % of the area) is checked by this
measurement (notebook 04 points to it). SimCLR with the digits recipe's colour jitter
and grayscale, and either no crop or random resized crops of at least 80 % of the area, on the
first 2,000 training images at batch 64, for
- notebook 04's budget: 4 epochs (124 steps), and
- four times that: 16 epochs (496 steps);
each scored by k-NN (k = 20) on the validation images (carved from the training data), with the
2,000 training images as memory bank. Every (crop, budget) pair is run under seeds 0, 1, 2 (the
seed sets the initialization, the batch order and the augmentations).

    python benchmarks/crop_scale.py                      # every seed, one after another
    python benchmarks/crop_scale.py --seeds 1 --part-dir /tmp/crops   # one seed (run several at once)
    python benchmarks/crop_scale.py --merge /tmp/crops   # then join the parts

writes benchmarks/results/crop_scale.json: {"seeds": [...], "values": {"none · 124 steps": [...], ...}}
in the format of `contrastive_lab.spread.load_spread`.
"""
from __future__ import annotations

import argparse
import json
import subprocess
import time
from dataclasses import replace
from pathlib import Path

import torch

from contrastive_lab.atomic import write_atomically
from contrastive_lab.augment import AugmentConfig
from contrastive_lab.data import load_image_dataset
from contrastive_lab.evaluate import knn_accuracy
from contrastive_lab.methods import SimCLR, train_simclr
from contrastive_lab.models import embed, make_encoder
from contrastive_lab.profiles import QUICK
from contrastive_lab.spread import RESULTS_DIR

SCALES = {"none": None, "80 %": (0.8, 1.0)}
BUDGETS = {"124 steps": 4, "496 steps": 16}          # epochs of 2,000 images at batch 64
N_IMAGES, BATCH = 2000, 64


def run_seed(seed: int) -> dict[str, float]:
    """Validation k-NN of every (crop, budget) pair under one seed."""
    data = load_image_dataset("cluttered_digits", QUICK.n_train, QUICK.n_test, n_val=QUICK.n_val)
    x, y = data.train_x[:N_IMAGES], data.train_y[:N_IMAGES]
    colour = AugmentConfig().without("crop")
    out = {}
    for scale_name, scale in SCALES.items():
        cfg = colour if scale is None else replace(colour, crop_scale=scale)
        for budget_name, epochs in BUDGETS.items():
            profile = QUICK.replace(batch_size=BATCH, epochs=epochs)
            torch.manual_seed(seed)
            model = SimCLR(make_encoder(profile), profile.proj_dim)
            train_simclr(model, x, profile, augment=cfg, epochs=epochs, seed=seed, progress=False)
            acc = knn_accuracy(embed(model.encoder, x), y, embed(model.encoder, data.val_x), data.val_y, 20)
            out[f"{scale_name} · {budget_name}"] = round(acc, 4)
            print(f"seed {seed}  crop {scale_name:>5}  {budget_name}: validation k-NN {acc:.3f}", flush=True)
    return out


def write_results(parts: dict[int, dict[str, float]], path: Path) -> None:
    seeds = sorted(parts)
    names = list(parts[seeds[0]])
    commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True).stdout.strip()
    result = {"seeds": seeds, "values": {n: [parts[s][n] for s in seeds] for n in names},
              "what": "SimCLR validation k-NN (k = 20), 2,000 cluttered digits, batch 64, colour jitter "
                      "+ grayscale, no crop or crops of >= 80 % of the area", "commit": commit}
    path.parent.mkdir(parents=True, exist_ok=True)
    write_atomically(path, lambda tmp: Path(tmp).write_text(json.dumps(result, indent=1) + "\n"))
    print(f"wrote {path}")


def main(argv=None) -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2])
    parser.add_argument("--part-dir", type=Path, help="write one part per seed here instead of the results file")
    parser.add_argument("--merge", type=Path, help="join the parts in this folder into the results file")
    parser.add_argument("--out", type=Path, default=RESULTS_DIR / "crop_scale.json")
    args = parser.parse_args(argv)
    if args.merge:
        parts = {int(p.stem.split("_")[-1]): json.loads(p.read_text()) for p in args.merge.glob("seed_*.json")}
        write_results(parts, args.out)
        return
    parts = {}
    for seed in args.seeds:
        parts[seed] = run_seed(seed)
        if args.part_dir:
            args.part_dir.mkdir(parents=True, exist_ok=True)
            (args.part_dir / f"seed_{seed}.json").write_text(json.dumps(parts[seed]))
    if not args.part_dir:
        write_results(parts, args.out)


if __name__ == "__main__":
    start = time.perf_counter()
    main()
    print(f"({time.perf_counter() - start:.0f} s)")
