"""Batched augmentations: per-image randomness, repeatability, range, device."""
from dataclasses import replace

import pytest
import torch

from contrastive_lab.augment import (AugmentConfig, augment, color_jitter, gaussian_blur, gaussian_noise,
                                     hue_rotation_matrices, random_grayscale, random_resized_crop,
                                     two_views)


def batch_of_same_image(n=8, seed=0):
    g = torch.Generator().manual_seed(seed)
    return torch.rand(1, 3, 16, 16, generator=g).expand(n, 3, 16, 16).contiguous()


def test_images_in_one_batch_get_different_crops():
    x = batch_of_same_image()
    out = random_resized_crop(x, scale=(0.2, 1.0), generator=torch.Generator().manual_seed(1))
    # the inputs are identical, so any difference comes from per-image parameters
    diffs = [(out[0] - out[i]).abs().max().item() for i in range(1, len(out))]
    assert min(diffs) > 1e-3


def test_every_augmentation_draws_per_image():
    """Identical inputs, so every difference comes from per-image parameters: no two images of
    the batch may come out alike (one shared draw per batch would make all eight equal)."""
    x = batch_of_same_image()
    g = torch.Generator().manual_seed(2)
    for fn in (lambda: color_jitter(x, p=1.0, generator=g), lambda: gaussian_blur(x, p=1.0, generator=g),
               lambda: random_resized_crop(x, generator=g)):
        out = fn().flatten(1)
        gaps = (out[:, None] - out[None]).abs().amax(-1) + torch.eye(len(out))
        assert gaps.min() > 1e-4


def test_same_seed_repeats_and_other_seed_differs():
    x = torch.rand(4, 3, 16, 16)
    cfg = AugmentConfig(blur_p=0.5, noise_std=0.02, flip_p=0.5)
    a = augment(x, cfg, torch.Generator().manual_seed(0))
    b = augment(x, cfg, torch.Generator().manual_seed(0))
    c = augment(x, cfg, torch.Generator().manual_seed(1))
    assert torch.equal(a, b)
    assert not torch.equal(a, c)


def test_pipeline_applies_each_step_in_order_and_clips():
    """augment = crop (with flip) → rotation → colour jitter → grayscale → blur → noise, each
    drawing from the same generator in turn; the result stays in [0, 1] although strong noise
    pushes pixels past both ends before the clip."""
    from contrastive_lab.augment import random_rotation

    x = torch.rand(16, 3, 32, 32)
    cfg = AugmentConfig(blur_p=1.0, noise_std=0.5, flip_p=0.5, rotation_p=0.5)
    out = augment(x, cfg, torch.Generator().manual_seed(0))
    g = torch.Generator().manual_seed(0)
    want = random_resized_crop(x, cfg.crop_scale, cfg.crop_ratio, cfg.flip_p, g)
    want = random_rotation(want, cfg.rotation_degrees, cfg.rotation_p, g)
    want = color_jitter(want, cfg.brightness, cfg.contrast, cfg.saturation, cfg.hue, cfg.jitter_p, g)
    want = random_grayscale(want, cfg.grayscale_p, g)
    want = gaussian_blur(want, cfg.blur_sigma, cfg.blur_p, g)
    want = gaussian_noise(want, cfg.noise_std, g)
    torch.testing.assert_close(out, want.clamp(0, 1), atol=0, rtol=0)
    assert out.min() == 0 and out.max() == 1


def test_full_crop_without_flip_is_identity():
    x = torch.rand(3, 3, 8, 8)
    out = random_resized_crop(x, scale=(1.0, 1.0), ratio=(1.0, 1.0), flip_p=0.0)
    torch.testing.assert_close(out, x, atol=1e-5, rtol=0)


def test_flip_with_full_crop_mirrors_the_image():
    x = torch.rand(2, 3, 8, 8)
    out = random_resized_crop(x, scale=(1.0, 1.0), ratio=(1.0, 1.0), flip_p=1.0)
    torch.testing.assert_close(out, x.flip(-1), atol=1e-5, rtol=0)


def test_grayscale_has_equal_channels():
    out = random_grayscale(torch.rand(4, 3, 8, 8), p=1.0)
    assert torch.allclose(out[:, 0], out[:, 1]) and torch.allclose(out[:, 1], out[:, 2])


