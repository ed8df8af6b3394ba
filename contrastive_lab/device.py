"""Device choice and seeding.

    >>> from contrastive_lab.device import get_device, seed_everything
    >>> device = get_device()        # cuda, else mps, else cpu (or $CLAB_DEVICE)
    >>> seed_everything(0)           # CPU runs then repeat exactly (CLAB_SEED=1 shifts every seed by 1)
    >>> amp_dtype(device)            # bf16 on sm_80+, fp16 on sm_7x (T4, V100), None elsewhere
    >>> with count_host_syncs() as syncs:   # how often the host waited for the device
    ...     train_simclr(model, x, profile)
    >>> syncs.total, syncs.step_total, syncs.steps
    >>> get_rank(), get_world_size()   # 0, 1 unless torch.distributed is running (torchrun)
"""
from __future__ import annotations

import collections
import contextlib
import os
import random
import sys

import numpy as np
import torch
from torch.overrides import TorchFunctionMode
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


# ---------------------------------------------------------------- mixed precision
def amp_dtype(device: torch.device | str) -> torch.dtype | None:
    """The autocast dtype this device computes fast, or None for no autocast.

    - CUDA compute capability 8.0 or more (A100, L4, H100, H200): bfloat16, which
      has float32's range and needs no loss scaling;
    - CUDA 7.x (V100, and the T4 of Colab's free tier): float16 with a GradScaler
      (`train.fit` adds it). These cards have no bf16 arithmetic: PyTorch's
      `is_bf16_supported()` still answers True on them (bf16 is *emulated*), and
      bf16 there loses cuDNN's convolutions and torch.compile;
    - older GPUs, Apple MPS and the CPU: None (float32).
    """
    device = torch.device(device)
    if device.type != "cuda" or not torch.cuda.is_available():
        return None
    major, _ = torch.cuda.get_device_capability(device)
    if major >= 8 and torch.cuda.is_bf16_supported(including_emulation=False):
        return torch.bfloat16
    if major >= 7:
        return torch.float16
    return None


# ---------------------------------------------------------------- counting host synchronisations
# Operators that make the host wait for the device: reading a value (`.item()`,
# `float(t)`, `bool(t)` dispatch to _local_scalar_dense), and ops whose output
# size depends on the data (nonzero, boolean-mask indexing) or that answer a
# Python bool.
SYNCING_OPS = frozenset({"_local_scalar_dense", "nonzero", "is_nonzero", "equal", "masked_select",
                         "_unique", "_unique2", "unique_dim", "unique_consecutive"})


# Indexing with a boolean mask (x[mask], x[mask] = v) needs the number of True
# entries on the host; on a CPU it reaches the dispatcher as plain index ops.
MASK_INDEXING_OPS = frozenset({"index", "index_put", "index_put_", "_index_put_impl_"})

# Tensor methods that move data between host and device (or read it on the host).
# On a machine without a GPU they move nothing, so the counter watches the calls.
TRANSFER_METHODS = frozenset({"to", "cuda", "cpu", "tolist", "numpy"})

_active_counters: list["count_host_syncs"] = []
_step_depth = 0


def _has_mask(args) -> bool:
    indices = args[1] if len(args) > 1 else ()
    return isinstance(indices, (list, tuple)) and any(
        isinstance(i, torch.Tensor) and i.dtype in (torch.bool, torch.uint8) for i in indices)


def _copy_between_devices(op: str, args, kwargs) -> str | None:
    """"cpu→cuda" when this aten op copies a tensor from one device to another, else None."""
    if op == "_to_copy" and args and "device" in kwargs and kwargs["device"] is not None:
        src, dst = args[0].device, torch.device(kwargs["device"])
    elif op == "copy_" and len(args) > 1 and isinstance(args[1], torch.Tensor):
        src, dst = args[1].device, args[0].device
    else:
        return None
    return f"{src.type}→{dst.type}" if src.type != dst.type else None


def _mixed_devices(args) -> str | None:
    """"cpu+cuda" when an operator gets host tensors (not 0-dim scalars) beside device tensors:
    e.g. a host index batch into a device tensor, which copies the index to the device."""
    tensors = [a for a in args if isinstance(a, torch.Tensor)]
    tensors += [t for a in args if isinstance(a, (list, tuple)) for t in a if isinstance(t, torch.Tensor)]
    host = any(t.device.type == "cpu" and t.ndim > 0 for t in tensors)
    others = sorted({t.device.type for t in tensors if t.device.type != "cpu"})
    return f"cpu+{others[0]}" if host and others else None


def _names_a_device(func_name: str, args, kwargs) -> bool:
    """Whether a Tensor.to / .cuda / .cpu call asks for a device (not just a dtype or layout)."""
    if func_name in ("cuda", "cpu"):
        return True
    if kwargs.get("device") is not None:
        return True
    return any(isinstance(a, (str, torch.device, int, torch.Tensor)) and not isinstance(a, bool)
               for a in args[1:])


