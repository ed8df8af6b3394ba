"""The hand-written colour, grayscale and blur operations against torchvision's, image by image.

`augment.py` draws one set of parameters per image and applies the whole batch at once;
torchvision's functional ops take one image and one parameter. So each test fixes the
per-image parameters, runs the batched op once, and compares every image with
torchvision's op on that image alone.

Tolerances:
- EXACT (1e-6): the same float32 arithmetic up to the order of a few additions.
- GRAY (2e-4): torchvision's gray weights are (0.2989, 0.587, 0.114), ours ITU-R 601's
  (0.299, 0.587, 0.114); on pixels in [0, 1] a gray value differs by at most 1e-4, and
  contrast and saturation pass that on scaled by |1 − factor| ≤ 1; twice that for rounding.
- Hue is NOT torchvision's map (a rotation in YIQ, see `hue_rotation_matrices`): it is
  tested for its direction and size in HSV terms, and for keeping the luminance.
- Probabilities: counted over 4000 images; the band is 4 binomial standard deviations
  (4 · √(p(1 − p)/4000) ≤ 0.032), and the generator is seeded, so the count is fixed.
"""
import colorsys
import math

import pytest
import torch
import torchvision.transforms.v2.functional as TF

from contrastive_lab.augment import (adjust_colors, blur_each, color_jitter, gaussian_blur, gaussian_kernels,
                                     hue_rotation_matrices, random_grayscale)

EXACT, GRAY = 1e-6, 2e-4


def images(n=6, low=0.0, high=1.0, seed=0, channels=3, size=12):
    g = torch.Generator().manual_seed(seed)
    return low + (high - low) * torch.rand(n, channels, size, size, generator=g)


def per_image(op, x, *factors):
    """torchvision's `op` on each image alone, image i with factors[k][i]."""
    return torch.stack([op(x[i], *(float(f[i]) for f in factors)) for i in range(len(x))])


FACTORS = torch.tensor([0.6, 0.8, 1.0, 1.2, 1.4, 1.9])      # one per image; some overshoot 1 and clip
ONES = torch.ones(6)


# ---------------------------------------------------------------- one operation at a time
def test_brightness_equals_torchvision():
    x = images()
    torch.testing.assert_close(adjust_colors(x, FACTORS, ONES), per_image(TF.adjust_brightness, x, FACTORS),
                               atol=EXACT, rtol=0)


def test_brightness_and_contrast_of_one_channel_images_equal_torchvision():
    x = images(channels=1)
    torch.testing.assert_close(adjust_colors(x, FACTORS, ONES), per_image(TF.adjust_brightness, x, FACTORS),
                               atol=EXACT, rtol=0)
    torch.testing.assert_close(adjust_colors(x, ONES, FACTORS), per_image(TF.adjust_contrast, x, FACTORS),
                               atol=EXACT, rtol=0)


def test_contrast_equals_torchvision():
    x = images()
    torch.testing.assert_close(adjust_colors(x, ONES, FACTORS), per_image(TF.adjust_contrast, x, FACTORS),
                               atol=GRAY, rtol=0)


def test_saturation_equals_torchvision():
    x = images()
    torch.testing.assert_close(adjust_colors(x, ONES, ONES, FACTORS), per_image(TF.adjust_saturation, x, FACTORS),
                               atol=GRAY, rtol=0)


def test_grayscale_equals_torchvision():
    x = images()
    torch.testing.assert_close(random_grayscale(x, p=1.0), TF.rgb_to_grayscale(x, num_output_channels=3),
                               atol=GRAY, rtol=0)


def test_the_steps_compose_in_torchvisions_order():
    """Brightness, then contrast, then saturation, as torchvision's ColorJitter applies them when
    drawn in that order. Muted pixels and factors in [0.8, 1.2] keep every intermediate step
    inside [0, 1], where torchvision's clip after each step and ours once at the end agree."""
    x = images(low=0.35, high=0.65)
    b = torch.tensor([0.8, 1.2, 1.1, 0.9, 1.2, 0.85])
    c = torch.tensor([1.2, 0.8, 0.9, 1.15, 1.2, 0.8])
    s = torch.tensor([0.8, 1.2, 1.2, 0.9, 0.8, 1.1])
    step1 = per_image(TF.adjust_brightness, x, b)
    step2 = per_image(TF.adjust_contrast, step1, c)
    step3 = per_image(TF.adjust_saturation, step2, s)
    for step in (step1, step2, step3):
        assert 0 < step.min() and step.max() < 1              # nothing clipped on the way
    torch.testing.assert_close(adjust_colors(x, b, c, s), step3, atol=GRAY, rtol=0)


