"""Cluttered digits: a harder offline image set built on real handwriting.

Each image is a 32×32 RGB canvas with one scikit-learn digit pasted at a random
position, scale (16–24 px) and rotation, in a random colour on a random
background, with fragments of other digits as clutter and a little pixel noise.
The digit's class is the label. Train and test images are drawn from disjoint
sets of the 1,797 source digits, so the test set is new handwriting.

Raw pixels do poorly on it (colour and position dominate the pixel distance),
so what an encoder learns shows. Generation is vectorized (one `grid_sample`
for all images) and deterministic given the seed.

    >>> x, y = make_cluttered_digits(1000, split="train", seed=0)
    >>> x.shape, y.shape          # (1000, 3, 32, 32) in [0, 1], (1000,)
"""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from .digits import load_digits, split_indices

CANVAS = 32


def _place(glyphs: torch.Tensor, size: torch.Tensor, angle: torch.Tensor,
           center: torch.Tensor, canvas: int) -> torch.Tensor:
    """Paste 8×8 glyphs onto a canvas with one affine warp each.

    glyphs (N, 8, 8); size (N,) in pixels; angle (N,) in radians; center (N, 2)
    as (x, y) in [-1, 1] canvas coordinates. Returns masks (N, 1, canvas, canvas).
    """
    n = glyphs.shape[0]
    zoom = canvas / size                                  # canvas units per glyph unit
    cos, sin = torch.cos(angle), torch.sin(angle)
    theta = torch.zeros(n, 2, 3)
    # glyph coords = zoom * R(-angle) @ (canvas coords - center)
    theta[:, 0, 0], theta[:, 0, 1] = zoom * cos, zoom * sin
    theta[:, 1, 0], theta[:, 1, 1] = -zoom * sin, zoom * cos
    theta[:, :, 2] = -(theta[:, :, :2] @ center.unsqueeze(-1)).squeeze(-1)
    grid = F.affine_grid(theta, [n, 1, canvas, canvas], align_corners=False)
    return F.grid_sample(glyphs.unsqueeze(1), grid, mode="bilinear",
                         padding_mode="zeros", align_corners=False)


def _luminance(rgb: torch.Tensor) -> torch.Tensor:
    return rgb @ torch.tensor([0.299, 0.587, 0.114])


class Sampler:
    """What every generator of digit scenes starts from: the source handwriting of a split
    and one seeded random stream with a `uniform` helper. Shared with `sequences.py`.

    split: "train" or "test" (disjoint sets of the 1,797 source digits);
    stream: an offset that gives another generator its own random numbers.
    """

    def __init__(self, split: str, seed: int, stream: int = 0):
        if split not in ("train", "test"):
            raise ValueError(f"split must be 'train' or 'test', got {split!r}")
        self.digits, self.labels = load_digits()
        train_idx, test_idx = split_indices(self.labels)
        self.source = train_idx if split == "train" else test_idx
        self.g = torch.Generator().manual_seed(seed * 2 + (split == "test") + stream)

    def uniform(self, *shape, low: float = 0.0, high: float = 1.0) -> torch.Tensor:
        return low + (high - low) * torch.rand(*shape, generator=self.g)

    def pick(self, n: int) -> torch.Tensor:
        """n random indices into `digits`, from this split's source handwriting."""
        return self.source[torch.randint(len(self.source), (n,), generator=self.g)]


def blend(image: torch.Tensor, colour: torch.Tensor, alpha: torch.Tensor) -> torch.Tensor:
    """Paint `colour` over `image` with opacity `alpha` (broadcast): image·(1 − α) + colour·α."""
    return image * (1 - alpha) + colour * alpha


def make_cluttered_digits(
    n: int,
    split: str = "train",
    seed: int = 0,
    *,
    size_range: tuple[float, float] = (16.0, 24.0),
    max_rotation_deg: float = 25.0,
    n_clutter: int = 3,
    noise_std: float = 0.03,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Generate `n` cluttered-digit images.

    Args:
        n: number of images (any size; sources are reused with new placements).
        split: "train" or "test": which disjoint set of source digits to draw.
        seed: the same (n, split, seed) always gives the same images.
        size_range: digit size in pixels on the 32×32 canvas.
        max_rotation_deg: rotations are uniform in ±this.
        n_clutter: fragments of other digits drawn under the main digit.
        noise_std: std of Gaussian pixel noise.

    Returns:
        images (n, 3, 32, 32) float32 in [0, 1]; labels (n,) int64 in 0..9.
    """
    if n <= 0:
        raise ValueError(f"n must be positive, got {n}")
    r = Sampler(split, seed)
    uniform = r.uniform
    pick = r.pick(n)
    lo, hi = size_range
    size = uniform(n, low=lo, high=hi)
    angle = uniform(n, low=-1.0, high=1.0) * math.radians(max_rotation_deg)
    margin = (size / CANVAS).unsqueeze(1) * 0.5            # keep most of the digit inside
    center = (uniform(n, 2) * 2 - 1) * (1 - 2 * margin) * 0.9
    mask = _place(r.digits[pick], size, angle, center, CANVAS).clamp(0, 1)

    background = uniform(n, 3)
    foreground = uniform(n, 3)
    # make sure the digit stands out from its background in brightness
    dark_bg = _luminance(background) < 0.5
    foreground = torch.where(dark_bg.unsqueeze(1), 0.6 + 0.4 * foreground, 0.4 * foreground)
    image = background[:, :, None, None].expand(n, 3, CANVAS, CANVAS).clone()

    for _ in range(n_clutter):
        other = r.pick(n)
        c_size = uniform(n, low=10.0, high=16.0)
        c_angle = uniform(n, low=-math.pi, high=math.pi)
        c_center = uniform(n, 2) * 2 - 1
        c_mask = _place(r.digits[other], c_size, c_angle, c_center, CANVAS).clamp(0, 1)
        c_colour = uniform(n, 3)[:, :, None, None]
        image = blend(image, c_colour, uniform(n, low=0.3, high=0.6)[:, None, None, None] * c_mask)

    image = blend(image, foreground[:, :, None, None], mask)
    image = image + noise_std * torch.randn(image.shape, generator=r.g)
    return image.clamp(0, 1).contiguous(), r.labels[pick].clone()
