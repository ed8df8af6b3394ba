"""Do random crops help SimCLR on the cluttered digits? Validation k-NN by crop scale, two budgets.

The digits recipe (`augment.DIGITS_RECIPE`) is chosen from this measurement, and notebook 04
prints its table. SimCLR with the digits recipe's colour jitter and grayscale, and either no
crop or random resized crops of at least 80 %, 60 % or 30 % of the area, trained from the
same initialization for
- notebook 04's budget: 2,000 images, batch 64, 4 epochs (124 steps), and
- notebook 05's budget: 5,000 images, batch 128, 12 epochs (468 steps);
each scored by k-NN (k = 20) on the validation images (carved from the training data).

    python benchmarks/crop_scale.py          # about 15 minutes on 2 idle cores
"""
from __future__ import annotations

import time
from dataclasses import replace

import torch

from contrastive_lab.augment import AugmentConfig
from contrastive_lab.data import load_image_dataset
from contrastive_lab.evaluate import knn_accuracy
from contrastive_lab.methods import SimCLR, train_simclr
from contrastive_lab.models import embed, make_encoder
from contrastive_lab.profiles import QUICK

SCALES = (None, (0.8, 1.0), (0.6, 1.0), (0.3, 1.0))


def main() -> None:
    data = load_image_dataset("cluttered_digits", QUICK.n_train, QUICK.n_test, n_val=QUICK.n_val)
    budgets = {"124 steps": (data.train_x[:2000], data.train_y[:2000], QUICK.replace(batch_size=64, epochs=4)),
               "468 steps": (data.train_x, data.train_y, QUICK)}
    colour = AugmentConfig().without("crop")
    print(f"{'crop (min area)':>16}  " + "  ".join(f"{b:>9}" for b in budgets))
    for scale in SCALES:
        cfg = colour if scale is None else replace(colour, crop_scale=scale)
        row = []
        for x, y, profile in budgets.values():
            torch.manual_seed(0)
            model = SimCLR(make_encoder(profile), profile.proj_dim)
            train_simclr(model, x, profile, augment=cfg, progress=False)
            row.append(knn_accuracy(embed(model.encoder, x), y, embed(model.encoder, data.val_x), data.val_y, 20))
        print(f"{'none' if scale is None else f'{scale[0]:.0%}':>16}  " + "  ".join(f"{a:9.3f}" for a in row),
              flush=True)


if __name__ == "__main__":
    start = time.perf_counter()
    main()
    print(f"({time.perf_counter() - start:.0f} s)")
