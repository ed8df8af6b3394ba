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
CIFAR stem on CIFAR-10, mixed precision).
"""
from __future__ import annotations

import dataclasses
import os
from dataclasses import dataclass

import torch

ENV_VAR = "CLAB_PROFILE"


@dataclass(frozen=True)
class Profile:
    """Sizes and switches for one scale of the course.

    Attributes:
        name: "quick" or "full".
        dataset: image dataset the self-supervised notebooks train on
            ("cluttered_digits" offline, or "cifar10").
        n_train, n_test: number of training / test images drawn from it.
        backbone: "small_cnn" (fast on CPU) or "resnet18" (CIFAR stem).
        cnn_widths: channel widths of the small CNN's four conv blocks.
        proj_dim: output size of projection heads.
        batch_size: training batch size.
        epochs: epochs of a notebook's main training run.
        sweep_epochs: epochs of each run inside a sweep (short runs).
        lr: Adam learning rate.
        knn_k: neighbours used by k-NN evaluation.
        eval_every: evaluate every this many epochs during training.
        amp: use bf16 autocast (only has an effect on CUDA).
        channels_last: use the channels_last memory format.
        compile: wrap models in torch.compile.
        num_threads: CPU threads torch may use (0 = leave torch's default).
    """

    name: str
    dataset: str
    n_train: int
    n_test: int
    backbone: str
    cnn_widths: tuple[int, ...]
    proj_dim: int
    batch_size: int
    epochs: int
    sweep_epochs: int
    lr: float
    knn_k: int
    eval_every: int
    amp: bool
    channels_last: bool
    compile: bool
    num_threads: int = 0

    def replace(self, **changes) -> "Profile":
        """Return a copy with some fields changed: `profile.replace(epochs=3)`."""
        unknown = set(changes) - {f.name for f in dataclasses.fields(self)}
        if unknown:
            raise ValueError(f"Profile has no field(s) {sorted(unknown)}")
        return dataclasses.replace(self, **changes)


QUICK = Profile(
    name="quick",
    dataset="cluttered_digits",
    n_train=5000,
    n_test=1000,
    backbone="small_cnn",
    cnn_widths=(16, 32, 64, 128),
    proj_dim=64,
    batch_size=128,
    epochs=12,
    sweep_epochs=4,
    lr=2e-3,
    knn_k=20,
    eval_every=4,
    amp=False,
    channels_last=True,
    compile=False,
)

FULL = Profile(
    name="full",
    dataset="cifar10",
    n_train=50000,
    n_test=10000,
    backbone="resnet18",
    cnn_widths=(64, 128, 256, 512),
    proj_dim=128,
    batch_size=512,
    epochs=100,
    sweep_epochs=20,
    lr=1e-3,
    knn_k=200,
    eval_every=10,
    amp=True,
    channels_last=True,
    compile=False,
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
