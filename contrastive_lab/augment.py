"""Batched image augmentations with per-image random parameters.

torchvision's v2 transforms applied to a batched tensor draw ONE set of random
parameters for the whole batch (every image gets the same crop). Contrastive
learning needs a different crop, colour and blur for every image, and looping
over images in Python is slow. Here each augmentation draws its parameters as
tensors of shape (N, …) and applies them in one vectorized call:

- crops and flips are one affine warp per image (`affine_grid` + `grid_sample`);
- colour jitter, grayscale and noise are per-image broadcasts;
- blur is a grouped convolution with one Gaussian kernel per image.

Everything runs on the device the batch lives on, and nothing reads a value
back on the host: every random parameter is drawn there (pass a
`torch.Generator` on that device to make the draws repeat), and the few
constant matrices are built once per device, not from Python lists per step.

Views are always computed in float32 with autocast switched off, also when
called inside a training step under bf16/fp16 autocast: in bf16 the affine warp
alone would move pixels by up to 24 grey levels, and a run on a GPU would see
other views than the same seed on a CPU. Cast the views for the encoder
afterwards (the course's training loop does; autocast would too).

`RECIPES` holds one augmentation recipe per dataset (`recipe_for(name)`), so a
profile trains CIFAR-10 with SimCLR's recipe and digits with one that keeps
them readable.

    >>> cfg = AugmentConfig()
    >>> g = torch.Generator().manual_seed(0)
    >>> v1, v2 = two_views(images, cfg, generator=g)   # images (N, 3, H, W) in [0, 1]
"""
from __future__ import annotations

import contextlib
import functools
import math
from dataclasses import dataclass, replace

import torch
import torch.nn.functional as F


@dataclass(frozen=True)
class AugmentConfig:
    """Which augmentations to apply, and how strongly.

    crop_scale: range of the crop's area as a fraction of the image.
    crop_ratio: range of the crop's aspect ratio (width / height).
    flip_p: probability of a horizontal flip (0 for digits: a flip breaks them).
    jitter_p: probability of colour jitter; brightness/contrast/saturation are
        the maximum relative change, hue the maximum shift in turns (≤ 0.5).
    grayscale_p: probability of turning the image gray.
    blur_p, blur_sigma: probability and sigma range (pixels) of Gaussian blur.
    noise_std: std of additive Gaussian noise (0 = none).
    rotation_p, rotation_degrees: probability and angle range of a rotation about
        the centre (after the crop). (180, 180) turns a 6 into a 9: notebook 04's
        example of an augmentation that breaks the label.
    """

    crop_scale: tuple[float, float] = (0.3, 1.0)
    crop_ratio: tuple[float, float] = (3 / 4, 4 / 3)
    flip_p: float = 0.0
    jitter_p: float = 0.8
    brightness: float = 0.4
    contrast: float = 0.4
    saturation: float = 0.4
    hue: float = 0.1
    grayscale_p: float = 0.5
    blur_p: float = 0.0
    blur_sigma: tuple[float, float] = (0.1, 1.5)
    noise_std: float = 0.0
    rotation_p: float = 0.0
    rotation_degrees: tuple[float, float] = (-180.0, 180.0)

    def without(self, *groups: str) -> "AugmentConfig":
        """A copy with whole groups switched off: "crop", "flip", "color", "blur", "noise", "rotation".

        `cfg.without("color")` keeps crops only; used by augmentation ablations.
        """
        off = {
            "crop": {"crop_scale": (1.0, 1.0), "crop_ratio": (1.0, 1.0)},
            "flip": {"flip_p": 0.0},
            "color": {"jitter_p": 0.0, "grayscale_p": 0.0},
            "blur": {"blur_p": 0.0},
            "noise": {"noise_std": 0.0},
            "rotation": {"rotation_p": 0.0},
        }
        changes = {}
        for group in groups:
            if group not in off:
                raise ValueError(f"unknown augmentation group {group!r}; one of {sorted(off)}")
            changes.update(off[group])
        return replace(self, **changes)


