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
    history.json    the experiment (method, model, data, global batch, lr, schedule, seed),
                    the world size, negatives per query, the loss of every step (rank 0's
                    share of the batch), the training time; written when the run starts
                    (status "training") and again when it ends
    checkpoint.pt   (or --checkpoint) written after every epoch; running the same command
                    again resumes from it, with the same or another number of processes or
                    device. Another experiment into the same --out is refused, naming the
                    settings that differ.

Settings that make no sense (--lr 0, --batch-size 0, fewer images than one global batch,
an --out that is a file, an unknown device) are refused with one line and exit status 2.
The export's version tag (default METHOD-PROFILE-seedSEED-HASH) names the run: HASH is
taken over the experiment and the trained weights, so two different runs never share one.

Every process loads (and, the first time, downloads) its data BEFORE joining the
others, one process at a time per data folder (a file lock): nobody waits in a
collective while a dataset downloads. A collective waits at most 30 minutes for a
missing process. Rank 0 exports the encoder after the processes have parted, so the
export's check (which may compile the encoder again) keeps nobody waiting either.
`--sync-bn` normalizes over the global batch with `distributed.GlobalBatchNorm` (no
host sync; on gloo and NCCL alike). MoCo shuffles its keys across the processes
(shuffle-BN) and takes `--symmetric`.

