"""SigLIP's sigmoid loss against CLIP's softmax at several batch sizes, over seeds.

Notebook 08 trains CLIP and SigLIP once each, at the profile's batch size. This script
repeats that comparison at every batch size in --batches and every seed in --seeds:
the same towers (`build_clip` / `build_siglip`), the same captioned scenes, the same
number of epochs (so every run sees the same examples; a smaller batch takes more
steps), the same optimizer, schedule and text-side augmentation. Only the loss (and
SigLIP's learnable bias) differs. Each run is scored as notebook 08 scores it:

- zero-shot accuracy (30-way) on seen and on held-out colour–shape combinations, with
  the prompt set (single prompt or ensemble) chosen on validation images of seen
  combinations, as the notebook chooses it;
- Recall@1 and Recall@5 both ways on the test gallery of distinct captions.

It writes every run, and the mean and spread (min, max) over seeds of each metric, to
benchmarks/results/siglip_batch_sizes.json, which notebook 08 loads and plots. The file is
rewritten after every run, so an interrupted sweep keeps what it finished. Two sweeps run
side by side (on two cores) are joined with --merge, which trains nothing:

    OMP_NUM_THREADS=1 python benchmarks/siglip_batch_sizes.py --epochs 4 --batches 8 128 32   # what notebook 08 loads
    OMP_NUM_THREADS=1 python benchmarks/siglip_batch_sizes.py --epochs 4 --batches 8 --out /tmp/a.json &
    OMP_NUM_THREADS=1 python benchmarks/siglip_batch_sizes.py --epochs 4 --batches 32 128 --out /tmp/b.json
    python benchmarks/siglip_batch_sizes.py --merge /tmp/a.json /tmp/b.json
    python benchmarks/siglip_batch_sizes.py --batches 32 128 --seeds 0 1 2 3 --out /tmp/sweep.json

--epochs defaults to the notebook's (8 on the quick profile); at batch 8 one such run is
10,000 steps, several minutes on one CPU core, so the stored results use 4 epochs (5,000
steps at batch 8, 1,248 at 32, 312 at 128). Batches 8 and 128 (3 seeds × 2 losses)
ran as one sweep and batch 32 as a second, joined with --merge. Batches run in the order given, so an interrupted sweep loses
the last batch size, never a seed of the others.
"""
from __future__ import annotations

import argparse
import platform
import statistics
import time
from pathlib import Path

import torch

from contrastive_lab.data.shapes import (HELD_OUT, PLACES, SIZES, all_combos, make_captioned_scenes,
                                         with_article)
from contrastive_lab.device import get_device, seed_everything
from contrastive_lab.methods.clip import (build_clip, clip_settings, cross_modal_recall, encode_images,
                                          encode_texts, train_clip, zero_shot_weights)
from contrastive_lab.methods.siglip import build_siglip, train_siglip
from contrastive_lab.profiles import get_profile
from contrastive_lab.text import Tokenizer
from sweep_files import add_sweep_options, read_comparable, write

OUT = Path(__file__).resolve().parent / "results" / "siglip_batch_sizes.json"
METRICS = ("zero-shot seen", "zero-shot held-out", "R@1 image→text", "R@1 text→image",
           "R@5 image→text", "R@5 text→image")
LOSSES = {"CLIP (softmax)": (build_clip, train_clip), "SigLIP (sigmoid)": (build_siglip, train_siglip)}


def single_prompt(colour, shape):
    return [f"a photo of {with_article(colour + ' ' + shape)}"]