@contextlib.contextmanager
def training_step():
    """Mark one training step (`train.fit` wraps each: forward, backward, optimizer step).

    `count_host_syncs` counts what happens inside the marks separately (`in_steps`),
    so a step's syncs are told apart from the loop's own reads between steps.
    """
    global _step_depth
    for counter in _active_counters:
        counter.steps += 1
    _step_depth += 1
    try:
        yield
    finally:
        _step_depth -= 1


class _TransferWatch(TorchFunctionMode):
    """Sees Tensor.to / .cuda / .cpu / .tolist / .numpy calls made by the course's code
    inside a training step, for `count_host_syncs(as_if_gpu=True)`."""

    def __init__(self, counter: "count_host_syncs"):
        super().__init__()
        self.counter = counter

    def __torch_function__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        name = getattr(func, "__name__", "")
        if (_step_depth and name in TRANSFER_METHODS and args and isinstance(args[0], torch.Tensor)
                and args[0].device.type == "cpu" and not _called_by_torch()):
            if name in ("tolist", "numpy"):
                self.counter._record(f"Tensor.{name} (a read to the host on a GPU)")
            elif _names_a_device(name, args, kwargs):
                self.counter._record(f"Tensor.{name} of a host tensor to a device (a copy on a GPU)")
        return func(*args, **kwargs)


def _called_by_torch() -> bool:
    """Whether the call being watched comes from PyTorch's own code (e.g. GradScaler moving its
    found-inf flag to the device it already is on), which is not the course's to fix."""
    frame = sys._getframe(2)
    while frame is not None and frame.f_globals.get("__name__") == __name__:
        frame = frame.f_back
    module = frame.f_globals.get("__name__", "") if frame is not None else ""
    return module == "torch" or module.startswith("torch.")


class count_host_syncs(TorchDispatchMode):
    """Count what makes the host wait for the device, or moves data between them, on any device.

        >>> with count_host_syncs() as syncs:
        ...     loss.item()
        >>> syncs.total, dict(syncs.by_op)      # 1, {'aten._local_scalar_dense.default': 1}

    Counted everywhere:
    - operators that read a value on the host or whose output size depends on the
      data (`.item()`, `float(t)`, `bool(t)`, nonzero, boolean-mask indexing, ...);
    - copies between two devices (`aten._to_copy` and `copy_` with a source on one
      device and a destination on another: `.to(device)`, `.cpu()`, `.tolist()` of a
      GPU tensor), named by direction, e.g. "aten._to_copy.default cpu→cuda".
      A copy from pageable host memory, and any copy to the host, waits for the device;
    - operators given host tensors beside device tensors (a host index batch into
      data on the GPU), which copy the host tensor on every call.

    Counted inside training steps only (`training_step()`; `train.fit` marks each),
    when `as_if_gpu` (default: True when no CUDA GPU is present): the calls that on
    a GPU would move data, made by the course's code on a host tensor: `.to(device)`,
    `.cuda()`, `.cpu()` (a no-op on a CPU, a copy on a GPU: the tensor was made on the
    host inside the step) and `.tolist()` / `.numpy()` (a read). Inside a step
    everything should already be on the device, so on a laptop the count made is
    the count a GPU would pay.

    Attributes: by_op (name → count, everything), in_steps (name → count, inside steps),
    steps (training steps seen), total, step_total. Used by the tests and
    benchmarks/gpu_check.py.
    """

    def __init__(self, as_if_gpu: bool | None = None):
        super().__init__()
        self.by_op: collections.Counter = collections.Counter()
        self.in_steps: collections.Counter = collections.Counter()
        self.steps = 0
        self.as_if_gpu = (not torch.cuda.is_available()) if as_if_gpu is None else as_if_gpu
        self._watch = _TransferWatch(self) if self.as_if_gpu else None

    @property
    def total(self) -> int:
        """Everything counted, inside and outside training steps."""
        return sum(self.by_op.values())

    @property
    def step_total(self) -> int:
        """What was counted inside training steps."""
        return sum(self.in_steps.values())

    def _record(self, name: str) -> None:
        self.by_op[name] += 1
        if _step_depth:
            self.in_steps[name] += 1

    def __enter__(self):
        _active_counters.append(self)
        if self._watch is not None:
            self._watch.__enter__()
        return super().__enter__()

    def __exit__(self, *exc):
        try:
            return super().__exit__(*exc)
        finally:
            if self._watch is not None:
                self._watch.__exit__(*exc)
            _active_counters.remove(self)

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        name = str(func)                                  # e.g. "aten.nonzero.default"
        op = name.split(".")[1]
        if op in SYNCING_OPS or (op in MASK_INDEXING_OPS and _has_mask(args)):
            self._record(name)
        elif op in ("_to_copy", "copy_"):
            direction = _copy_between_devices(op, args, kwargs)
            if direction:
                self._record(f"{name} {direction}")
        else:
            mixed = _mixed_devices(args)
            if mixed:
                self._record(f"{name} on {mixed} (copies the host tensor)")
        return func(*args, **kwargs)