`--data DIR` trains on your own images (a torchvision ImageFolder: DIR/<class>/<image>;
the labels are not used for training). CLIP trains on the generated captioned scenes.
The multi-node command lines (torchrun on every node, or Slurm) are in `MULTI_NODE`.
"""
from __future__ import annotations

import argparse
import dataclasses
import hashlib
import json
import math
import sys
import time
from pathlib import Path

import torch
import torch.nn as nn

from .atomic import locked, write_atomically
from .data import data_dir, load_image_dataset, make_captioned_scenes
from .data.folder import load_image_folder
from .distributed import World, WorldError, cleanup, per_process_batch, rank_device, read_env, setup
from .export import Preprocessing, export_encoder, load_exported
from .model_cache import data_fingerprint
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
    train.add_argument("--epochs", type=int, default=None,
                       help="epochs (default: the profile's for METHOD; SimCLR has its own count)")
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
    train.add_argument("--symmetric", action="store_true",
                       help="MoCo: both views are queries, each against the other's keys")
    train.add_argument("--data", type=Path, default=None,
                       help="train on your own images: a folder DIR/<class>/<image> (ImageFolder)")
    train.add_argument("--image-size", type=int, default=32, help="side images from --data are resized to")
    train.add_argument("--n-train", type=int, default=None, help="train on at most this many images")
    train.add_argument("--seed", type=int, default=0)
    train.add_argument("--sync-bn", action="store_true",
                       help="BatchNorm statistics over all processes (GlobalBatchNorm: one all-reduce per layer)")
    train.add_argument("--device", default=None, help="cpu or cuda (default: $CLAB_DEVICE, else CUDA if present)")
    train.add_argument("--out", type=Path, required=True, help="folder for encoder.pt, history.json, checkpoint.pt")
    train.add_argument("--checkpoint", type=Path, default=None, help="checkpoint file (default: OUT/checkpoint.pt)")
    train.add_argument("--version", default=None,
                       help="model version tag of the export (default: METHOD-PROFILE-seedSEED-HASH, "
                            "HASH over the experiment and the trained weights)")
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


def _write_json(path: Path, record: dict) -> None:
    write_atomically(path, lambda tmp: Path(tmp).write_text(json.dumps(record, indent=1)))


# ---------------------------------------------------------------- refusing nonsense
def _check_folder(path: Path, flag: str) -> None:
    """`path` is, or can become, a folder: it is no file and no file lies on its way."""
    if path.exists() and not path.is_dir():
        raise ValueError(f"{flag} {path} is a file; give a folder (it is created if missing)")
    for parent in path.parents:
        if parent.exists():
            if not parent.is_dir():
                raise ValueError(f"{flag} {path}: {parent} is a file, so the folder cannot be made there")
            break


def check_args(args: argparse.Namespace) -> None:
    """Refuse settings that cannot be meant, before anything is loaded or written (ValueError,
    one line). A value the user gives is used as given: 0 never means "the default"."""
    positive = {"--epochs": args.epochs, "--batch-size": args.batch_size,
                "--global-batch-size": args.global_batch_size, "--n-train": args.n_train}
    for flag, value in positive.items():
        if value is not None and value < 1:
            raise ValueError(f"{flag} must be at least 1, got {value}")
    if args.lr is not None and not (math.isfinite(args.lr) and args.lr > 0):
        raise ValueError(f"--lr must be a number > 0, got {args.lr}")
    if args.image_size < 8:
        raise ValueError(f"--image-size must be at least 8 pixels, got {args.image_size}")
    if args.symmetric and args.method != "moco":
        raise ValueError(f"--symmetric is MoCo's option; {args.method} has no queries and keys to swap")
    if args.version is not None and not args.version.strip():
        raise ValueError("--version must not be empty; leave it out for the default tag, which names the run")
    _check_folder(args.out, "--out")
    if args.checkpoint is not None:
        if args.checkpoint.is_dir():
            raise ValueError(f"--checkpoint {args.checkpoint} is a folder; give a file, e.g. "
                             f"{args.checkpoint / 'checkpoint.pt'}")
        _check_folder(args.checkpoint.parent, "--checkpoint's folder")
    if args.device is not None:
        try:
            torch.device(args.device)
        except RuntimeError:
            raise ValueError(f"--device {args.device!r} is not a device name; use cpu, cuda, cuda:N or mps") from None


def _check_image_size(profile, in_channels: int, image_size: int) -> None:
    """The encoder can take images of this size (small images vanish in its pooling)."""
    encoder = make_encoder(profile, in_channels=in_channels).eval()

    def fits(size: int) -> bool:
        try:
            with torch.no_grad():
                encoder(torch.zeros(1, in_channels, size, size))
            return True
        except RuntimeError:
            return False

    if not fits(image_size):
        smallest = next((s for s in range(image_size + 1, 257) if fits(s)), None)
        raise ValueError(f"--image-size {image_size} is too small for the {profile.backbone} encoder"
                         + (f"; use --image-size {smallest} or more" if smallest else ""))


# ---------------------------------------------------------------- the experiment, and resuming it
def experiment_settings(method: str, profile, *, data: dict, global_batch: int, lr: float, epochs: int,
                        seed: int, method_settings: dict) -> dict:
    """What makes a run this run, as plain data: a resume must match it. Not in it: the
    device and the number of processes (a run may resume on others), and the number of
    epochs when the learning rate is constant (a resume may train longer)."""
    if method == "clip":
        schedule = {"optimizer": "adam", "lr_schedule": "cosine", "warmup_epochs": 0}
    else:
        schedule = {"optimizer": profile.optimizer, "weight_decay": profile.weight_decay,
                    "lr_schedule": profile.lr_schedule, "warmup_epochs": profile.warmup_epochs}
    if schedule["lr_schedule"] != "constant" or schedule["warmup_epochs"]:
        schedule["epochs"] = epochs                    # the schedule's shape depends on the run's length
    model = {"backbone": profile.backbone, "cnn_widths": list(profile.cnn_widths), "proj_dim": profile.proj_dim,
             **method_settings}
    return {"method": method, "model": model, "data": data, "global_batch": global_batch, "lr": lr,
            "schedule": schedule, "seed": seed}


def _flat(record: dict, prefix: str = "") -> dict:
    out = {}
    for key, value in record.items():
        if isinstance(value, dict):
            out.update(_flat(value, f"{prefix}{key}."))
        else:
            out[f"{prefix}{key}"] = value
    return out


def experiment_differences(recorded: dict, wanted: dict) -> list[str]:
    """'name recorded → wanted' for every setting that differs (dotted names for nested ones)."""
    old, new = _flat(recorded), _flat(wanted)
    return [f"{key} {old.get(key, '(none)')} → {new.get(key, '(none)')}"
            for key in sorted(set(old) | set(new)) if old.get(key) != new.get(key)]


def check_resume(out: Path, checkpoint: Path, wanted: dict) -> None:
    """Refuse to continue (or overwrite) a run in `out` whose experiment differs from `wanted`
    (recorded in out/history.json, which the CLI writes when a run starts)."""
    history = out / "history.json"
    if history.exists():
        try:
            recorded = json.loads(history.read_text()).get("experiment")
        except (ValueError, AttributeError):
            raise ValueError(f"{history} is not a history the CLI wrote; move it away or pick a new --out") from None
        if recorded is None:
            raise ValueError(f"--out {out} holds a run that did not record its experiment; pick a new --out "
                             "(or delete that folder to start over)")
        differences = experiment_differences(recorded, wanted)
        if differences:
            raise ValueError(f"--out {out} holds another experiment ({'; '.join(differences)}); run with its "
                             "settings to resume it (another device or number of processes is fine), or pick "
                             "a new --out")
    elif checkpoint.exists():
        raise ValueError(f"checkpoint {checkpoint} exists but {history} does not say which experiment wrote it; "
                         "pick a new --out, or delete the checkpoint to start over")


def run_version(method: str, profile_name: str, seed: int, experiment: dict, model: nn.Module) -> str:
    """The default version tag: METHOD-PROFILE-seedSEED-HASH, HASH over the experiment and
    the trained weights, so two different runs never share a tag."""
    h = hashlib.sha256(json.dumps(experiment, sort_keys=True).encode())
    for name, tensor in sorted(model.state_dict().items()):
        h.update(name.encode())
        h.update(data_fingerprint(tensor).encode())
    return f"{method}-{profile_name}-seed{seed}-{h.hexdigest()[:12]}"


# ---------------------------------------------------------------- the data, before the processes meet
@dataclasses.dataclass
class RunData:
    """What a run trains on: images (N, C, H, W) or CLIP's captioned scenes and their tokenizer."""
    source: str
    data: dict                                  # name, size and fingerprint, for the experiment
    image_size: tuple[int, int]
    train_x: torch.Tensor | None = None
    scenes: object = None
    tokenizer: Tokenizer | None = None

    @property
    def n_images(self) -> int:
        return len(self.train_x) if self.train_x is not None else len(self.scenes.images)