def test_hue_rotation_keeps_gray_and_full_turn_is_identity():
    m = hue_rotation_matrices(torch.tensor([0.25, 1.0]))
    gray = torch.tensor([0.4, 0.4, 0.4])
    torch.testing.assert_close(m[0] @ gray, gray, atol=1e-5, rtol=0)
    torch.testing.assert_close(m[1], torch.eye(3), atol=1e-5, rtol=0)


def test_two_views_are_two_independent_draws_of_the_pipeline():
    x = torch.rand(4, 3, 16, 16)
    v1, v2 = two_views(x, AugmentConfig(), torch.Generator().manual_seed(0))
    g = torch.Generator().manual_seed(0)
    torch.testing.assert_close(v1, augment(x, AugmentConfig(), g), atol=0, rtol=0)
    torch.testing.assert_close(v2, augment(x, AugmentConfig(), g), atol=0, rtol=0)
    assert all(not torch.equal(a, b) for a, b in zip(v1, v2))            # every pair differs


def test_without_switches_groups_off():
    cfg = AugmentConfig().without("crop", "color")
    x = torch.rand(2, 3, 8, 8)
    torch.testing.assert_close(augment(x, cfg), x)
    with pytest.raises(ValueError, match="unknown augmentation group"):
        AugmentConfig().without("rotate")


def test_without_sets_exactly_the_groups_fields():
    on = AugmentConfig(flip_p=0.5, blur_p=0.5, noise_std=0.1, rotation_p=0.5)
    off = {"crop": dict(crop_scale=(1.0, 1.0), crop_ratio=(1.0, 1.0)), "flip": dict(flip_p=0.0),
           "color": dict(jitter_p=0.0, grayscale_p=0.0), "blur": dict(blur_p=0.0),
           "noise": dict(noise_std=0.0), "rotation": dict(rotation_p=0.0)}
    for group, fields in off.items():
        assert on.without(group) == replace(on, **fields)
    assert on.without(*off) == replace(on, **{k: v for fields in off.values() for k, v in fields.items()})


def test_noise_is_the_generators_normal_draws_times_std_then_clipped():
    x = torch.rand(4, 3, 8, 8)
    out = gaussian_noise(x, 0.3, torch.Generator().manual_seed(0))
    want = x + 0.3 * torch.randn(x.shape, generator=torch.Generator().manual_seed(0))
    torch.testing.assert_close(out, want.clamp(0, 1), atol=0, rtol=0)
    assert out.min() == 0 and out.max() == 1 and (want < 0).any() and (want > 1).any()
    default = gaussian_noise(torch.full((1, 3, 64, 64), 0.5), generator=torch.Generator().manual_seed(1))
    assert (default - 0.5).std().item() == pytest.approx(0.05, rel=0.05)     # std defaults to 0.05


def test_float64_images_stay_float64_and_agree_with_float32():
    x = torch.rand(4, 3, 16, 16)
    cfg = AugmentConfig(blur_p=0.5, flip_p=0.5, rotation_p=0.5)        # noise: float64 draws differ
    out = augment(x.double(), cfg, torch.Generator().manual_seed(0))
    assert out.dtype == torch.float64
    torch.testing.assert_close(out.float(), augment(x, cfg, torch.Generator().manual_seed(0)), atol=1e-4, rtol=0)
    assert gaussian_noise(x.double(), 0.1).dtype == torch.float64


def test_every_step_stays_on_the_images_device():
    """The meta device stands in for a GPU: a parameter or constant made on the CPU instead of
    the images' device fails to combine with them."""
    x = torch.rand(4, 3, 16, 16, device="meta")
    cfg = AugmentConfig(blur_p=0.5, noise_std=0.05, flip_p=0.5, rotation_p=0.5)
    for out in (augment(x, cfg), augment(x[:, :1], cfg), color_jitter(x), gaussian_blur(x),
                random_grayscale(x), random_resized_crop(x)):
        assert out.device.type == "meta" and out.shape[0] == 4


def test_bad_input_is_named():
    with pytest.raises(ValueError, match=r"\(N, 3, H, W\)"):
        augment(torch.rand(3, 8, 8))
    with pytest.raises(TypeError, match="float images"):
        augment(torch.zeros(1, 3, 8, 8, dtype=torch.uint8))


