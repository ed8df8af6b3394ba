"""Device choice and seeding.

    >>> from contrastive_lab.device import get_device, seed_everything
    >>> device = get_device()        # cuda, else mps, else cpu (or $CLAB_DEVICE)
    >>> seed_everything(0)           # CPU runs then repeat exactly
"""
from __future__ import annotations

import os
import random

import numpy as np
import torch

ENV_VAR = "CLAB_DEVICE"


def get_device(name: str | None = None) -> torch.device:
    """Pick the device to train on.

    Order: the `name` argument, then $CLAB_DEVICE, then CUDA, Apple MPS, CPU.
    Asking for a device that is not present raises a ValueError that says so.
    """
    chosen = name or os.environ.get(ENV_VAR)
    if chosen:
        device = torch.device(chosen)
        if device.type == "cuda" and not torch.cuda.is_available():
            raise ValueError(f"device {chosen!r} asked for, but no CUDA GPU is visible")
        if device.type == "mps" and not _mps_available():
            raise ValueError(f"device {chosen!r} asked for, but Apple MPS is not available")
        return device
    if torch.cuda.is_available():
        return torch.device("cuda")
    if _mps_available():
        return torch.device("mps")
    return torch.device("cpu")


def _mps_available() -> bool:
    backend = getattr(torch.backends, "mps", None)
    return bool(backend and backend.is_available())


def seed_everything(seed: int = 0) -> torch.Generator:
    """Seed Python, NumPy and torch (CPU and CUDA); return a seeded CPU generator.

    On CPU this makes a notebook repeat exactly. On a GPU, some kernels stay
    non-deterministic; results then agree only up to small differences.
    """
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)
    if torch.cuda.is_available():
        torch.cuda.manual_seed_all(seed)
    return torch.Generator().manual_seed(seed)


def make_generator(seed: int, device: torch.device | str = "cpu") -> torch.Generator:
    """A torch.Generator seeded with `seed` that lives on `device`."""
    return torch.Generator(device=device).manual_seed(seed)