def load_run_data(args: argparse.Namespace) -> RunData:
    """Load (the first time: download) the run's data. Every process calls it before the
    process group starts, one at a time per data folder (`atomic.locked`), so a download
    never keeps the others waiting in a collective and is never done twice at once."""
    profile = get_profile(args.profile)
    if args.method == "clip":
        if args.data is not None:
            raise ValueError("CLIP trains on image–caption pairs; --data folders hold images only. "
                             "Use simclr, moco or byol with --data")
        n = args.n_train if args.n_train is not None else clip_settings(profile).n_train
        scenes = make_captioned_scenes(n, "train", seed=args.seed)
        tokenizer = Tokenizer.from_texts(c for phrasings in scenes.captions for c in phrasings)
        return RunData("captioned scenes", {"source": "captioned scenes", "images": len(scenes.images),
                                            "fingerprint": data_fingerprint(scenes.images)},
                       tuple(scenes.images.shape[-2:]), scenes=scenes, tokenizer=tokenizer)
    if args.data is not None:
        train_x, _, classes = load_image_folder(args.data, args.image_size, args.n_train, args.seed)
        _check_image_size(profile, train_x.shape[1], args.image_size)
        source, name = f"{args.data} ({len(train_x)} images, {len(classes)} folders)", "folder"
    else:
        n = args.n_train if args.n_train is not None else profile.n_train
        with locked(data_dir() / ".download.lock"):
            loaded = load_image_dataset(profile.dataset, n, n_test=1, seed=args.seed)
        train_x, source = loaded.train_x, loaded.name
        name = source
    image_size = tuple(train_x.shape[-2:])
    return RunData(source, {"source": name, "images": len(train_x), "image_size": list(image_size),
                            "fingerprint": data_fingerprint(train_x)}, image_size, train_x=train_x)


