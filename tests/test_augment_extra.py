"""random_rotation: exact quarter and half turns, per-image angles, probability, repeatability."""
import pytest
import torch

from contrastive_lab.augment import random_rotation


def test_zero_degrees_is_identity():
    x = torch.rand(3, 3, 8, 8)
    torch.testing.assert_close(random_rotation(x, (0.0, 0.0)), x, atol=1e-5, rtol=0)


def test_half_turn_turns_the_image_upside_down():
    # 180° about the centre of a square image: row r, column c goes to row H−1−r, column W−1−c
    x = torch.rand(2, 3, 8, 8)
    torch.testing.assert_close(random_rotation(x, (180.0, 180.0)), x.flip(-1, -2), atol=1e-5, rtol=0)


def test_quarter_turn_is_counter_clockwise_like_rot90():
    x = torch.arange(16.0).view(1, 1, 4, 4)
    torch.testing.assert_close(random_rotation(x, (90.0, 90.0)), torch.rot90(x, 1, (-2, -1)),
                               atol=1e-5, rtol=0)


def test_each_image_gets_its_own_angle():
    x = torch.rand(1, 3, 16, 16).expand(8, 3, 16, 16).contiguous()
    out = random_rotation(x, (-180.0, 180.0), generator=torch.Generator().manual_seed(0))
    diffs = [(out[0] - out[i]).abs().max().item() for i in range(1, 8)]
    assert min(diffs) > 1e-3


def test_probability_zero_and_one():
    x = torch.rand(16, 3, 8, 8)
    torch.testing.assert_close(random_rotation(x, (180.0, 180.0), p=0.0), x, atol=1e-5, rtol=0)
    out = random_rotation(x, (180.0, 180.0), p=0.5, generator=torch.Generator().manual_seed(1))
    turned = [torch.allclose(out[i], x[i].flip(-1, -2), atol=1e-5) for i in range(16)]
    kept = [torch.allclose(out[i], x[i], atol=1e-5) for i in range(16)]
    assert all(t or k for t, k in zip(turned, kept))
    assert 0 < sum(turned) < 16


def test_same_seed_repeats_and_another_seed_turns_otherwise():
    x = torch.rand(4, 3, 16, 16)
    a = random_rotation(x, p=0.5, generator=torch.Generator().manual_seed(0))
    b = random_rotation(x, p=0.5, generator=torch.Generator().manual_seed(0))
    c = random_rotation(x, generator=torch.Generator().manual_seed(1))
    d = random_rotation(x, generator=torch.Generator().manual_seed(2))
    assert torch.equal(a, b)
    assert all(not torch.allclose(ci, di, atol=1e-3) for ci, di in zip(c, d))


def test_angles_stay_in_their_range_counter_clockwise():
    """A bright dot right of the centre, turned by 10°–80° counter-clockwise, lands up and to
    the right (rows count downwards); −80°…−10° would put it below."""
    x = torch.zeros(64, 1, 33, 33)
    x[:, :, 16, 28] = 1.0
    out = random_rotation(x, (10.0, 80.0), generator=torch.Generator().manual_seed(0))
    rows, cols = torch.meshgrid(torch.arange(33.0), torch.arange(33.0), indexing="ij")
    mass = out[:, 0].flatten(1).sum(1)
    row = (out[:, 0] * rows).flatten(1).sum(1) / mass - 16
    col = (out[:, 0] * cols).flatten(1).sum(1) / mass - 16
    angle = torch.rad2deg(torch.atan2(-row, col))
    assert angle.min() > 5 and angle.max() < 85
    assert angle.max() - angle.min() > 40                           # spread over the range


def test_corners_are_filled_by_reflection():
    x = torch.ones(2, 3, 16, 16)
    torch.testing.assert_close(random_rotation(x, (45.0, 45.0)), x)   # zero padding would darken corners


def test_bad_input_is_named():
    with pytest.raises(ValueError, match=r"\(N, 3, H, W\)"):
        random_rotation(torch.rand(3, 8, 8))
