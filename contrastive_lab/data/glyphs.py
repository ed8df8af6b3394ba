"""Glyph identities: an offline verification set in the spirit of Omniglot.

An *identity* is a glyph: a random composition of two to four pen strokes
(each a cubic Bézier curve). A *sample* of an identity re-draws it the way a
new writer would: every control point is jittered, and the pen thickness, the
placement (scale, rotation, shear, shift) and a little clutter (stray short
strokes, pixel noise) change. Two samples of one identity are a genuine pair;
samples of two identities are an impostor pair.

The split is **by identity**: the training, validation and test identities
are different glyphs (each split draws its own strokes), so a test score says
how a model does on glyphs it has never seen — the question verification
asks. Identity labels are global and disjoint: train 0..n_train−1, then
validation, then test.

    >>> ds = make_glyph_dataset(n_train_ids=640, n_val_ids=120, n_test_ids=320, seed=0)
    >>> ds.train_x.shape, ds.train_y[:3]         # (640·16, 1, 28, 28), tensor([0, 0, 0])

Rendering is vectorized, with no loop over images: points along every stroke
are added into the pixel grid at once (`index_add_`), and one grouped
convolution blurs each image with its own pen width. 14,640 images take about
a second on one CPU core. Generation is deterministic given (sizes, seed).

`load_glyph_dataset(source="omniglot")` reads Omniglot through torchvision
instead (background set for training and validation, evaluation set for test;
Lake et al. 2015), and falls back to the generated glyphs, in one printed line,
when the download is impossible.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F

SIZE = 28              # image side in pixels
N_CTRL = 4             # control points per stroke (a cubic Bézier)
POINTS = 48            # points sampled along each stroke (about one every half pixel)
MAX_STROKES = 4
N_CLUTTER = 2          # stray short strokes per image (each present with probability 1/2)
CHUNK = 512            # images rendered at a time
SOURCES = ("generated", "omniglot")


@dataclass
class GlyphDataset:
    """Images of glyph identities, split by identity.

    train_x (N, 1, S, S), val_x (V, 1, S, S), test_x (M, 1, S, S): float32 in [0, 1],
    ink bright on a dark background. train_y, val_y, test_y: int64 identity labels,
    global and disjoint across the splits (train first: 0..n_train_ids − 1).
    `name` says which source was really loaded ("generated" or "omniglot").
    """

    name: str
    train_x: torch.Tensor
    train_y: torch.Tensor
    val_x: torch.Tensor
    val_y: torch.Tensor
    test_x: torch.Tensor
    test_y: torch.Tensor

    @property
    def n_train_ids(self) -> int:
        return len(self.train_y.unique())

    def __repr__(self) -> str:
        def part(y):
            return f"{len(y.unique())} identities / {len(y)} images"
        return (f"GlyphDataset({self.name}, {tuple(self.train_x.shape[1:])}: train {part(self.train_y)}, "
                f"val {part(self.val_y)}, test {part(self.test_y)})")


# ------------------------------------------------------------------ identities
def make_identities(n: int, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """Draw `n` glyph identities.

    Returns control points (n, MAX_STROKES, N_CTRL, 2) in glyph coordinates
    (y down; each glyph centred, its drawn strokes spanning [-0.8, 0.8] along its
    larger side) and a stroke mask (n, MAX_STROKES) bool: identity i has 2–4 strokes. A stroke starts anywhere (or, half the time, on a point of the
    previous stroke, so glyphs are often connected) and wanders in steps of
    about 0.5, so it bends like a pen line.
    """
    if n <= 0:
        raise ValueError(f"n (identities) must be positive, got {n}")
    g = torch.Generator().manual_seed(seed)
    start = torch.rand(n, MAX_STROKES, 2, generator=g) * 1.2 - 0.6
    # half of the strokes after the first start on the previous stroke's last control point
    attach = torch.rand(n, MAX_STROKES, generator=g) < 0.5
    attach[:, 0] = False
    step = torch.randn(n, MAX_STROKES, N_CTRL - 1, 2, generator=g) * 0.45
    ctrl = torch.empty(n, MAX_STROKES, N_CTRL, 2)
    for s in range(MAX_STROKES):                       # 4 strokes, not a per-image loop
        first = torch.where(attach[:, s, None], ctrl[:, s - 1, -1] if s else start[:, s], start[:, s])
        ctrl[:, s] = torch.cat([first[:, None], first[:, None] + step[:, s].cumsum(1)], 1)
    n_strokes = torch.randint(2, MAX_STROKES + 1, (n,), generator=g)
    present = torch.arange(MAX_STROKES)[None, :] < n_strokes[:, None]
    # centre each glyph on its drawn strokes and scale its larger side to span [-0.8, 0.8]
    curve = _bezier(ctrl)                                                      # (n, strokes, P, 2)
    far = torch.tensor(1e3)
    lo = torch.where(present[:, :, None, None], curve, far).amin((1, 2))      # (n, 2)
    hi = torch.where(present[:, :, None, None], curve, -far).amax((1, 2))
    centre, extent = (lo + hi) / 2, (hi - lo).amax(1).clamp_min(1e-3)
    ctrl = (ctrl - centre[:, None, None]) * (1.6 / extent)[:, None, None, None]
    return ctrl, present


def _bezier(ctrl: torch.Tensor, points: int = POINTS) -> torch.Tensor:
    """Points along cubic Bézier curves: ctrl (..., 4, 2) → (..., points, 2)."""
    t = torch.linspace(0, 1, points)
    basis = torch.stack([(1 - t) ** 3, 3 * (1 - t) ** 2 * t, 3 * (1 - t) * t ** 2, t ** 3], 1)   # (P, 4)
    return torch.einsum("pc,...cd->...pd", basis, ctrl)


def _splat(points: torch.Tensor, weight: torch.Tensor, size: int) -> torch.Tensor:
    """Add weighted points into images with bilinear weights.

    points (N, Q, 2) in pixel coordinates (x, y); weight (N, Q). Returns (N, size, size):
    each point's weight spread over its four neighbouring pixel centres.
    """
    n, q, _ = points.shape
    xy = points - 0.5                                          # pixel centres at integer coordinates
    base = xy.floor()
    frac = xy - base
    base = base.long()
    image = torch.zeros(n * size * size)
    offset = (torch.arange(n) * size * size)[:, None]
    for dx in (0, 1):
        for dy in (0, 1):
            x, y = base[..., 0] + dx, base[..., 1] + dy
            w = weight * (frac[..., 0] if dx else 1 - frac[..., 0]) * (frac[..., 1] if dy else 1 - frac[..., 1])
            inside = (x >= 0) & (x < size) & (y >= 0) & (y < size)
            index = offset + y.clamp(0, size - 1) * size + x.clamp(0, size - 1)
            image.index_add_(0, index.flatten(), (w * inside).flatten())
    return image.view(n, size, size)


def _blur(image: torch.Tensor, sigma: torch.Tensor, radius: int = 4) -> torch.Tensor:
    """A Gaussian blur with its own sigma per image: (N, S, S), sigma (N,) in pixels.

    Separable: one horizontal and one vertical pass, each a grouped conv with one
    kernel per image.
    """
    n, size, _ = image.shape
    taps = torch.arange(-radius, radius + 1, dtype=torch.float32)
    kernel = torch.exp(-0.5 * (taps[None, :] / sigma[:, None]) ** 2)
    kernel = kernel / kernel.sum(1, keepdim=True)                            # (N, 2r + 1)
    x = image.unsqueeze(0)                                                   # (1, N, S, S): images as channels
    x = F.conv2d(x, kernel[:, None, None, :], padding=(0, radius), groups=n)
    x = F.conv2d(x, kernel[:, None, :, None], padding=(radius, 0), groups=n)
    return x.squeeze(0)


def render_glyphs(ctrl: torch.Tensor, present: torch.Tensor, identity: torch.Tensor, seed: int = 0, *,
                  size: int = SIZE, jitter: float = 0.07, thickness: tuple[float, float] = (0.6, 1.1),
                  scale: tuple[float, float] = (0.75, 1.0), max_rotation_deg: float = 12.0,
                  shift: float = 0.12, clutter: float = 0.6, noise_std: float = 0.04) -> torch.Tensor:
    """Draw one new sample of each requested identity.

    Args:
        ctrl, present: identities from `make_identities`.
        identity: (N,) which identity each image shows (indices into ctrl).
        seed: the same arguments always give the same images.
        size: image side in pixels.
        jitter: std of the per-sample displacement of every control point (glyph units;
            the glyph spans [-1, 1]).
        thickness: range of the pen's width (the blur's sigma, in pixels).
        scale, max_rotation_deg, shift: placement: a random scale, rotation, a small
            shear and a shift (fraction of the half-canvas) per image.
        clutter: brightness of the stray short strokes (0 = none).
        noise_std: std of Gaussian pixel noise.

    Returns images (N, 1, size, size) float32 in [0, 1], ink bright on dark.

    How it draws: points every ~half pixel along each stroke are added into the
    image (bilinear), weighted by the stroke length they stand for, so a line has the
    same ink per pixel of length whatever its speed; a Gaussian blur of the pen's
    width then thickens the line, and a gain saturates its centre.
    """
    n = len(identity)
    g = torch.Generator().manual_seed(seed)

    def uniform(*shape, low=0.0, high=1.0):
        return low + (high - low) * torch.rand(*shape, generator=g)

    pts = ctrl[identity] + jitter * torch.randn(n, MAX_STROKES, N_CTRL, 2, generator=g)
    curve = _bezier(pts)                                                       # (N, strokes, P, 2)
    # placement: x' = A x + b with A = scale · rotation · shear
    angle = uniform(n, low=-1, high=1) * math.radians(max_rotation_deg)
    s = uniform(n, low=scale[0], high=scale[1])
    shear = uniform(n, low=-0.15, high=0.15)
    cos, sin = torch.cos(angle), torch.sin(angle)
    A = torch.stack([torch.stack([cos, -sin + shear * cos], -1),
                     torch.stack([sin, cos + shear * sin], -1)], -2) * s[:, None, None]   # (N, 2, 2)
    b = uniform(n, 2, low=-shift, high=shift)
    curve = torch.einsum("nij,nspj->nspi", A, curve) + b[:, None, None, :]
    curve = (curve + 1) * (size / 2)                                          # glyph units → pixels
    ink = present[identity].float() * uniform(n, 1, low=0.8, high=1.0)        # (N, strokes)
    # clutter: short straight strokes anywhere, dimmer than the glyph
    c_start = uniform(n, N_CLUTTER, 2, low=0, high=size)
    c_dir = uniform(n, N_CLUTTER, low=0, high=2 * math.pi)
    c_len = uniform(n, N_CLUTTER, low=3, high=7)
    c_step = torch.stack([torch.cos(c_dir), torch.sin(c_dir)], -1) * c_len[..., None]
    c_line = c_start[:, :, None] + torch.linspace(0, 1, POINTS)[None, None, :, None] * c_step[:, :, None]
    c_ink = clutter * (uniform(n, N_CLUTTER) < 0.5).float() * uniform(n, N_CLUTTER, low=0.5, high=1.0)
    lines = torch.cat([curve, c_line], 1)                                      # (N, L, P, 2)
    line_ink = torch.cat([ink, c_ink], 1)                                      # (N, L)
    # each point stands for the length of the path around it (half of each neighbouring step)
    step = (lines[:, :, 1:] - lines[:, :, :-1]).norm(dim=-1)                   # (N, L, P − 1)
    length = F.pad(step, (0, 1)) / 2 + F.pad(step, (1, 0)) / 2
    density = _splat(lines.flatten(1, 2), (length * line_ink[..., None]).flatten(1), size)
    sigma = uniform(n, low=thickness[0], high=thickness[1])
    image = _blur(density, sigma) * (math.sqrt(2 * math.pi) * 1.6 * sigma[:, None, None])
    image = image + noise_std * torch.randn(image.shape, generator=g)
    return image.clamp(0, 1).unsqueeze(1).contiguous()


def make_glyph_split(n_ids: int, per_identity: int, seed: int = 0, first_label: int = 0,
                     size: int = SIZE, **render) -> tuple[torch.Tensor, torch.Tensor]:
    """`per_identity` samples of each of `n_ids` new identities.

    Returns images (n_ids · per_identity, 1, size, size) and labels (first_label + identity),
    identity-major: the samples of identity 0 come first. Rendering runs in chunks of
    CHUNK images; keyword arguments go to `render_glyphs`.
    """
    if per_identity < 1:
        raise ValueError(f"per_identity must be ≥ 1, got {per_identity}")
    ctrl, present = make_identities(n_ids, seed)
    identity = torch.arange(n_ids).repeat_interleave(per_identity)
    chunks = [render_glyphs(ctrl, present, identity[i:i + CHUNK], seed=seed * 100_003 + i // CHUNK,
                            size=size, **render)
              for i in range(0, len(identity), CHUNK)]
    return torch.cat(chunks), identity + first_label


def make_glyph_dataset(n_train_ids: int = 640, n_val_ids: int = 120, n_test_ids: int = 320,
                       per_identity: int = 16, eval_per_identity: int = 10, seed: int = 0,
                       size: int = SIZE, **render) -> GlyphDataset:
    """Generated glyph identities, split by identity into train / validation / test.

    Args:
        n_train_ids, n_val_ids, n_test_ids: identities in each split (all different glyphs).
        per_identity: samples of each training identity.
        eval_per_identity: samples of each validation and test identity.
        seed: each split draws its identities from its own seed derived from this one,
            so changing one split's size leaves the others' glyphs unchanged.
        size: image side in pixels. Keyword arguments go to `render_glyphs`.
    """
    for name, value in (("n_train_ids", n_train_ids), ("n_val_ids", n_val_ids), ("n_test_ids", n_test_ids)):
        if value < 2:
            raise ValueError(f"{name} must be ≥ 2 (an impostor pair needs two identities), got {value}")
    if eval_per_identity < 2:
        raise ValueError(f"eval_per_identity must be ≥ 2 (a genuine pair needs two samples), got {eval_per_identity}")
    tr = make_glyph_split(n_train_ids, per_identity, 3 * seed, 0, size, **render)
    va = make_glyph_split(n_val_ids, eval_per_identity, 3 * seed + 1, n_train_ids, size, **render)
    te = make_glyph_split(n_test_ids, eval_per_identity, 3 * seed + 2, n_train_ids + n_val_ids, size, **render)
    return GlyphDataset("generated", *tr, *va, *te)


# ------------------------------------------------------------------ Omniglot
class OmniglotUnavailable(RuntimeError):
    """Omniglot is not cached and cannot be downloaded."""


def omniglot_images(background: bool, root=None, size: int = SIZE,
                    download: bool = True) -> tuple[torch.Tensor, torch.Tensor]:
    """One Omniglot set through torchvision, resized to size×size with ink bright.

    background=True: the 964 characters of the background set; False: the 659 of
    the evaluation set (20 drawings each). Returns images (N, 1, size, size) float32
    and labels (N,) int64 (character index within the set).
    Raises OmniglotUnavailable, with the reason in one line, when it cannot be had.
    """
    from torchvision.datasets import Omniglot

    from .cache import data_dir

    try:
        ds = Omniglot(str(root or data_dir()), background=background, download=download)
    except Exception as exc:            # no network, a bad checksum, a missing folder
        reason = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise OmniglotUnavailable(f"could not load Omniglot (no network?): {reason}") from exc
    import numpy as np

    images, labels = [], []
    for image, label in ds:                                        # PIL images, black ink on white
        images.append(torch.from_numpy(1.0 - np.asarray(image, dtype=np.float32) / 255.0))
        labels.append(label)
    x = torch.stack(images).unsqueeze(1)                           # (N, 1, 105, 105), 1 = ink
    x = F.interpolate(x, size=(size, size), mode="area")
    return x.clamp(0, 1).contiguous(), torch.tensor(labels, dtype=torch.int64)


def _omniglot_dataset(n_val_ids: int, size: int, seed: int, download: bool) -> GlyphDataset:
    bg_x, bg_y = omniglot_images(True, size=size, download=download)
    ev_x, ev_y = omniglot_images(False, size=size, download=download)
    n_bg = int(bg_y.max()) + 1
    if not 2 <= n_val_ids < n_bg - 1:
        raise ValueError(f"n_val_ids must be between 2 and {n_bg - 2} for Omniglot, got {n_val_ids}")
    order = torch.randperm(n_bg, generator=torch.Generator().manual_seed(seed))
    new_id = torch.empty(n_bg, dtype=torch.int64)
    new_id[order] = torch.arange(n_bg)                    # shuffled characters: the last n_val_ids validate
    y = new_id[bg_y]
    n_train = n_bg - n_val_ids
    train, val = y < n_train, y >= n_train
    return GlyphDataset("omniglot", bg_x[train], y[train], bg_x[val], y[val], ev_x, ev_y + n_bg)


def load_glyph_dataset(source: str = "generated", *, n_train_ids: int = 640, n_val_ids: int = 120,
                       n_test_ids: int = 320, per_identity: int = 16, eval_per_identity: int = 10,
                       seed: int = 0, size: int = SIZE, download: bool = True) -> GlyphDataset:
    """The verification set a notebook asks for, split by identity.

    source="generated": `make_glyph_dataset` with these sizes (offline, any size).
    source="omniglot": Omniglot through torchvision — background characters for
        training (n_val_ids of them carved out for validation), evaluation characters
        for test, 20 drawings each (the id counts and per-identity sizes are
        Omniglot's own). Without network it prints one line and falls back to the
        generated glyphs.
    """
    if source not in SOURCES:
        raise ValueError(f"source must be one of {SOURCES}, got {source!r}")
    if source == "omniglot":
        try:
            return _omniglot_dataset(n_val_ids, size, seed, download)
        except OmniglotUnavailable as exc:
            print(f"{exc} -> using the offline generated glyphs instead.")
    return make_glyph_dataset(n_train_ids, n_val_ids, n_test_ids, per_identity, eval_per_identity,
                              seed, size)
