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
