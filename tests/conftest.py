"""Helpers shared by the test modules (import them: `from conftest import circle, unit, TOY`).

    unit(deg)                 a point of the unit circle, [cos, sin]: losses and metrics worked out by hand
    circle(*degs)             several such points as a float32 tensor (len(degs), 2)
    TOY                       the quick profile at toy size: a 4-8-8-8 CNN, 8-d projections, batches of 16
    write_fake_mnist(folder)  the four MNIST files, a few random images each (write_idx writes one)
"""
import gzip
import math
import struct
from pathlib import Path

import numpy as np
import torch

from contrastive_lab.profiles import QUICK


def unit(deg: float) -> list[float]:
    """The point of the unit circle at `deg` degrees, [cos, sin]."""
    r = math.radians(deg)
    return [math.cos(r), math.sin(r)]


def circle(*degs: float) -> torch.Tensor:
    """Points of the unit circle at `degs` degrees: a float32 tensor (len(degs), 2)."""
    return torch.tensor([unit(d) for d in degs])


TOY = QUICK.replace(cnn_widths=(4, 8, 8, 8), proj_dim=8, batch_size=16, channels_last=False, log_every=4)


def write_idx(path: Path, array: np.ndarray) -> None:
    """An MNIST-style IDX file (gzipped, uint8) holding `array`."""
    header = struct.pack(">I", 0x0800 | array.ndim) + b"".join(struct.pack(">I", s) for s in array.shape)
    with gzip.open(path, "wb") as f:
        f.write(header + array.astype(np.uint8).tobytes())


def write_fake_mnist(folder: Path, n=5) -> None:
    """The four MNIST files in `folder`, n random 28×28 images each split, labels 0, 1, 2 …"""
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    for prefix in ("train", "t10k"):
        write_idx(folder / f"{prefix}-images-idx3-ubyte.gz", rng.integers(0, 256, (n, 28, 28)))
        write_idx(folder / f"{prefix}-labels-idx1-ubyte.gz", np.arange(n) % 10)
