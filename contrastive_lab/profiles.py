"""Profiles: one notebook, two scales.

A profile is a frozen dataclass of the sizes a notebook trains with. The
narrative and code of a notebook are the same in every profile; only these
numbers change.

    >>> from contrastive_lab.profiles import get_profile
    >>> profile = get_profile()            # "full" on CUDA, else "quick"
    >>> profile = get_profile("quick")     # or choose by name
    >>> # or: export CLAB_PROFILE=quick   (before starting Jupyter)

`quick` runs every notebook in about two minutes on 2 CPU cores with a small
CNN on generated data; `full` is the real-scale run for a GPU (ResNet-18 with a
CIFAR stem on CIFAR-10, mixed precision, torch.compile, AdamW with warm-up and
cosine decay, the training set kept on the GPU as uint8).

The augmentation recipe belongs to the dataset: `profile.augment` is
`augment.recipe_for(profile.dataset)` (SimCLR's recipe for CIFAR-10, a
flip-free one for digits).
"""
from __future__ import annotations

import dataclasses
import os
from dataclasses import dataclass

import torch

from .augment import AugmentConfig, recipe_for

ENV_VAR = "CLAB_PROFILE"


@dataclass(frozen=True)
class Profile:
    """Sizes and switches for one scale of the course.

    Attributes:
        name: "quick" or "full".
        dataset: image dataset the self-supervised notebooks train on
            ("cluttered_digits" offline, or "cifar10").
        n_train, n_test: number of training / test images drawn from it.
        n_val: validation images carved from the training data (hyper-parameters
            are chosen on them; the test set is read once, for the final table).
        backbone: "small_cnn" (fast on CPU) or "resnet18" (CIFAR stem).
        cnn_widths: channel widths of the small CNN's four conv blocks.
        proj_dim: output size of projection heads.
        batch_size: training batch size.
        epochs: epochs of a notebook's main training run (MoCo, BYOL, supervised, MAE,
            CLIP, the CLI's moco/byol/clip).
        simclr_epochs: SimCLR's own epoch count (notebook 05's model, the CLI's simclr),
            None for `epochs`. Read it with `profile.epochs_of("simclr")`.
        sweep_epochs: epochs of each run inside a sweep (short runs).
        lr: learning rate (peak learning rate, with a schedule).
        optimizer: "adam" or "adamw" (fused kernels; see train.make_optimizer).
        weight_decay: the optimizer's weight decay (decoupled for AdamW).
        lr_schedule: "constant" or "cosine" (decay to 0 over the run).
        warmup_epochs: linear learning-rate warm-up at the start of a run.
        knn_k: neighbours used by k-NN evaluation.
        eval_every: evaluate every this many epochs during training.
        amp: mixed precision on CUDA, in `device.amp_dtype` (bf16 on sm_80+, fp16 + a
            gradient scaler on sm_7x such as a T4); no effect elsewhere.
        channels_last: use the channels_last memory format.
        compile: torch.compile the models' modules (once; see train.compile_once).
        store_uint8: keep the training images on the device as uint8.
        log_every: the fit loop reads the loss on the host every this many steps.
    """

    name: str
    dataset: str
    n_train: int
    n_test: int
    n_val: int
    backbone: str
    cnn_widths: tuple[int, ...]
    proj_dim: int
    batch_size: int
    epochs: int
    sweep_epochs: int
    lr: float
    optimizer: str
    weight_decay: float
    lr_schedule: str
    warmup_epochs: int
    knn_k: int
    eval_every: int
    amp: bool
    channels_last: bool
    compile: bool
    store_uint8: bool
    log_every: int = 25
    simclr_epochs: int | None = None

    @property
    def augment(self) -> AugmentConfig:
        """The augmentation recipe of this profile's dataset."""
        return recipe_for(self.dataset)

    def epochs_of(self, method: str) -> int:
        """Epochs of `method`'s main run: `simclr_epochs` for "simclr" when set, else `epochs`."""
        if method == "simclr" and self.simclr_epochs is not None:
            return self.simclr_epochs
        return self.epochs

    def replace(self, **changes) -> "Profile":
        """Return a copy with some fields changed: `profile.replace(epochs=3)`.

        A new `epochs` applies to every method, SimCLR included (its own count is
        dropped unless `simclr_epochs` is given too): a shortened run stays short.
        """
        unknown = set(changes) - {f.name for f in dataclasses.fields(self)}
        if unknown:
            raise ValueError(f"Profile has no field(s) {sorted(unknown)}")
        if "epochs" in changes:
            changes.setdefault("simclr_epochs", None)
        return dataclasses.replace(self, **changes)