# ---------------------------------------------------------------- hue: a YIQ rotation
def hsv_hue_shift(before: torch.Tensor, after: torch.Tensor) -> torch.Tensor:
    """(P, 3) RGB colours before and after → (P,) change of HSV hue in turns, in [−0.5, 0.5)."""
    def hue(colours):
        return torch.tensor([colorsys.rgb_to_hsv(*c)[0] for c in colours.tolist()])
    return (hue(after) - hue(before) + 0.5) % 1 - 0.5


def muted_colours(n=300, seed=0):
    """(n, 3) RGB colours with HSV saturation in [0.2, 0.5] and value in [0.4, 0.7]: every hue,
    none so vivid that a small rotation leaves the RGB cube."""
    g = torch.Generator().manual_seed(seed)
    hsv = torch.rand(n, 3, generator=g) * torch.tensor([1.0, 0.3, 0.3]) + torch.tensor([0.0, 0.2, 0.4])
    return torch.tensor([colorsys.hsv_to_rgb(*c) for c in hsv.tolist()])


@pytest.mark.parametrize("turns", [0.02, 0.1])
def test_hue_turns_the_way_torchvision_does_by_about_as_much(turns):
    """torchvision moves every hue by exactly `turns`; the YIQ rotation moves each muted colour's
    HSV hue the same way by 0.67–1.58 × `turns` (measured), 1.06 × on average: asserted as
    0.5–2 × each and within 15 % on average. A rotation the other way moves them backwards."""
    rgb = muted_colours()
    theirs = TF.adjust_hue(rgb.T[:, :, None], turns)[:, :, 0].T
    torch.testing.assert_close(hsv_hue_shift(rgb, theirs), torch.full((len(rgb),), turns), atol=1e-4, rtol=0)
    ours = adjust_colors(rgb.T[None, :, :, None], ONES[:1], ONES[:1], ONES[:1], torch.tensor([turns]))
    ratio = hsv_hue_shift(rgb, ours[0, :, :, 0].T) / turns
    assert ratio.min() > 0.5 and ratio.max() < 2.0
    assert ratio.mean().item() == pytest.approx(1.0, abs=0.15)


def test_hue_keeps_luminance_and_chroma():
    rgb = muted_colours()
    m = hue_rotation_matrices(torch.tensor([0.3]))[0]
    out = rgb @ m.T
    to_yiq = torch.tensor([[0.299, 0.587, 0.114], [0.596, -0.274, -0.322], [0.211, -0.523, 0.312]])
    yiq_in, yiq_out = rgb @ to_yiq.T, out @ to_yiq.T
    torch.testing.assert_close(yiq_out[:, 0], yiq_in[:, 0], atol=1e-5, rtol=0)                 # luminance
    torch.testing.assert_close(yiq_out[:, 1:].norm(dim=1), yiq_in[:, 1:].norm(dim=1), atol=1e-5, rtol=0)
    angle = torch.atan2(yiq_out[:, 2], yiq_out[:, 1]) - torch.atan2(yiq_in[:, 2], yiq_in[:, 1])
    torch.testing.assert_close(torch.cos(angle), torch.full_like(angle, math.cos(2 * math.pi * 0.3)),
                               atol=1e-4, rtol=0)


def test_a_quarter_turn_lands_nearer_torchvision_than_no_turn_or_the_other_way():
    x = images(n=32, low=0.3, high=0.7)
    theirs = torch.stack([TF.adjust_hue(xi, 0.25) for xi in x])
    turn = lambda t: adjust_colors(x, torch.ones(32), torch.ones(32), None, torch.full((32,), t))
    error = lambda y: (y - theirs).abs().mean().item()
    assert error(turn(0.25)) < 0.75 * error(x) < 0.75 * error(turn(-0.25))