def test_defaults_are_the_documented_ones():
    x = torch.rand(8, 3, 16, 16)
    same = lambda a, b: torch.testing.assert_close(a, b, atol=0, rtol=0)
    g = lambda: torch.Generator().manual_seed(3)
    same(color_jitter(x, generator=g()), color_jitter(x, 0.4, 0.4, 0.4, 0.1, 0.8, generator=g()))
    same(random_grayscale(x, generator=g()), random_grayscale(x, 0.2, generator=g()))
    same(gaussian_blur(x, generator=g()), gaussian_blur(x, (0.1, 1.5), 0.5, generator=g()))
    same(random_resized_crop(x, generator=g()), random_resized_crop(x, (0.3, 1.0), (3 / 4, 4 / 3), 0.0, g()))
    same(gaussian_noise(x.double(), 0.1, g()),
         (x.double() + 0.1 * torch.randn(x.shape, generator=g(), dtype=torch.float64)).clamp(0, 1))


def ramps(n, size=32):
    """Images whose channel 0 is the horizontal pixel-centre coordinate in (0, 1), channel 1 the
    vertical one: a crop's output then shows where its box lay."""
    coord = (torch.arange(size) + 0.5) / size
    x = torch.zeros(n, 3, size, size)
    x[:, 0] = coord[None, None, :]
    x[:, 1] = coord[None, :, None]
    return x