QUICK = Profile(
    name="quick",
    dataset="cluttered_digits",
    n_train=5000,
    n_test=1000,
    n_val=1000,
    backbone="small_cnn",
    cnn_widths=(16, 32, 64, 128),
    proj_dim=64,
    batch_size=128,
    epochs=12,
    sweep_epochs=4,
    lr=2e-3,
    optimizer="adam",            # a constant rate: runs of a few hundred steps need no schedule
    weight_decay=0.0,
    lr_schedule="constant",
    warmup_epochs=0,
    knn_k=20,
    eval_every=4,
    amp=False,
    channels_last=True,
    compile=False,               # compiling costs more than these short CPU runs last
    store_uint8=False,           # the generated images are float; 5,000 of them fit anywhere
)

FULL = Profile(
    name="full",
    dataset="cifar10",
    n_train=45000,               # CIFAR-10's 50,000 training images minus the validation split
    n_test=10000,
    n_val=5000,
    backbone="resnet18",
    cnn_widths=(64, 128, 256, 512),
    proj_dim=128,
    batch_size=512,
    epochs=100,
    # SimCLR's own count, from public anchors for SimCLR + ResNet-18 on CIFAR-10 (k-NN 0.83 at 100
    # epochs, 0.85 at 200, 0.90 at 500) and an estimated 45,000-90,000 views/s on one H100/H200
    # (15-30 % of its bf16 peak at 3.3 GFLOP per view): 300 epochs of 45,000 images are 26.7 M views,
    # 5-10 min of compute, so k-NN >= 0.85 is expected in <= 15 min with compiling and evaluation.
    # Expected, not measured: no GPU run has been made yet (benchmarks/gpu_check.py measures it).
    simclr_epochs=300,
    sweep_epochs=20,
    # AdamW with warm-up and cosine decay rather than LARS: one well-kept optimizer with a
    # fused CUDA kernel, no layer-wise trust ratios to tune, and at batch 512 LARS's advantage
    # (very large batches) does not apply. Peak lr by the linear scaling rule, 1e-3 · 512 / 256.
    lr=2e-3,
    optimizer="adamw",
    weight_decay=0.05,
    lr_schedule="cosine",
    warmup_epochs=10,
    knn_k=200,
    eval_every=10,
    amp=True,
    channels_last=True,
    compile=True,                # for 100-epoch GPU runs; compiles once per model (not timed here)
    store_uint8=True,            # CIFAR-10 on the GPU: 150 MB as uint8
)

PROFILES = {p.name: p for p in (QUICK, FULL)}


def default_profile_name() -> str:
    """"full" when a CUDA GPU is visible, else "quick"."""
    return "full" if torch.cuda.is_available() else "quick"


def get_profile(name: str | None = None) -> Profile:
    """Return the profile to run with.

    Order of choice: the `name` argument, then the CLAB_PROFILE environment
    variable, then the device ("full" with CUDA, else "quick").
    """
    chosen = name or os.environ.get(ENV_VAR) or default_profile_name()
    chosen = chosen.strip().lower()
    if chosen not in PROFILES:
        raise ValueError(
            f"unknown profile {chosen!r}; choose one of {sorted(PROFILES)} "
            f"(argument or ${ENV_VAR})"
        )
    return PROFILES[chosen]
