"""Batched augmentations: per-image randomness, repeatability, range, device."""
import pytest
import torch

from contrastive_lab.augment import (AugmentConfig, augment, color_jitter, gaussian_blur,
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
    x = batch_of_same_image()
    g = torch.Generator().manual_seed(2)
    for fn in (lambda: color_jitter(x, p=1.0, generator=g), lambda: gaussian_blur(x, p=1.0, generator=g)):
        out = fn()
        assert (out[0] - out[1]).abs().max() > 1e-4


def test_same_seed_repeats_and_other_seed_differs():
    x = torch.rand(4, 3, 16, 16)
    cfg = AugmentConfig(blur_p=0.5, noise_std=0.02, flip_p=0.5)
    a = augment(x, cfg, torch.Generator().manual_seed(0))
    b = augment(x, cfg, torch.Generator().manual_seed(0))
    c = augment(x, cfg, torch.Generator().manual_seed(1))
    assert torch.equal(a, b)
    assert not torch.equal(a, c)


def test_output_stays_in_range_and_shape():
    x = torch.rand(16, 3, 32, 32)
    out = augment(x, AugmentConfig(blur_p=1.0, noise_std=0.1, flip_p=0.5), torch.Generator().manual_seed(0))
    assert out.shape == x.shape
    assert out.min() >= 0 and out.max() <= 1


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


def test_two_views_differ_but_share_shape():
    x = torch.rand(4, 3, 16, 16)
    v1, v2 = two_views(x, AugmentConfig(), torch.Generator().manual_seed(0))
    assert v1.shape == v2.shape == x.shape
    assert not torch.equal(v1, v2)


def test_without_switches_groups_off():
    cfg = AugmentConfig().without("crop", "color")
    x = torch.rand(2, 3, 8, 8)
    torch.testing.assert_close(augment(x, cfg), x)
    with pytest.raises(ValueError, match="unknown augmentation group"):
        AugmentConfig().without("rotate")


def test_bad_input_is_named():
    with pytest.raises(ValueError, match=r"\(N, 3, H, W\)"):
        augment(torch.rand(3, 8, 8))
    with pytest.raises(TypeError, match="float images"):
        augment(torch.zeros(1, 3, 8, 8, dtype=torch.uint8))
