"""The masked autoencoder of notebook 11: its mask, its loss by hand, and a training step that
never waits for the host."""
import pytest
import torch

from contrastive_lab.device import count_host_syncs
from contrastive_lab.methods.masked_autoencoder import (MaskedAutoencoder, hide_patches, mae_settings, masked_mse,
                                                        normalize_patches, random_patch_mask,
                                                        train_masked_autoencoder)
from contrastive_lab.models import make_encoder
from contrastive_lab.profiles import FULL, QUICK
from conftest import TOY


def test_mask_hides_the_same_number_of_whole_patches_in_every_image():
    mask = random_patch_mask(6, 16, 4, 0.5, torch.Generator().manual_seed(0))
    assert mask.shape == (6, 1, 16, 16) and set(mask.unique().tolist()) <= {0.0, 1.0}
    patches = mask.view(6, 1, 4, 4, 4, 4)                        # (n, 1, row, 4 px, col, 4 px)
    per_patch = patches.amax((3, 5))
    assert torch.equal(per_patch, patches.amin((3, 5)))           # constant inside each 4×4 patch
    assert per_patch.flatten(1).sum(1).tolist() == [8.0] * 6     # 16 patches × 0.5 = 8 hidden, every image
    assert not torch.equal(mask[0], mask[1])                     # each image its own draw


def test_mask_is_reproducible_with_a_generator():
    a = random_patch_mask(4, 8, 2, 0.25, torch.Generator().manual_seed(3))
    b = random_patch_mask(4, 8, 2, 0.25, torch.Generator().manual_seed(3))
    assert torch.equal(a, b)


@pytest.mark.parametrize("size, patch, ratio, message", [(10, 4, 0.5, "multiple of patch"),
                                                         (16, 4, 0.0, r"mask_ratio must be in \(0, 1\)"),
                                                         (16, 4, 1.0, r"mask_ratio must be in \(0, 1\)")])
def test_bad_mask_settings_are_named(size, patch, ratio, message):
    with pytest.raises(ValueError, match=message):
        random_patch_mask(2, size, patch, ratio)


def test_hidden_pixels_are_gray_and_the_rest_untouched():
    x = torch.rand(2, 3, 4, 4)
    mask = torch.zeros(2, 1, 4, 4)
    mask[:, :, :2, :2] = 1
    out = hide_patches(x, mask)
    assert torch.all(out[:, :, :2, :2] == 0.5)
    assert torch.equal(out[:, :, 2:, :], x[:, :, 2:, :])


def test_masked_mse_by_hand_counts_hidden_pixels_only():
    target = torch.zeros(1, 1, 2, 2)
    recon = torch.tensor([[[[1.0, 2.0], [3.0, 4.0]]]])
    mask = torch.tensor([[[[1.0, 0.0], [0.0, 1.0]]]])             # pixels (0,0) and (1,1) hidden
    # (1² + 4²) / 2 hidden pixels = 8.5; the visible 2 and 3 do not count
    assert masked_mse(recon, target, mask).item() == pytest.approx(8.5)
    with pytest.raises(ValueError, match="same shape"):
        masked_mse(recon, torch.zeros(1, 1, 2, 3), mask)


def test_autoencoder_paints_an_image_of_the_input_size():
    """The decoder predicts patch-normalized pixels (zero mean, unit std per patch): unbounded, input-sized."""
    model = MaskedAutoencoder(make_encoder(TOY), image_size=16, decoder_width=16)
    out = model(torch.rand(3, 3, 16, 16))
    assert out.shape == (3, 3, 16, 16)


def test_patch_targets_have_zero_mean_and_unit_std_in_every_patch():
    x = torch.rand(2, 3, 8, 8, generator=torch.Generator().manual_seed(0))
    t = normalize_patches(x, 4).view(2, 3, 2, 4, 2, 4)
    assert torch.allclose(t.mean((3, 5)), torch.zeros(2, 3, 2, 2), atol=1e-5)
    assert torch.allclose(t.var((3, 5)), torch.ones(2, 3, 2, 2), atol=1e-3)
    # by hand: a patch [0, 0, 1, 1] (one row of 2 × 2) has mean 0.5 and std 0.577 → ±0.866
    by_hand = normalize_patches(torch.tensor([[[[0.0, 0.0], [1.0, 1.0]]]]), 2)
    assert torch.allclose(by_hand, torch.tensor([[[[-0.866, -0.866], [0.866, 0.866]]]]), atol=1e-3)
    with pytest.raises(ValueError, match="multiple of patch"):
        normalize_patches(torch.rand(1, 1, 6, 6), 4)


def test_settings_follow_the_profile():
    quick, full = mae_settings(QUICK), mae_settings(FULL)
    assert quick.epochs == QUICK.epochs // 2 and full.epochs == FULL.epochs // 2   # notebook 05's supervised budget
    assert quick.decoder_width == 4 * QUICK.cnn_widths[-1] and quick.batch_size == QUICK.batch_size


def test_training_steps_do_not_synchronise_with_the_host():
    """2 epochs × 4 steps with log_every 4: the loop's two reads of the losses, nothing else."""
    x = torch.rand(64, 3, 16, 16, generator=torch.Generator().manual_seed(0))
    torch.manual_seed(0)
    model = MaskedAutoencoder(make_encoder(TOY), image_size=16, decoder_width=16)
    settings = mae_settings(TOY).replace(epochs=2)
    with count_host_syncs() as syncs:
        history = train_masked_autoencoder(model, x, TOY, settings, device="cpu", progress=False)
    assert len(history.loss) == syncs.steps == 8
    assert syncs.step_total == 0, dict(syncs.in_steps)          # no sync and no host↔device copy in a step
    assert syncs.total <= len(history.loss) // TOY.log_every, dict(syncs.by_op)


def test_the_reconstruction_error_falls_on_images_it_can_learn():
    """Vertical stripes two pixels wide with one of four phases per image: the visible patches show
    the phase, so the hidden patches' normalized pixels can be predicted and the error can fall far."""
    g = torch.Generator().manual_seed(1)
    phase = torch.randint(0, 4, (64, 1, 1, 1), generator=g)
    columns = torch.arange(16).view(1, 1, 1, 16)
    x = (((columns + phase) // 2) % 2).float().expand(64, 3, 16, 16).contiguous()
    torch.manual_seed(1)
    model = MaskedAutoencoder(make_encoder(TOY), image_size=16, decoder_width=16)
    history = train_masked_autoencoder(model, x, TOY, mae_settings(TOY).replace(epochs=15, lr=5e-3),
                                       device="cpu", progress=False)
    first, last = sum(history.loss[:4]) / 4, sum(history.loss[-4:]) / 4
    assert last < 0.5 * first, (first, last)
