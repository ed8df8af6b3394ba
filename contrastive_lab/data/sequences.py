"""Moving digits: generated video clips whose neighbouring frames are natural positives.

Each clip is T frames of a 32×32 scene in the style of the cluttered digits: one
scikit-learn digit on a coloured background with fragments of other digits as
clutter. Over the clip the digit glides from a start to an end position, turns,
grows or shrinks, and the lighting drifts (background and ink colours move
from one colour to another); the clutter drifts slowly too. Nothing about the
digit's class changes, so two frames of one clip are a positive pair that no
hand-written augmentation produced: time did.

    frame t = scene(p_start + (p_end − p_start) · t / (T − 1))

for every parameter p (position, angle, size, colours, clutter positions).
Generation is vectorized (one `grid_sample` for all S·T frames) and
deterministic given the seed. Train and test clips are drawn from disjoint
sets of the 1,797 source digits.

    >>> frames, labels = make_moving_digits(500, n_frames=8, split="train", seed=0)
    >>> frames.shape, labels.shape         # (500, 8, 3, 32, 32) in [0, 1], (500,)
    >>> a, p = temporal_pairs(500, 8, max_gap=1, generator=g)  # flat frame indices
    >>> flat = frames.flatten(0, 1)        # (500·8, 3, 32, 32); flat[a[i]], flat[p[i]] are positives
"""
from __future__ import annotations

import math

import torch

from .cluttered import CANVAS, Sampler, _place, blend