def in_float32(fn):
    """Run an augmentation in float32 with autocast off on the batch's device (see the module
    docstring); half-precision input is upcast. Outside autocast this only checks a flag."""
    @functools.wraps(fn)
    def wrapper(x: torch.Tensor, *args, **kwargs):
        half = isinstance(x, torch.Tensor) and x.dtype in (torch.float16, torch.bfloat16)
        kind = x.device.type if isinstance(x, torch.Tensor) else "cpu"
        autocast_on = torch.amp.is_autocast_available(kind) and torch.is_autocast_enabled(kind)
        if not (half or autocast_on):
            return fn(x, *args, **kwargs)
        with torch.autocast(kind, enabled=False) if autocast_on else contextlib.nullcontext():
            return fn(x.float() if half else x, *args, **kwargs)
    return wrapper


def _check_images(x: torch.Tensor) -> None:
    if x.ndim != 4 or x.shape[1] not in (1, 3):
        raise ValueError(f"expected images of shape (N, 3, H, W) or (N, 1, H, W), got {tuple(x.shape)}")
    if not x.is_floating_point():
        raise TypeError(f"expected float images in [0, 1], got dtype {x.dtype}")


def _rand(n: int, x: torch.Tensor, generator: torch.Generator | None) -> torch.Tensor:
    """n uniform draws in [0, 1) on x's device, float32."""
    return torch.rand(n, generator=generator, device=x.device)


@in_float32
def random_resized_crop(x: torch.Tensor, scale=(0.3, 1.0), ratio=(3 / 4, 4 / 3),
                        flip_p: float = 0.0, generator: torch.Generator | None = None) -> torch.Tensor:
    """Crop a random box from every image and resize it back to (H, W); optional flip.

    x: (N, C, H, W). Each image gets its own box: area fraction uniform in
    `scale`, log-aspect-ratio uniform in log(`ratio`), position uniform where
    the box fits. Returns (N, C, H, W).
    """
    _check_images(x)
    n = x.shape[0]
    area = scale[0] + (scale[1] - scale[0]) * _rand(n, x, generator)
    log_r = math.log(ratio[0]) + (math.log(ratio[1]) - math.log(ratio[0])) * _rand(n, x, generator)
    aspect = torch.exp(log_r)
    # box width / height as fractions of the image side, clipped to fit
    w = torch.sqrt(area * aspect).clamp(max=1.0)
    h = torch.sqrt(area / aspect).clamp(max=1.0)
    cx = (1 - w) * (2 * _rand(n, x, generator) - 1)   # centre in [-1, 1] coords
    cy = (1 - h) * (2 * _rand(n, x, generator) - 1)
    flip = torch.where(_rand(n, x, generator) < flip_p, -1.0, 1.0)
    theta = torch.zeros(n, 2, 3, device=x.device, dtype=x.dtype)
    theta[:, 0, 0] = w * flip
    theta[:, 0, 2] = cx
    theta[:, 1, 1] = h
    theta[:, 1, 2] = cy
    grid = F.affine_grid(theta, list(x.shape), align_corners=False)
    return F.grid_sample(x, grid, mode="bilinear", padding_mode="reflection", align_corners=False)


_LUMA = (0.299, 0.587, 0.114)
# RGB -> YIQ: Y is brightness, (I, Q) the colour plane. Rotating (I, Q) shifts the hue.
_RGB_TO_YIQ = ((0.299, 0.587, 0.114),
               (0.596, -0.274, -0.322),
               (0.211, -0.523, 0.312))
_YIQ_TO_RGB = tuple(map(tuple, torch.linalg.inv(torch.tensor(_RGB_TO_YIQ, dtype=torch.float64)).tolist()))


@functools.lru_cache(maxsize=64)
def _constant(values: tuple, device: torch.device, dtype: torch.dtype) -> torch.Tensor:
    """A constant tensor, built once per (device, dtype) and reused by every step."""
    return torch.tensor(values, dtype=dtype, device=device)


def _gray(x: torch.Tensor) -> torch.Tensor:
    """(N, 3, H, W) → (N, 1, H, W) luminance."""
    weights = _constant(_LUMA, x.device, x.dtype)
    return (x * weights[None, :, None, None]).sum(1, keepdim=True)


