"""The command-line trainer: one process, or many under torchrun.

    python -m contrastive_lab.cli train simclr --profile quick --epochs 2 --out runs/simclr
    torchrun --standalone --nproc_per_node 2 -m contrastive_lab.cli train simclr --profile quick --out runs/simclr
    torchrun --standalone --nproc_per_node 8 -m contrastive_lab.cli train simclr --profile full --out runs/simclr
    python -m contrastive_lab.cli train simclr --data my_images/ --out runs/mine     # your own images

METHOD is simclr, moco, byol or clip. Every process trains on its shard of each
global batch (`--batch-size` images per process), with the negatives gathered
from all of them (`contrastive_lab.distributed`); gloo on CPU, NCCL on CUDA.
Rank 0 prints, shows the progress bar and writes, in --out:

    encoder.pt      the encoder without its head, exported in `contrastive_lab.export`'s
                    format (outputs L2-normalised, version and preprocessing recorded):
                    what notebook 12's vector index loads, with `load_run_encoder`
    history.json    the settings, the world size, negatives per query, the loss of every
                    step (rank 0's share of the batch), the training time
    checkpoint.pt   (or --checkpoint) written after every epoch; running the same command
                    again resumes from it, with the same or another number of processes

`--data DIR` trains on your own images (a torchvision ImageFolder: DIR/<class>/<image>;
the labels are not used for training). CLIP trains on the generated captioned scenes.
The multi-node command lines (torchrun on every node, or Slurm) are in `MULTI_NODE`.
"""
from __future__ import annotations

import argparse
import json
import math
import sys
import time
from pathlib import Path

import torch
import torch.nn as nn

from .atomic import write_atomically
from .data import load_image_dataset, make_captioned_scenes
from .data.folder import load_image_folder
from .distributed import World, WorldError, cleanup, per_process_batch, setup
from .export import Preprocessing, export_encoder, load_exported
from .methods.clip import clip_settings
from .methods.data_parallel import (METHODS, build_model, negatives_for_method, train_clip_data_parallel,
                                    train_data_parallel)
from .models import make_encoder
from .profiles import PROFILES, get_profile
from .text import Tokenizer

LR_SCALING = ("none", "linear", "sqrt")

MULTI_NODE = """\
# Several nodes (here 4 nodes × 8 GPUs): the same line on every node, node 0's address as the endpoint
torchrun --nnodes 4 --nproc_per_node 8 --rdzv-backend c10d --rdzv-endpoint node0.example:29500 \\
    --rdzv-id simclr-run-1 -m contrastive_lab.cli train simclr --profile full --global-batch-size 4096 \\
    --lr-scaling sqrt --sync-bn --out runs/simclr

# Under Slurm: save the lines from #!/bin/bash on as train.sbatch; submit with `sbatch train.sbatch`.
# srun starts one torchrun per node; torchrun starts one process per GPU (32 × 128 = 4096 images a step).
#!/bin/bash
#SBATCH --job-name=simclr
#SBATCH --nodes=4
#SBATCH --ntasks-per-node=1
#SBATCH --gpus-per-node=8
#SBATCH --cpus-per-task=32
#SBATCH --time=12:00:00
head_node=$(scontrol show hostnames "$SLURM_JOB_NODELIST" | head -n 1)
srun torchrun --nnodes "$SLURM_NNODES" --nproc_per_node 8 --rdzv-backend c10d \\
    --rdzv-endpoint "$head_node:29500" --rdzv-id "$SLURM_JOB_ID" \\
    -m contrastive_lab.cli train simclr --profile full --global-batch-size 4096 \\
    --lr-scaling sqrt --sync-bn --out runs/simclr
"""


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m contrastive_lab.cli",
                                     description="Train a contrastive model on one process or many (torchrun).",
                                     epilog=MULTI_NODE, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True)
    train = sub.add_parser("train", help="train METHOD and export its encoder",
                           epilog=MULTI_NODE, formatter_class=argparse.RawDescriptionHelpFormatter)
    train.add_argument("method", choices=METHODS)
    train.add_argument("--profile", choices=sorted(PROFILES), default=None,
                       help="sizes and recipe (default: $CLAB_PROFILE, else full on CUDA, quick otherwise)")
    train.add_argument("--epochs", type=int, default=None, help="epochs (default: the profile's)")
    size = train.add_mutually_exclusive_group()
    size.add_argument("--batch-size", type=int, default=None,
                      help="images per process and step (default: the profile's)")
    size.add_argument("--global-batch-size", type=int, default=None,
                      help="images per step over all processes (must divide by their number)")
    train.add_argument("--lr", type=float, default=None, help="learning rate (default: the profile's)")
    train.add_argument("--lr-scaling", choices=LR_SCALING, default="none",
                       help="scale the lr with the global batch relative to the profile's batch: "
                            "linear (×k, SGD/LARS recipes) or sqrt (×√k, Adam-type); default none")
    train.add_argument("--temperature", type=float, default=0.2, help="τ of SimCLR's and MoCo's loss")
    train.add_argument("--queue-size", type=int, default=4096, help="MoCo's queue of negatives")
    train.add_argument("--momentum", type=float, default=0.99, help="MoCo's / BYOL's EMA momentum")
    train.add_argument("--data", type=Path, default=None,
                       help="train on your own images: a folder DIR/<class>/<image> (ImageFolder)")
    train.add_argument("--image-size", type=int, default=32, help="side images from --data are resized to")
    train.add_argument("--n-train", type=int, default=None, help="train on at most this many images")
    train.add_argument("--seed", type=int, default=0)
    train.add_argument("--sync-bn", action="store_true",
                       help="BatchNorm statistics over all processes (CUDA only)")
    train.add_argument("--device", default=None, help="cpu or cuda (default: $CLAB_DEVICE, else CUDA if present)")
    train.add_argument("--out", type=Path, required=True, help="folder for encoder.pt, history.json, checkpoint.pt")
    train.add_argument("--checkpoint", type=Path, default=None, help="checkpoint file (default: OUT/checkpoint.pt)")
    train.add_argument("--version", default=None, help="model version tag of the export (default: METHOD-PROFILE-seedSEED)")
    train.add_argument("--no-progress", action="store_true", help="no progress bar")
    return parser


