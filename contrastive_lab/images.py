"""Image tensors as the course keeps them: float in [0, 1], or uint8 on the device.

A training set lives on the device for the whole run, so that a batch is one
index operation, with no DataLoader and no copy from the host per step. Kept as
uint8 it takes a quarter of the memory (CIFAR-10's 50,000 images: 150 MB instead
of 600 MB) and each batch is converted when it is drawn.

    >>> data = images_on_device(train_x, device, as_uint8=True)   # once
    >>> x = as_float_images(data[idx])                              # every step: (B, C, H, W) float
"""
from __future__ import annotations

import torch


def as_float_images(x: torch.Tensor) -> torch.Tensor:
    """uint8 images (0–255) → float32 in [0, 1]; float images are returned as they are."""
    if x.dtype == torch.uint8:
        return x.float().div_(255)
    if not x.is_floating_point():
        raise TypeError(f"expected uint8 or float images, got dtype {x.dtype}")
    return x


def images_on_device(x: torch.Tensor, device, as_uint8: bool = False) -> torch.Tensor:
    """Move images (N, C, H, W) to `device` once, optionally stored as uint8.

    Float images in [0, 1] are rounded to the nearest of 256 levels when
    `as_uint8` (what an 8-bit image file holds anyway); uint8 images stay uint8.
    """
    if x.ndim != 4:
        raise ValueError(f"expected images of shape (N, C, H, W), got {tuple(x.shape)}")
    if as_uint8 and x.is_floating_point():
        x = (x.clamp(0, 1) * 255).round().to(torch.uint8)
    return x.to(device)