# ---------------------------------------------------------------- train
def train(args: argparse.Namespace, world: World, run_data: RunData | None = None) -> dict:
    """Train on this process (the data from `load_run_data`, loaded here when not given). Rank 0
    writes history.json when the run starts; `finish` exports and writes the rest. Returns the
    run: {"record", "model", "history", "experiment", "seconds"}."""
    check_args(args)
    run_data = load_run_data(args) if run_data is None else run_data
    profile = get_profile(args.profile)
    say = print if world.is_main else (lambda *a, **k: None)
    clip = clip_settings(profile) if args.method == "clip" else None
    reference_batch = clip.batch_size if clip else profile.batch_size
    if args.global_batch_size is not None:
        batch_size = per_process_batch(args.global_batch_size, world.world_size)
    else:
        batch_size = reference_batch if args.batch_size is None else args.batch_size
    if batch_size < 2:
        raise ValueError(f"the batch per process must hold at least 2 images, got {batch_size}")
    global_batch = batch_size * world.world_size
    base_lr = args.lr if args.lr is not None else (clip.lr if clip else profile.lr)
    lr = scaled_lr(base_lr, global_batch, reference_batch, args.lr_scaling)
    epochs = args.epochs if args.epochs is not None else (clip.epochs if clip else profile.epochs_of(args.method))
    checkpoint = args.checkpoint if args.checkpoint is not None else args.out / "checkpoint.pt"

    torch.manual_seed(args.seed)                   # the same initial model on every process
    if clip:
        model = build_model("clip", profile, tokenizer=run_data.tokenizer, clip=clip)
        method_settings = {k: v for k, v in dataclasses.asdict(clip).items()
                           if k not in ("batch_size", "epochs", "lr", "n_train", "n_test", "n_zero_shot", "eval_every")}
    else:
        model = build_model(args.method, profile, in_channels=run_data.train_x.shape[1], queue_size=args.queue_size,
                            momentum=args.momentum, symmetric=args.symmetric)
        method_settings = {"simclr": {"temperature": args.temperature},
                           "moco": {"temperature": args.temperature, "queue_size": args.queue_size,
                                    "momentum": args.momentum, "symmetric": args.symmetric},
                           "byol": {"momentum": args.momentum}}[args.method]
    n_images = run_data.n_images
    if n_images < global_batch:
        raise ValueError(f"one step takes a global batch of {global_batch} images ({batch_size} per process × "
                         f"{world.world_size}), but there are only {n_images}; lower --batch-size or give more images")
    negatives = negatives_for_method(args.method, model, batch_size, world.world_size)
    experiment = experiment_settings(args.method, profile, data=run_data.data, global_batch=global_batch, lr=lr,
                                     epochs=epochs, seed=args.seed, method_settings=method_settings)
    check_resume(args.out, checkpoint, experiment)
    if world.world_size > 1:
        torch.distributed.barrier()                # every process checked before rank 0 writes
    record = {"method": args.method, "profile": profile.name, "world_size": world.world_size,
              "backend": world.backend, "device": str(world.device), "batch_size_per_process": batch_size,
              "global_batch": global_batch, "negatives_per_query": negatives, "lr": lr, "epochs": epochs,
              "images": n_images, "experiment": experiment, "status": "training"}
    if world.is_main:
        args.out.mkdir(parents=True, exist_ok=True)
        _write_json(args.out / "history.json", record)
    reference_lr = clip.lr if clip else profile.lr
    if lr > 100 * reference_lr:
        say(f"warning: lr {lr:.3g} is {lr / reference_lr:.0f}× the profile's {reference_lr:.3g}; "
            "expect the weights to blow up", flush=True)
    say(f"{args.method} on {world.world_size} process(es) ({world.backend or 'single'}, {world.device}): "
        f"{batch_size} images per process, global batch {global_batch}, {negatives} negatives per query, "
        f"lr {lr:.3g}, {n_images} images" + ("" if clip else f" from {run_data.source}"), flush=True)

    start = time.perf_counter()
    common = dict(batch_size=batch_size, epochs=epochs, lr=lr, checkpoint=checkpoint, seed=args.seed,
                  sync_bn=args.sync_bn, progress=not args.no_progress)
    if clip:
        history = train_clip_data_parallel(model, run_data.scenes, run_data.tokenizer, clip, profile, world, **common)
    else:
        history = train_data_parallel(args.method, model, run_data.train_x, profile, world,
                                      temperature=args.temperature, **common)
    return {"record": record, "model": model, "history": history, "experiment": experiment,
            "image_size": run_data.image_size, "seconds": time.perf_counter() - start}


def finish(args: argparse.Namespace, run: dict) -> dict:
    """Rank 0, after the processes have parted: export the encoder (its load-time check may
    compile it again: nobody waits for that) and write the final history.json."""
    profile = get_profile(args.profile)
    record, model, history = run["record"], run["model"], run["history"]
    version = args.version if args.version is not None else run_version(args.method, profile.name, args.seed,
                                                                          run["experiment"], model)
    record.update({"seconds": round(run["seconds"], 2), "loss": history.loss, "epoch_loss": history.epoch_loss,
                   "metrics": history.metrics, "encoder": "encoder.pt", "version": version, "status": "done"})
    export_run_encoder(model, args.method, args.out / "encoder.pt", version=version, profile=profile,
                       image_size=run["image_size"], in_channels=3)
    _write_json(args.out / "history.json", record)
    print(f"loss: first step {history.loss[0]:.3f}, last step {history.loss[-1]:.3f} "
          f"({len(history.loss)} steps, {len(history.epoch_loss)} epochs); "
          f"wrote {args.out / 'encoder.pt'} (version {version!r}) and history.json", flush=True)
    return record


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    rank, world_size = 0, 1
    try:
        check_args(args)
        rank, world_size, local_rank = read_env()
        rank_device(local_rank, args.device)         # a device this machine lacks: said before any download
        run_data = load_run_data(args)               # before the process group: no collective waits on it
        world = setup(args.device)
    except (WorldError, ValueError) as exc:
        prefix = f"[rank {rank}] " if world_size > 1 else ""
        print(f"{prefix}error: {exc}", file=sys.stderr)
        return 2
    try:
        run = train(args, world, run_data)
    except (WorldError, ValueError, FloatingPointError) as exc:
        prefix = f"[rank {world.rank}] " if world.world_size > 1 else ""
        print(f"{prefix}error: {exc}", file=sys.stderr)
        if torch.distributed.is_initialized():
            torch.distributed.destroy_process_group()     # no barrier: the others may never reach it
        return 1 if isinstance(exc, FloatingPointError) else 2     # 1: the run itself diverged
    cleanup()                                             # the processes part here
    if world.is_main:
        finish(args, run)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