# ---------------------------------------------------------------- blur
def test_kernels_sum_to_one_and_follow_the_gaussian():
    sigma = torch.tensor([0.3, 1.0, 2.5])
    k = gaussian_kernels(sigma, radius=4)
    torch.testing.assert_close(k.sum(1), torch.ones(3))
    taps = torch.arange(-4.0, 5.0)
    torch.testing.assert_close(k[1] / k[1, 4], torch.exp(-taps ** 2 / 2))      # sigma 1, centre tap 4


@pytest.mark.parametrize("radius", [2, 5])
def test_blur_equals_torchvision_per_image(radius):
    x = images()
    sigma = torch.tensor([0.1, 0.5, 0.9, 1.2, 1.5, 3.0])
    theirs = torch.stack([TF.gaussian_blur(x[i], [2 * radius + 1] * 2, [float(sigma[i])] * 2)
                          for i in range(len(x))])
    torch.testing.assert_close(blur_each(x, sigma, radius), theirs, atol=EXACT, rtol=0)


def test_blur_keeps_a_flat_image_flat():
    x = torch.full((4, 3, 10, 10), 0.6)
    out = gaussian_blur(x, sigma=(0.5, 2.0), p=1.0, generator=torch.Generator().manual_seed(0))
    torch.testing.assert_close(out, x, atol=EXACT, rtol=0)


# ---------------------------------------------------------------- probabilities
N_COUNT = 4000


def changed_fraction(out: torch.Tensor, x: torch.Tensor) -> float:
    return (out - x).flatten(1).abs().amax(1).gt(1e-6).float().mean().item()


@pytest.mark.parametrize("p", [0.2, 0.7])
def test_grayscale_honours_p(p):
    x = images(n=N_COUNT, size=4, low=0.1, high=0.9)
    out = random_grayscale(x, p=p, generator=torch.Generator().manual_seed(1))
    gray = (out[:, 0] == out[:, 1]).flatten(1).all(1) & (out[:, 1] == out[:, 2]).flatten(1).all(1)
    assert gray.float().mean().item() == pytest.approx(p, abs=0.032)
    assert torch.equal(out[~gray], x[~gray])                                # the others untouched


@pytest.mark.parametrize("p", [0.3, 0.8])
def test_color_jitter_honours_p(p):
    x = images(n=N_COUNT, size=4, low=0.1, high=0.9)
    out = color_jitter(x, p=p, generator=torch.Generator().manual_seed(2))
    assert changed_fraction(out, x) == pytest.approx(p, abs=0.032)


@pytest.mark.parametrize("p", [0.25, 0.5])
def test_blur_honours_p(p):
    x = images(n=N_COUNT, size=6)
    out = gaussian_blur(x, sigma=(0.5, 1.0), p=p, generator=torch.Generator().manual_seed(3))
    assert changed_fraction(out, x) == pytest.approx(p, abs=0.032)


def test_color_jitter_draws_factors_across_the_whole_range():
    """Brightness alone on a flat image: the output is b · x with b uniform in [0.6, 1.4]."""
    x = torch.full((N_COUNT, 3, 2, 2), 0.5)
    out = color_jitter(x, brightness=0.4, contrast=0.0, saturation=0.0, hue=0.0, p=1.0,
                       generator=torch.Generator().manual_seed(4))
    b = out[:, 0, 0, 0] / 0.5
    assert 0.6 <= b.min() < 0.61 and 1.39 < b.max() <= 1.4
    assert b.mean().item() == pytest.approx(1.0, abs=0.02)
    torch.testing.assert_close(out, b[:, None, None, None] * x)             # the same b on every pixel


def test_color_jitter_gives_hue_only_to_colour_images():
    gray = images(n=8, channels=1)
    out = color_jitter(gray, brightness=0.0, contrast=0.0, saturation=0.5, hue=0.5, p=1.0,
                       generator=torch.Generator().manual_seed(5))
    torch.testing.assert_close(out, gray)                                   # nothing but b and c on 1 channel
    colour = images(n=8)
    out = color_jitter(colour, brightness=0.0, contrast=0.0, saturation=0.0, hue=0.1, p=1.0,
                       generator=torch.Generator().manual_seed(5))
    assert changed_fraction(out, colour) == 1.0