def hue_rotation_matrices(turns: torch.Tensor) -> torch.Tensor:
    """(N,) hue shifts in turns → (N, 3, 3) RGB matrices that rotate the hue.

    The rotation happens in YIQ space, so brightness (Y) is kept. A positive
    shift turns red towards yellow and green, the direction of torchvision's
    `adjust_hue`. It is a linear stand-in for shifting H in HSV, not the same
    map: HSV keeps each pixel's largest and smallest channel, YIQ keeps its
    luminance, so the two agree in direction, not pixel for pixel (see
    tests/test_augment_reference.py).
    """
    to_yiq = _constant(_RGB_TO_YIQ, turns.device, turns.dtype)
    to_rgb = _constant(_YIQ_TO_RGB, turns.device, turns.dtype)
    angle = 2 * math.pi * turns
    cos, sin = torch.cos(angle), torch.sin(angle)
    rot = torch.zeros(len(turns), 3, 3, device=turns.device, dtype=turns.dtype)
    rot[:, 0, 0] = 1
    rot[:, 1, 1], rot[:, 1, 2] = cos, sin
    rot[:, 2, 1], rot[:, 2, 2] = -sin, cos
    return to_rgb @ rot @ to_yiq


@in_float32
def adjust_colors(x: torch.Tensor, brightness: torch.Tensor, contrast: torch.Tensor,
                  saturation: torch.Tensor | None = None, hue: torch.Tensor | None = None) -> torch.Tensor:
    """Brightness, contrast, saturation and hue, each image with its own factors, in that order.

    x: (N, C, H, W) in [0, 1]. brightness, contrast, saturation: (N,) factors
    (1 = unchanged); hue: (N,) shifts in turns (0 = unchanged). Saturation and
    hue need 3 channels; None skips them. Each step is torchvision's
    (`adjust_brightness`: b·x; `adjust_contrast`: c·x + (1 − c)·mean gray;
    `adjust_saturation`: s·x + (1 − s)·gray) except hue (see `hue_rotation_matrices`).

    All four are linear in the pixel colour, so each image gets ONE C×C colour
    matrix and one offset:  out = Hue · Sat · (c·b) · x + (1 − c) · b · mean_gray(x),
    clipped to [0, 1] once at the end (torchvision clips after every step, which
    differs only where a step overshoots). Returns (N, C, H, W).
    """
    _check_images(x)
    n, c = x.shape[:2]
    eye = torch.eye(c, device=x.device, dtype=x.dtype).expand(n, c, c)
    matrix = (brightness * contrast)[:, None, None] * eye                   # (N, C, C)
    if saturation is not None:
        s = saturation[:, None, None]
        to_gray = _constant(_LUMA, x.device, x.dtype)
        sat = s * eye + (1 - s) * to_gray.expand(n, 1, 3).expand(n, 3, 3)   # rows: s·e_i + (1−s)·w
        matrix = sat @ matrix
    if hue is not None:
        matrix = hue_rotation_matrices(hue).to(x.dtype) @ matrix
    mean_gray = (_gray(x) if c == 3 else x).mean((1, 2, 3))                 # (N,)
    offset = ((1 - contrast) * brightness * mean_gray)[:, None, None, None]
    return (torch.bmm(matrix, x.flatten(2)).view_as(x) + offset).clamp(0, 1)


@in_float32
def color_jitter(x: torch.Tensor, brightness=0.4, contrast=0.4, saturation=0.4, hue=0.1,
                 p: float = 0.8, generator: torch.Generator | None = None) -> torch.Tensor:
    """Per-image random brightness, contrast, saturation and hue, applied with probability p.

    x: (N, 3, H, W) in [0, 1] (1-channel images get brightness and contrast only).
    Factors are uniform in [1 − s, 1 + s]; the hue shift is uniform in ±`hue`
    turns (a rotation in YIQ colour space). `adjust_colors` applies them, in
    that order. Returns (N, C, H, W).
    """
    _check_images(x)
    n, c = x.shape[:2]

    def factor(strength):
        return 1 + strength * (2 * _rand(n, x, generator) - 1)

    b, k = factor(brightness), factor(contrast)
    apply = _rand(n, x, generator) < p
    s = turns = None
    if c == 3:
        s = factor(saturation)
        if hue > 0:
            turns = hue * (1 - 2 * _rand(n, x, generator))
    out = adjust_colors(x, b, k, s, turns)
    return torch.where(apply[:, None, None, None], out, x)