def ensemble_prompts(colour, shape):
    return [f"a {size} {texture}{colour} {shape} {place}"
            for size in SIZES for place in PLACES for texture in ("", "striped ")]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--profile", default=None, help="quick or full (default: by device)")
    parser.add_argument("--batches", type=int, nargs="+", default=[8, 32, 128])
    parser.add_argument("--epochs", type=int, default=None, help="epochs at every batch size (default: notebook 08's)")
    add_sweep_options(parser, OUT)
    args = parser.parse_args()
    if args.merge:
        parts = read_comparable(args.merge, ("profile", "epochs"))
        runs = [run for part in parts for run in part["runs"]]
        write(args.out, {**parts[0], "runs": runs, "summary": summarize(runs)})
        return

    profile = get_profile(args.profile)
    device = get_device()
    settings = clip_settings(profile)
    if args.epochs is not None:
        settings = settings.replace(epochs=args.epochs)
    train = make_captioned_scenes(settings.n_train, "train", seed=0)
    test = make_captioned_scenes(settings.n_test, "test", seed=0)
    seen = [c for c in all_combos() if c not in HELD_OUT]
    zero_shot_sets = {
        "val": make_captioned_scenes(settings.n_zero_shot, "train", seed=2, kinds=("single",), combos=seen),
        "seen": make_captioned_scenes(settings.n_zero_shot, "test", seed=1, kinds=("single",), combos=seen),
        "held-out": make_captioned_scenes(settings.n_zero_shot, "test", seed=1, kinds=("single",),
                                          combos=list(HELD_OUT))}
    gallery = test.distinct()
    content = gallery.content_ids()
    tok = Tokenizer.from_texts(c for phrasings in train.captions for c in phrasings)

    def zero_shot(model, prompts_for):
        weights = zero_shot_weights(model, tok, [prompts_for(c, s) for c, s in all_combos()])
        return {name: ((encode_images(model, zs.images) @ weights.T).argmax(1) == zs.combo_labels)
                .float().mean().item() for name, zs in zero_shot_sets.items()}

    def score(model) -> dict:
        by_prompts = {"single": zero_shot(model, single_prompt), "ensemble": zero_shot(model, ensemble_prompts)}
        chosen = max(by_prompts, key=lambda name: by_prompts[name]["val"])       # chosen on validation
        r = cross_modal_recall(encode_images(model, gallery.images),
                               encode_texts(model, tok, [c[0] for c in gallery.captions]), content, (1, 5))
        return {"prompts (chosen on validation)": chosen,
                "zero-shot seen": by_prompts[chosen]["seen"], "zero-shot held-out": by_prompts[chosen]["held-out"],
                **{f"R@{k} {d}": r[d][k] for k in (1, 5) for d in ("image→text", "text→image")}}

    record = {"what": __doc__.split("\n")[0], "profile": profile.name, "device": device.type,
              "epochs": settings.epochs, "lr": settings.lr, "n_train": settings.n_train,
              "gallery": len(gallery), "zero-shot images per set": settings.n_zero_shot,
              "torch": torch.__version__, "machine": f"{platform.machine()}, {torch.get_num_threads()} threads",
              "metrics": list(METRICS)}
    runs = []
    for batch in args.batches:
        for seed in args.seeds:
            for name, (build, fit) in LOSSES.items():
                seed_everything(seed)
                model = build(profile, tok, settings)
                started = time.perf_counter()
                history = fit(model, train, tok, settings.replace(batch_size=batch), profile, device=device,
                              seed=seed, progress=False)
                seconds = time.perf_counter() - started
                run = {"loss": name, "batch": batch, "seed": seed, "steps": len(history.loss),
                       "train seconds": round(seconds, 1), "logit scale": model.logit_scale.item(),
                       **({"logit bias": model.logit_bias.item()} if hasattr(model, "logit_bias") else {}),
                       **score(model)}
                runs.append(run)
                print(f"{name:<17} batch {batch:>4} seed {seed}: {run['steps']:>5} steps {seconds:5.0f} s  "
                      + "  ".join(f"{m} {run[m]:.3f}" for m in METRICS), flush=True)
                write(args.out, {**record, "summary": summarize(runs), "runs": runs})
    print(f"wrote {args.out}")


def summarize(runs: list[dict]) -> list[dict]:
    """Mean, min and max over seeds of every metric, for each (batch size, loss)."""
    summary = []
    for batch in sorted({r["batch"] for r in runs}):
        for name in LOSSES:
            group = [r for r in runs if r["batch"] == batch and r["loss"] == name]
            if group:
                summary.append({"loss": name, "batch": batch, "seeds": [r["seed"] for r in group],
                                **{m: {"mean": statistics.mean(r[m] for r in group), "min": min(r[m] for r in group),
                                       "max": max(r[m] for r in group)} for m in METRICS}})
    return summary


if __name__ == "__main__":
    main()
