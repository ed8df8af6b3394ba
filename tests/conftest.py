"""Helpers several test files share: points on the unit circle at known angles, fake dataset files.

    from conftest import circle, unit

Points at known angles make similarities a learner can work out by hand: cos(60°) = 0.5.
"""
import gzip
import math
import struct
from pathlib import Path

import numpy as np
import torch


def unit(deg: float) -> torch.Tensor:
    """The point of the unit circle at `deg` degrees, shape (2,)."""
    r = math.radians(deg)
    return torch.tensor([math.cos(r), math.sin(r)])


def circle(*degs: float) -> torch.Tensor:
    """Points of the unit circle at `degs` degrees, shape (len(degs), 2)."""
    return torch.stack([unit(d) for d in degs])


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