@in_float32
def random_grayscale(x: torch.Tensor, p: float = 0.2, generator: torch.Generator | None = None) -> torch.Tensor:
    """Turn each image gray (keeping 3 channels) with probability p. (N, C, H, W) → same."""
    _check_images(x)
    apply = (_rand(x.shape[0], x, generator) < p)[:, None, None, None]
    return torch.where(apply, _gray(x).expand_as(x), x)


def gaussian_kernels(sigma: torch.Tensor, radius: int) -> torch.Tensor:
    """(N,) standard deviations (pixels) → (N, 2·radius + 1) Gaussian kernels, each summing to 1."""
    taps = torch.arange(-radius, radius + 1, device=sigma.device, dtype=sigma.dtype)
    kernel = torch.exp(-(taps[None] ** 2) / (2 * sigma[:, None] ** 2))
    return kernel / kernel.sum(1, keepdim=True)


@in_float32
def blur_each(x: torch.Tensor, sigma: torch.Tensor, radius: int) -> torch.Tensor:
    """Blur image i with a Gaussian of std sigma[i], kernel 2·radius + 1 wide, edges reflected.

    x: (N, C, H, W), sigma: (N,). The 2-D Gaussian is separable: a vertical then
    a horizontal pass of the 1-D kernel, both as ONE grouped convolution that
    gives every (image, channel) its own kernel. Equals torchvision's
    `gaussian_blur(x[i], 2·radius + 1, sigma[i])`. Returns (N, C, H, W).
    """
    n, c, h, w = x.shape
    kernel = gaussian_kernels(sigma.to(x.dtype), radius).repeat_interleave(c, 0)   # (N*C, K)
    flat = x.reshape(1, n * c, h, w)
    flat = F.pad(flat, (radius, radius, radius, radius), mode="reflect")
    flat = F.conv2d(flat, kernel[:, None, :, None], groups=n * c)  # vertical
    flat = F.conv2d(flat, kernel[:, None, None, :], groups=n * c)  # horizontal
    return flat.reshape(n, c, h, w)


@in_float32
def gaussian_blur(x: torch.Tensor, sigma=(0.1, 1.5), p: float = 0.5,
                  generator: torch.Generator | None = None) -> torch.Tensor:
    """Blur each image with its own Gaussian (sigma uniform in `sigma`) with probability p.

    The kernel reaches 3 · max(sigma) pixels each side; `blur_each` applies it.
    (N, C, H, W) → same.
    """
    _check_images(x)
    n = x.shape[0]
    s = sigma[0] + (sigma[1] - sigma[0]) * _rand(n, x, generator)
    blurred = blur_each(x, s, radius=max(1, int(math.ceil(3 * sigma[1]))))
    apply = (_rand(n, x, generator) < p)[:, None, None, None]
    return torch.where(apply, blurred, x)


@in_float32
def gaussian_noise(x: torch.Tensor, std: float = 0.05, generator: torch.Generator | None = None) -> torch.Tensor:
    """Add N(0, std²) noise to every pixel and clip to [0, 1]."""
    _check_images(x)
    noise = torch.randn(x.shape, generator=generator, device=x.device, dtype=x.dtype)
    return (x + std * noise).clamp(0, 1)


@in_float32
def augment(x: torch.Tensor, config: AugmentConfig = AugmentConfig(),
            generator: torch.Generator | None = None) -> torch.Tensor:
    """Apply the whole pipeline of `config` to a batch, fresh parameters per image.

    x: (N, C, H, W) float in [0, 1], on any device. Returns (N, C, H, W) in [0, 1].
    """
    _check_images(x)
    out = x
    if config.crop_scale != (1.0, 1.0) or config.crop_ratio != (1.0, 1.0) or config.flip_p > 0:
        out = random_resized_crop(out, config.crop_scale, config.crop_ratio, config.flip_p, generator)
    if config.rotation_p > 0:
        out = random_rotation(out, config.rotation_degrees, config.rotation_p, generator)
    if config.jitter_p > 0:
        out = color_jitter(out, config.brightness, config.contrast, config.saturation,
                           config.hue, config.jitter_p, generator)
    if config.grayscale_p > 0:
        out = random_grayscale(out, config.grayscale_p, generator)
    if config.blur_p > 0:
        out = gaussian_blur(out, config.blur_sigma, config.blur_p, generator)
    if config.noise_std > 0:
        out = gaussian_noise(out, config.noise_std, generator)
    return out.clamp(0, 1)


