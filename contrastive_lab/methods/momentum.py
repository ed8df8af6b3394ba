"""Momentum (EMA) encoders and the FIFO queue of keys: MoCo's and BYOL's state.

    ema_update(target, online, momentum)   target ← m·target + (1 − m)·online
    frozen_copy(module)                    a copy that takes no gradient
    KeyQueue(size, dim)                    a FIFO queue of L2-normalized keys, kept as a buffer
"""
from __future__ import annotations

import copy

import torch
import torch.nn as nn
import torch.nn.functional as F


def frozen_copy(module: nn.Module) -> nn.Module:
    """A deep copy of `module` whose parameters do not require gradient.

    A compiled forward is not copied (it would still run the original module):
    the twin is compiled on its own, if at all.
    """
    twin = copy.deepcopy(module)
    for m in twin.modules():
        m._compiled_call_impl = None
    for p in twin.parameters():
        p.requires_grad_(False)
    return twin


@torch.no_grad()
def ema_update(target: nn.Module, online: nn.Module, momentum: float) -> None:
    """target ← momentum · target + (1 − momentum) · online, parameter by parameter.

    Buffers (BatchNorm statistics) are copied from the online module.
    momentum = 0 makes the target a plain copy; momentum = 1 freezes it.
    One multi-tensor ("for-each") kernel updates every parameter at once.
    """
    if not 0.0 <= momentum <= 1.0:
        raise ValueError(f"momentum must be in [0, 1], got {momentum}")
    targets, onlines = list(target.parameters()), [p.detach() for p in online.parameters()]
    torch._foreach_mul_(targets, momentum)
    torch._foreach_add_(targets, onlines, alpha=1 - momentum)
    for t, o in zip(target.buffers(), online.buffers()):
        t.copy_(o)


class KeyQueue(nn.Module):
    """A FIFO queue of `size` keys of dimension `dim`, stored in a buffer (saved with the model).

    `enqueue(keys)` overwrites the oldest entries; `keys` returns the whole
    queue (size, dim). It starts filled with random unit vectors, as in MoCo.
    """

    def __init__(self, size: int, dim: int):
        super().__init__()
        if size <= 0 or dim <= 0:
            raise ValueError(f"queue size and dim must be positive, got size={size}, dim={dim}")
        self.register_buffer("queue", F.normalize(torch.randn(size, dim), dim=1))
        self.register_buffer("ptr", torch.zeros((), dtype=torch.long))

    @property
    def keys(self) -> torch.Tensor:
        return self.queue

    @torch.no_grad()
    def enqueue(self, keys: torch.Tensor) -> None:
        """Add keys (B, dim), B ≤ size, replacing the oldest ones."""
        size, dim = self.queue.shape
        if keys.ndim != 2 or keys.shape[1] != dim:
            raise ValueError(f"expected keys of shape (B, {dim}), got {tuple(keys.shape)}")
        if keys.shape[0] > size:
            raise ValueError(f"cannot enqueue {keys.shape[0]} keys into a queue of size {size}")
        idx = (self.ptr + torch.arange(keys.shape[0], device=keys.device)) % size
        self.queue[idx] = keys.detach().to(self.queue.dtype)
        self.ptr.copy_((self.ptr + keys.shape[0]) % size)