def boxes(out):
    """(N, 3, S, S) crops of `ramps` → width, height (fractions of the image side) and centre
    (cx, cy in [−1, 1]) of each box, read off the ramps' slope and offset (middle half only:
    there the bilinear samples of a linear ramp are exact)."""
    size = out.shape[-1]
    u = (2 * torch.arange(size) + 1) / size - 1                  # output pixel centres in [−1, 1]
    mid = slice(size // 4, 3 * size // 4)

    def fit(profile):                                           # (N, S) → slope, offset of a line in u
        a = torch.stack([u[mid], torch.ones(size // 2)], 1)
        coef = torch.linalg.lstsq(a, profile[:, mid].T).solution
        return coef[0], coef[1]
    sx, ox = fit(out[:, 0].mean(1))
    sy, oy = fit(out[:, 1].mean(2))
    return 2 * sx, 2 * sy, 2 * ox - 1, 2 * oy - 1


def test_crop_boxes_cover_the_scale_and_ratio_ranges_inside_the_image():
    """Area fraction in [0.2, 1], aspect (width / height) in [3/4, 4/3], every box inside the
    image, centres anywhere the box fits: each range reached, none left."""
    out = random_resized_crop(ramps(400), scale=(0.2, 1.0), ratio=(3 / 4, 4 / 3),
                              generator=torch.Generator().manual_seed(0))
    w, h, cx, cy = boxes(out)
    tol = 1e-3
    assert w.max() <= 1 + tol and h.max() <= 1 + tol
    area, aspect = w * h, w / h
    assert 0.2 - tol <= area.min() < 0.25 and area.max() > 0.9
    assert 3 / 4 - tol <= aspect.min() < 0.8 and 1.25 < aspect.max() <= 4 / 3 + tol
    assert ((cx.abs() - (1 - w)) <= tol).all() and ((cy.abs() - (1 - h)) <= tol).all()
    room_x, room_y = (1 - w) > 0.3, (1 - h) > 0.3                # boxes with room to move
    assert (cx[room_x] / (1 - w[room_x])).min() < -0.8 and (cx[room_x] / (1 - w[room_x])).max() > 0.8
    assert (cy[room_y] / (1 - h[room_y])).min() < -0.8 and (cy[room_y] / (1 - h[room_y])).max() > 0.8


def test_a_step_that_is_off_draws_nothing():
    """Each group switched off is skipped, not run with p = 0: the steps that are on then draw
    exactly what they would draw alone, so switching a group off changes no other step."""
    from contrastive_lab.augment import random_rotation

    x = torch.rand(6, 3, 16, 16)
    full = AugmentConfig(flip_p=0.5, rotation_p=0.5, blur_p=0.5, noise_std=0.1)
    steps = {
        "crop": lambda y, c, g: random_resized_crop(y, c.crop_scale, c.crop_ratio, c.flip_p, g),
        "rotation": lambda y, c, g: random_rotation(y, c.rotation_degrees, c.rotation_p, g),
        "color": lambda y, c, g: random_grayscale(color_jitter(y, c.brightness, c.contrast, c.saturation,
                                                               c.hue, c.jitter_p, g), c.grayscale_p, g),
        "blur": lambda y, c, g: gaussian_blur(y, c.blur_sigma, c.blur_p, g),
        "noise": lambda y, c, g: gaussian_noise(y, c.noise_std, g),
    }
    for off in [("crop",), ("rotation",), ("color",), ("blur",), ("noise",), ("crop", "flip")]:
        cfg = full.without(*off)
        skipped = set(off) - {"crop"} | ({"crop"} if {"crop", "flip"} <= set(off) else set())   # flip crops too
        g = torch.Generator().manual_seed(1)
        want = x
        for group, step in steps.items():
            if group not in skipped:
                want = step(want, cfg, g)
        torch.testing.assert_close(augment(x, cfg, torch.Generator().manual_seed(1)), want, atol=0, rtol=0)
    # one crop setting alone is enough to crop: scale, ratio or flip
    for cfg in (replace(full.without("crop", "flip"), crop_scale=(0.5, 1.0)),
                replace(full.without("crop", "flip"), crop_ratio=(0.5, 2.0)),
                replace(full.without("crop"), flip_p=1.0)):
        want = random_resized_crop(x, cfg.crop_scale, cfg.crop_ratio, cfg.flip_p, torch.Generator().manual_seed(2))
        got = augment(x, replace(cfg, rotation_p=0.0, jitter_p=0.0, grayscale_p=0.0, blur_p=0.0, noise_std=0.0),
                      torch.Generator().manual_seed(2))
        torch.testing.assert_close(got, want, atol=0, rtol=0)


def test_jitter_and_blur_draw_their_parameters_across_the_ranges(monkeypatch):
    """The per-image parameters handed to the deterministic ops: hue shifts within ±hue (both
    signs), saturation factors within [1 − s, 1 + s], blur sigmas within their range with a
    kernel reaching 3 · max(sigma)."""
    import contrastive_lab.augment as aug

    seen = {}
    original_colors, original_blur = aug.adjust_colors, aug.blur_each

    def spy_colors(x, b, k, s=None, hue=None):
        seen["saturation"], seen["hue"] = s, hue
        return original_colors(x, b, k, s, hue)

    def spy_blur(x, sigma, radius):
        seen["sigma"], seen["radius"] = sigma, radius
        return original_blur(x, sigma, radius)

    monkeypatch.setattr(aug, "adjust_colors", spy_colors)
    monkeypatch.setattr(aug, "blur_each", spy_blur)
    x = torch.rand(2000, 3, 2, 2)
    color_jitter(x, saturation=0.3, hue=0.1, generator=torch.Generator().manual_seed(0))
    assert -0.1 <= seen["hue"].min() < -0.09 and 0.09 < seen["hue"].max() <= 0.1
    assert 0.7 <= seen["saturation"].min() < 0.71 and 1.29 < seen["saturation"].max() <= 1.3
    gaussian_blur(torch.rand(2000, 1, 12, 12), sigma=(0.4, 1.2), generator=torch.Generator().manual_seed(1))
    assert 0.4 <= seen["sigma"].min() < 0.41 and 1.19 < seen["sigma"].max() <= 1.2
    assert seen["radius"] == 4                                    # ceil(3 · 1.2)
    gaussian_blur(torch.rand(4, 1, 12, 12), sigma=(0.1, 0.3), generator=torch.Generator().manual_seed(1))
    assert seen["radius"] == 1                                    # ceil(0.9): one tap each side


def test_color_jitter_changes_saturation_alone():
    x = torch.rand(8, 3, 4, 4)
    out = color_jitter(x, brightness=0.0, contrast=0.0, saturation=0.5, hue=0.0, p=1.0,
                       generator=torch.Generator().manual_seed(2))
    assert ((out - x).flatten(1).abs().amax(1) > 1e-4).all()


def test_recipes_by_name_and_a_three_dimensional_batch_is_refused():
    from contrastive_lab.augment import CIFAR10_RECIPE, recipe_for

    assert recipe_for("cifar10") is CIFAR10_RECIPE
    with pytest.raises(ValueError, match="no augmentation recipe for 'svhn'"):
        recipe_for("svhn")
    with pytest.raises(ValueError, match=r"\(N, 3, H, W\)"):
        augment(torch.rand(2, 3, 8))                               # one image without its batch axis
