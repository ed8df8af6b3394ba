"""Moving-digit clips: shapes, determinism, smooth motion, and temporal positive pairs."""
import pytest
import torch

from contrastive_lab.data.sequences import make_moving_digits, temporal_pairs


def test_shapes_range_and_labels():
    frames, labels = make_moving_digits(6, n_frames=5, split="train", seed=0)
    assert frames.shape == (6, 5, 3, 32, 32) and frames.dtype == torch.float32
    assert labels.shape == (6,) and labels.dtype == torch.int64
    assert frames.min() >= 0 and frames.max() <= 1
    assert set(labels.tolist()) <= set(range(10))


def test_same_seed_repeats_other_seed_and_split_differ():
    a, ya = make_moving_digits(4, 3, "train", seed=1)
    b, yb = make_moving_digits(4, 3, "train", seed=1)
    c, _ = make_moving_digits(4, 3, "train", seed=2)
    d, _ = make_moving_digits(4, 3, "test", seed=1)
    assert torch.equal(a, b) and torch.equal(ya, yb)
    assert not torch.equal(a, c) and not torch.equal(a, d)


def test_neighbouring_frames_are_closer_than_distant_ones():
    # the scene changes smoothly: frame 0 is nearer to frame 1 than to the last frame
    frames, _ = make_moving_digits(64, 8, seed=0, noise_std=0.0)
    near = (frames[:, 0] - frames[:, 1]).flatten(1).norm(dim=1)
    far = (frames[:, 0] - frames[:, -1]).flatten(1).norm(dim=1)
    assert (near < far).float().mean() > 0.9


def test_frames_of_a_clip_differ_and_a_still_clip_does_not():
    frames, _ = make_moving_digits(8, 4, seed=0)
    assert (frames[:, 0] - frames[:, -1]).abs().amax(dim=(1, 2, 3)).min() > 0.05
    still, _ = make_moving_digits(8, 4, seed=0, travel=0.0, max_turn_deg=0.0, colour_drift=0.0, clutter_drift=0.0,
                                  size_range=(20.0, 20.0), noise_std=0.0)
    torch.testing.assert_close(still[:, 0], still[:, -1], atol=0.02, rtol=0)


def test_bad_arguments_are_named():
    with pytest.raises(ValueError, match="split must be"):
        make_moving_digits(2, 4, split="val")
    with pytest.raises(ValueError, match="n_frames must be at least 2"):
        make_moving_digits(2, 1)
    with pytest.raises(ValueError, match="travel and colour_drift"):
        make_moving_digits(2, 4, travel=1.5)


def test_temporal_pairs_stay_inside_one_clip_within_the_gap():
    g = torch.Generator().manual_seed(0)
    n_seq, n_frames, max_gap = 50, 6, 2
    a, p = temporal_pairs(n_seq, n_frames, max_gap, generator=g)
    assert a.shape == p.shape == (n_seq,)
    assert torch.equal(a // n_frames, torch.arange(n_seq))        # one pair per clip, in order
    assert torch.equal(a // n_frames, p // n_frames)               # same clip
    gap = (a - p).abs()
    assert gap.min() >= 1 and gap.max() <= max_gap
    assert (a < p).any() and (a > p).any()                          # either frame may come first


def test_temporal_pairs_for_chosen_clips_and_bad_gap():
    a, p = temporal_pairs(10, 4, 3, generator=torch.Generator().manual_seed(1),
                          sequences=torch.tensor([7, 2, 7]))
    assert (a // 4).tolist() == [7, 2, 7] and (p // 4).tolist() == [7, 2, 7]
    with pytest.raises(ValueError, match="max_gap"):
        temporal_pairs(10, 4, max_gap=4)