@in_float32
def two_views(x: torch.Tensor, config: AugmentConfig = AugmentConfig(),
              generator: torch.Generator | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """Two independently augmented views of every image: the positive pairs of SimCLR.

    x: (N, C, H, W). Returns (view1, view2), each (N, C, H, W); view1[i] and
    view2[i] come from the same image.
    """
    return augment(x, config, generator), augment(x, config, generator)


@in_float32
def random_rotation(x: torch.Tensor, degrees=(-180.0, 180.0), p: float = 1.0,
                    generator: torch.Generator | None = None) -> torch.Tensor:
    """Rotate each image about its centre by its own angle, uniform in `degrees`, with probability p.

    x: (N, C, H, W). One affine warp per image (`affine_grid` + `grid_sample`);
    corners that come from outside the image are filled by reflection, as in
    `random_resized_crop`. `degrees=(180, 180)` turns images upside down exactly
    (on square images), which makes a 6 look like a 9: an augmentation that can
    break a label. Returns (N, C, H, W).
    """
    _check_images(x)
    n = x.shape[0]
    lo, hi = degrees
    angle = torch.deg2rad(lo + (hi - lo) * _rand(n, x, generator))
    angle = torch.where(_rand(n, x, generator) < p, angle, torch.zeros_like(angle)).to(x.dtype)
    # grid_sample reads output pixel u from input pixel theta @ u; with y pointing down the screen,
    # this theta turns the picture counter-clockwise by +angle (90° equals torch.rot90(x, 1, (-2, -1)))
    cos, sin = torch.cos(angle), torch.sin(angle)
    theta = torch.zeros(n, 2, 3, device=x.device, dtype=x.dtype)
    theta[:, 0, 0], theta[:, 0, 1] = cos, -sin
    theta[:, 1, 0], theta[:, 1, 1] = sin, cos
    grid = F.affine_grid(theta, list(x.shape), align_corners=False)
    return F.grid_sample(x, grid, mode="bilinear", padding_mode="reflection", align_corners=False)


# ---------------------------------------------------------------- recipes per dataset
DIGITS_RECIPE = AugmentConfig(crop_scale=(0.8, 1.0))
"""Digits on clutter: mild crops (at least 80 % of the area), colour jitter, grayscale p = 0.5, NO
flip (a flipped 2 is not a 2). The crop scale was chosen on validation images
(benchmarks/crop_scale.py, printed in notebook 04): at notebook 05's budget (468 steps) crops of
≥ 80 % gave validation k-NN 0.713 against 0.646 without crops and 0.650 with SimCLR's ≥ 30 %."""

CIFAR10_RECIPE = AugmentConfig(crop_scale=(0.08, 1.0), flip_p=0.5, jitter_p=0.8, brightness=0.4,
                               contrast=0.4, saturation=0.4, hue=0.1, grayscale_p=0.2)
"""SimCLR's CIFAR-10 recipe (Chen et al. 2020, appendix B.9): random resized crop of 8–100 %
of the area, horizontal flip, colour jitter of strength 0.5 with p = 0.8, grayscale p = 0.2,
no blur at 32 × 32. The hue part is a rotation in YIQ (`hue_rotation_matrices`), close to
torchvision's HSV shift in direction and size, not equal to it pixel for pixel."""

RECIPES = {
    "cluttered_digits": DIGITS_RECIPE,
    "mnist": DIGITS_RECIPE.without("color"),
    "fashion_mnist": replace(DIGITS_RECIPE.without("color"), flip_p=0.5),   # clothes survive a flip
    "cifar10": CIFAR10_RECIPE,
}


def recipe_for(dataset: str) -> AugmentConfig:
    """The augmentation recipe for a dataset name (as `ImageDataset.name` or `profile.dataset`)."""
    if dataset not in RECIPES:
        raise ValueError(f"no augmentation recipe for {dataset!r}; known: {sorted(RECIPES)}")
    return RECIPES[dataset]