def scaled_lr(lr: float, global_batch: int, reference_batch: int, rule: str) -> float:
    """lr for `global_batch` when `lr` was tuned at `reference_batch`: unchanged ("none"),
    × k ("linear", Goyal et al. 2017), or × √k ("sqrt"), with k = global / reference."""
    if rule not in LR_SCALING:
        raise ValueError(f"lr scaling must be one of {LR_SCALING}, got {rule!r}")
    k = global_batch / reference_batch
    return lr * {"none": 1.0, "linear": k, "sqrt": math.sqrt(k)}[rule]


# ---------------------------------------------------------------- the export and reading it back
class _ImageTower(nn.Sequential):
    """CLIP's image side: encoder, then projection into the shared space."""


def export_run_encoder(model: nn.Module, method: str, path: Path, *, version: str, profile,
                       image_size: tuple[int, int], in_channels: int = 3) -> dict:
    """Export what the run learned for serving (`export.export_encoder`): the encoder
    without its head (CLIP: image encoder + projection), with the architecture recorded
    so that `load_run_encoder` can rebuild it."""
    architecture = {"method": method, "backbone": profile.backbone, "cnn_widths": list(profile.cnn_widths),
                    "in_channels": in_channels}
    if method == "clip":
        architecture["embed_dim"] = model.embed_dim
        model = _ImageTower(model.image_encoder, model.image_projection)
    return export_encoder(model, path, version=version, architecture=architecture,
                          preprocessing=Preprocessing(image_size=image_size, channels=in_channels))


def build_run_encoder(meta: dict) -> nn.Module:
    """The untrained module of an export written by this CLI (`export.load_exported`'s builder)."""
    arch = meta["architecture"]
    profile = get_profile("quick").replace(backbone=arch["backbone"], cnn_widths=tuple(arch["cnn_widths"]))
    encoder = make_encoder(profile, in_channels=arch["in_channels"])
    if arch["method"] == "clip":
        return _ImageTower(encoder, nn.Linear(encoder.feature_dim, arch["embed_dim"], bias=False))
    return encoder


def load_run_encoder(path) -> nn.Module:
    """The served encoder of a CLI run (eval mode, unit-length outputs): `load_exported`."""
    return load_exported(path, build_run_encoder)


def _rank_zero_first(world: World, load):
    """Run `load()` on rank 0 first (it downloads and caches), then on the other ranks
    (they read the cache): W processes never download the same dataset at once."""
    if world.world_size > 1 and not world.is_main:
        torch.distributed.barrier()
    result = load()
    if world.world_size > 1 and world.is_main:
        torch.distributed.barrier()
    return result


def _write_json(path: Path, record: dict) -> None:
    write_atomically(path, lambda tmp: Path(tmp).write_text(json.dumps(record, indent=1)))