def _lerp(start: torch.Tensor, end: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
    """start, end (S, ...) and t (T,) in [0, 1] → (S, T, ...) points on the straight line."""
    shape = (1, -1) + (1,) * (start.ndim - 1)
    return start.unsqueeze(1) + (end - start).unsqueeze(1) * t.view(shape)


def make_moving_digits(
    n_sequences: int,
    n_frames: int = 8,
    split: str = "train",
    seed: int = 0,
    *,
    size_range: tuple[float, float] = (16.0, 24.0),
    max_rotation_deg: float = 25.0,
    max_turn_deg: float = 45.0,
    travel: float = 0.8,
    colour_drift: float = 1.0,
    clutter_drift: float = 0.3,
    n_clutter: int = 3,
    noise_std: float = 0.03,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Generate `n_sequences` clips of a cluttered digit moving across the canvas.

    Args:
        n_sequences: number of clips S.
        n_frames: frames per clip T (≥ 2).
        split: "train" or "test": which disjoint set of source digits to draw.
        seed: the same arguments always give the same clips.
        size_range: digit size in pixels at the start and at the end of a clip.
        max_rotation_deg: the starting angle is uniform in ±this.
        max_turn_deg: the digit turns by an angle uniform in ±this over the clip.
        travel: how far the digit moves, as a fraction of the free room (0 = still).
        colour_drift: how far the colours move toward a second random colour
            over the clip (0 = constant lighting, 1 = all the way).
        clutter_drift: how far each clutter fragment moves over the clip, in
            canvas half-widths (at most; 0 = still clutter).
        n_clutter: fragments of other digits, drifting slowly behind the digit.
        noise_std: std of Gaussian pixel noise, fresh in every frame.

    Returns:
        frames (S, T, 3, 32, 32) float32 in [0, 1]; labels (S,) int64 in 0..9
        (the digit's class, the same in every frame of a clip).
    """
    if n_sequences <= 0:
        raise ValueError(f"n_sequences must be positive, got {n_sequences}")
    if n_frames < 2:
        raise ValueError(f"n_frames must be at least 2 so that a clip has neighbours, got {n_frames}")
    if not 0.0 <= travel <= 1.0 or not 0.0 <= colour_drift <= 1.0:
        raise ValueError(f"travel and colour_drift must be in [0, 1], got {travel} and {colour_drift}")
    r = Sampler(split, seed, stream=1_000)
    digits, uniform = r.digits, r.uniform
    s, t_count = n_sequences, n_frames
    t = torch.linspace(0, 1, t_count)                                   # (T,)
    pick = r.pick(s)
    lo, hi = size_range
    size = _lerp(uniform(s, low=lo, high=hi), uniform(s, low=lo, high=hi), t)          # (S, T)
    angle0 = uniform(s, low=-1.0, high=1.0) * math.radians(max_rotation_deg)
    turn = uniform(s, low=-1.0, high=1.0) * math.radians(max_turn_deg)
    angle = _lerp(angle0, angle0 + turn, t)                                             # (S, T)
    room = (1 - 2 * (hi / CANVAS) * 0.5) * 0.9                     # where the largest digit still fits
    start = (uniform(s, 2) * 2 - 1) * room
    end = start + travel * ((uniform(s, 2) * 2 - 1) * room - start)
    center = _lerp(start, end, t)                                                       # (S, T, 2)
    glyphs = digits[pick].unsqueeze(1).expand(s, t_count, 8, 8)
    mask = _place(glyphs.reshape(-1, 8, 8), size.reshape(-1), angle.reshape(-1),
                  center.reshape(-1, 2), CANVAS).clamp(0, 1)                            # (S·T, 1, 32, 32)

    # lighting: dark scenes keep a dark background and bright ink all clip long, and vice versa,
    # so the digit stands out in every frame while the colours drift
    dark = (uniform(s) < 0.5)[:, None]

    def background():
        return torch.where(dark, 0.5 * uniform(s, 3), 0.5 + 0.5 * uniform(s, 3))

    def ink():
        return torch.where(dark, 0.6 + 0.4 * uniform(s, 3), 0.4 * uniform(s, 3))

    bg0, fg0 = background(), ink()
    bg1 = bg0 + colour_drift * (background() - bg0)
    fg1 = fg0 + colour_drift * (ink() - fg0)
    bg = _lerp(bg0, bg1, t).reshape(-1, 3)                                              # (S·T, 3)
    fg = _lerp(fg0, fg1, t).reshape(-1, 3)
    image = bg[:, :, None, None].expand(s * t_count, 3, CANVAS, CANVAS).clone()

    for _ in range(n_clutter):
        other = r.pick(s)
        c_glyphs = digits[other].unsqueeze(1).expand(s, t_count, 8, 8).reshape(-1, 8, 8)
        c_size = uniform(s, low=10.0, high=16.0)[:, None].expand(s, t_count)
        c_angle = uniform(s, low=-math.pi, high=math.pi)[:, None].expand(s, t_count)
        c_start = uniform(s, 2) * 2 - 1
        c_center = _lerp(c_start, c_start + clutter_drift * (uniform(s, 2) * 2 - 1), t)
        c_mask = _place(c_glyphs, c_size.reshape(-1), c_angle.reshape(-1),
                        c_center.reshape(-1, 2), CANVAS).clamp(0, 1)
        c_colour = uniform(s, 3).repeat_interleave(t_count, 0)[:, :, None, None]
        alpha = uniform(s, low=0.3, high=0.6).repeat_interleave(t_count, 0)[:, None, None, None] * c_mask
        image = blend(image, c_colour, alpha)

    image = blend(image, fg[:, :, None, None], mask)
    image = image + noise_std * torch.randn(image.shape, generator=r.g)
    frames = image.clamp(0, 1).view(s, t_count, 3, CANVAS, CANVAS).contiguous()
    return frames, r.labels[pick].clone()


def temporal_pairs(n_sequences: int, n_frames: int, max_gap: int = 1,
                   generator: torch.Generator | None = None,
                   sequences: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """One random positive pair of frames per clip: two frames at most `max_gap` apart.

    Frames are indexed flat, as in `frames.flatten(0, 1)`: frame t of clip s is
    s · n_frames + t. For each clip (or for each clip index in `sequences`, a
    (B,) tensor) an anchor frame t and a partner t ± d with 1 ≤ d ≤ max_gap,
    inside the clip, are drawn. Returns (anchor, positive), each (B,) int64, on the
    generator's device (else `sequences`'s, else the CPU): give a generator on the GPU and
    `sequences` there, and a training step draws its pairs without a copy from the host.
    """
    if not 1 <= max_gap < n_frames:
        raise ValueError(f"max_gap must be between 1 and n_frames − 1 = {n_frames - 1}, got {max_gap}")
    device = generator.device if generator is not None else (sequences.device if sequences is not None else "cpu")
    seq = torch.arange(n_sequences, device=device) if sequences is None else sequences.long()
    b = len(seq)
    gap = 1 + torch.randint(max_gap, (b,), generator=generator, device=device)
    # anchor t in [0, T − gap), partner t + gap; then swap the two at random so either may come first
    first = (torch.rand(b, generator=generator, device=device) * (n_frames - gap)).long()
    second = first + gap
    swap = torch.rand(b, generator=generator, device=device) < 0.5
    anchor = torch.where(swap, second, first)
    positive = torch.where(swap, first, second)
    return seq * n_frames + anchor, seq * n_frames + positive
