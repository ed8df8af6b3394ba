"""Device choice and seeding.

    >>> from contrastive_lab.device import get_device, seed_everything
    >>> device = get_device()        # cuda, else mps, else cpu (or $CLAB_DEVICE)
    >>> seed_everything(0)           # CPU runs then repeat exactly (CLAB_SEED=1 shifts every seed by 1)
    >>> with count_host_syncs() as syncs:   # how often the host waited for the device
    ...     train_simclr(model, x, profile)
    >>> syncs.total
    >>> get_rank(), get_world_size()   # 0, 1 unless torch.distributed is running (torchrun)
"""
from __future__ import annotations

import os
import random

import collections

import numpy as np
import torch
from torch.utils._python_dispatch import TorchDispatchMode

ENV_VAR = "CLAB_DEVICE"
SEED_ENV_VAR = "CLAB_SEED"


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


def get_rank() -> int:
    """This process's rank in a torch.distributed run (torchrun); 0 when there is none."""
    dist = torch.distributed
    return dist.get_rank() if dist.is_available() and dist.is_initialized() else 0


def get_world_size() -> int:
    """How many processes train together (torch.distributed); 1 when there is no such run."""
    dist = torch.distributed
    return dist.get_world_size() if dist.is_available() and dist.is_initialized() else 1


def is_main_process() -> bool:
    """True on rank 0, the one process that prints progress and writes files."""
    return get_rank() == 0


def _mps_available() -> bool:
    backend = getattr(torch.backends, "mps", None)
    return bool(backend and backend.is_available())


def seed_offset() -> int:
    """The whole number in $CLAB_SEED (0 when unset): added to every seed the course sets.

    A notebook seeds its runs with `seed_everything(0)` and `make_generator(0)`; run it
    with CLAB_SEED=1 (or `make execute SEED=1`) and every one of those seeds moves by 1,
    so the same notebook shows how much its numbers move from one seed to the next.
    Generated datasets keep their own seeds: the data stays the same.
    """
    text = os.environ.get(SEED_ENV_VAR, "").strip()
    if not text:
        return 0
    try:
        return int(text)
    except ValueError:
        raise ValueError(f"{SEED_ENV_VAR} must be a whole number (the seed offset), got {text!r}") from None


def seed_everything(seed: int = 0) -> torch.Generator:
    """Seed Python, NumPy and torch (CPU and CUDA) with `seed + seed_offset()`; return a
    CPU generator seeded the same way.

    On CPU this makes a notebook repeat exactly. On a GPU, some kernels stay
    non-deterministic; results then agree only up to small differences.
    """
    seed = seed + seed_offset()
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)
    if torch.cuda.is_available():
        torch.cuda.manual_seed_all(seed)
    return torch.Generator().manual_seed(seed)


def make_generator(seed: int, device: torch.device | str = "cpu") -> torch.Generator:
    """A torch.Generator seeded with `seed + seed_offset()` that lives on `device`."""
    return torch.Generator(device=device).manual_seed(seed + seed_offset())


# Operators that make the host wait for the device: reading a value (`.item()`,
# `float(t)`, `bool(t)` dispatch to _local_scalar_dense), and ops whose output
# size depends on the data (nonzero, boolean-mask indexing) or that answer a
# Python bool.
SYNCING_OPS = frozenset({"_local_scalar_dense", "nonzero", "is_nonzero", "equal", "masked_select",
                         "_unique", "_unique2", "unique_dim", "unique_consecutive"})


# Indexing with a boolean mask (x[mask], x[mask] = v) needs the number of True
# entries on the host; on a CPU it reaches the dispatcher as plain index ops.
MASK_INDEXING_OPS = frozenset({"index", "index_put", "index_put_", "_index_put_impl_"})


def _has_mask(args) -> bool:
    indices = args[1] if len(args) > 1 else ()
    return isinstance(indices, (list, tuple)) and any(
        isinstance(i, torch.Tensor) and i.dtype in (torch.bool, torch.uint8) for i in indices)


class count_host_syncs(TorchDispatchMode):
    """Count the operators that synchronise host and device, on any device.

        >>> with count_host_syncs() as syncs:
        ...     loss.item()
        >>> syncs.total, dict(syncs.by_op)      # 1, {'aten._local_scalar_dense.default': 1}

    On a CPU nothing waits, but the same operators run, so the count made on a
    laptop is the count a GPU would pay. Used by the tests and benchmarks/gpu_check.py.
    """

    def __init__(self):
        super().__init__()
        self.by_op: collections.Counter = collections.Counter()

    @property
    def total(self) -> int:
        return sum(self.by_op.values())

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        name = str(func)                                  # e.g. "aten.nonzero.default"
        op = name.split(".")[1]
        if op in SYNCING_OPS or (op in MASK_INDEXING_OPS and _has_mask(args)):
            self.by_op[name] += 1
        return func(*args, **(kwargs or {}))