# ---------------------------------------------------------------- train
def train(args: argparse.Namespace, world: World) -> dict:
    """Run `train` on this process; rank 0 writes the files. Returns the run's record."""
    profile = get_profile(args.profile)
    say = print if world.is_main else (lambda *a, **k: None)
    if args.method == "clip" and args.data is not None:
        raise ValueError("CLIP trains on image–caption pairs; --data folders hold images only. "
                         "Use simclr, moco or byol with --data")
    if args.epochs is not None and args.epochs < 1:
        raise ValueError(f"--epochs must be at least 1, got {args.epochs}")
    reference_batch = clip_settings(profile).batch_size if args.method == "clip" else profile.batch_size
    if args.global_batch_size is not None:
        batch_size = per_process_batch(args.global_batch_size, world.world_size)
    else:
        batch_size = args.batch_size or reference_batch
    if batch_size < 2:
        raise ValueError(f"the batch per process must hold at least 2 images, got {batch_size}")
    global_batch = batch_size * world.world_size
    base_lr = args.lr or (clip_settings(profile).lr if args.method == "clip" else profile.lr)
    lr = scaled_lr(base_lr, global_batch, reference_batch, args.lr_scaling)
    args.out.mkdir(parents=True, exist_ok=True)
    checkpoint = args.checkpoint or args.out / "checkpoint.pt"
    version = args.version or f"{args.method}-{profile.name}-seed{args.seed}"

    torch.manual_seed(args.seed)                   # the same initial model on every process
    if args.method == "clip":
        settings = clip_settings(profile)
        scenes = make_captioned_scenes(args.n_train or settings.n_train, "train", seed=args.seed)
        tokenizer = Tokenizer.from_texts(c for phrasings in scenes.captions for c in phrasings)
        model = build_model("clip", profile, tokenizer=tokenizer, clip=settings)
        n_images, image_size = len(scenes.images), tuple(scenes.images.shape[-2:])
    else:
        if args.data is not None:
            train_x, _, classes = load_image_folder(args.data, args.image_size, args.n_train, args.seed)
            source = f"{args.data} ({len(train_x)} images, {len(classes)} folders)"
        else:
            data = _rank_zero_first(world, lambda: load_image_dataset(profile.dataset, args.n_train or profile.n_train,
                                                                      n_test=1, seed=args.seed))
            train_x, source = data.train_x, data.name
        model = build_model(args.method, profile, in_channels=train_x.shape[1], queue_size=args.queue_size,
                            momentum=args.momentum)
        n_images, image_size = len(train_x), tuple(train_x.shape[-2:])
    negatives = negatives_for_method(args.method, model, batch_size, world.world_size)
    say(f"{args.method} on {world.world_size} process(es) ({world.backend or 'single'}, {world.device}): "
        f"{batch_size} images per process, global batch {global_batch}, {negatives} negatives per query, "
        f"lr {lr:.3g}, {n_images} images" + ("" if args.method == "clip" else f" from {source}"), flush=True)

    start = time.perf_counter()
    common = dict(batch_size=batch_size, epochs=args.epochs, lr=lr, checkpoint=checkpoint, seed=args.seed,
                  sync_bn=args.sync_bn, progress=not args.no_progress)
    if args.method == "clip":
        history = train_clip_data_parallel(model, scenes, tokenizer, settings, profile, world, **common)
    else:
        history = train_data_parallel(args.method, model, train_x, profile, world,
                                      temperature=args.temperature, **common)
    seconds = time.perf_counter() - start
    epochs = args.epochs or (settings.epochs if args.method == "clip" else profile.epochs)
    record = {"method": args.method, "profile": profile.name, "world_size": world.world_size,
              "backend": world.backend, "device": str(world.device), "batch_size_per_process": batch_size,
              "global_batch": global_batch, "negatives_per_query": negatives, "lr": lr, "epochs": epochs,
              "images": n_images, "seconds": round(seconds, 2),
              "loss": history.loss, "epoch_loss": history.epoch_loss, "metrics": history.metrics,
              "encoder": "encoder.pt", "version": version}
    if world.is_main:
        export_run_encoder(model, args.method, args.out / "encoder.pt", version=version, profile=profile,
                           image_size=image_size, in_channels=3)
        _write_json(args.out / "history.json", record)
        say(f"loss: first step {history.loss[0]:.3f}, last step {history.loss[-1]:.3f} "
            f"({len(history.loss)} steps, {len(history.epoch_loss)} epochs); "
            f"wrote {args.out / 'encoder.pt'} (version {version!r}) and history.json", flush=True)
    return record


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        world = setup(args.device)
    except WorldError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    try:
        train(args, world)
    except (WorldError, ValueError) as exc:
        prefix = f"[rank {world.rank}] " if world.world_size > 1 else ""
        print(f"{prefix}error: {exc}", file=sys.stderr)
        if torch.distributed.is_initialized():
            torch.distributed.destroy_process_group()     # no barrier: the others may never reach it
        return 2
    cleanup()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
