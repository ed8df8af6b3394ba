"""A masked autoencoder in miniature (He et al. 2022, "MAE"): the generative baseline of notebook 11.

What is special about it, and all this file adds to the shared fit loop:
- one view, no negatives, no labels: hide a random half of the square patches
  of every image (painted mid-gray) and train encoder + decoder to paint the
  hidden pixels back;
- the loss is the mean squared error on the HIDDEN pixels only (on the visible
  ones the model could just copy its input), against targets normalized within
  each patch (MAE's `norm_pix_loss`): every patch's pixels minus their mean,
  divided by their std, per channel — the model paints strokes and edges, not
  each patch's colour and brightness;
- the decoder is a training aid, like SimCLR's head: after training it is
  dropped and the encoder's pooled features are probed.

Where it differs from MAE: MAE's ViT drops the hidden patches from its input,
a CNN sees them as gray squares; the small CNN pools its feature map into one
vector, from which a two-layer MLP decoder paints the whole image (MAE's decoder
is a small Transformer over patch tokens); the target is normalized per channel
within each patch, where MAE normalizes each patch over all its pixels and channels
together (so here a patch's colour is removed entirely, in MAE only its brightness and
contrast). It is "in the MAE spirit", at a size
a CPU trains in seconds.

Design notes (quick profile, 6 epochs, validation split, made while writing
notebook 11): normalized targets gave validation k-NN(20) 0.224 against 0.113
for raw-pixel targets; hiding 50 % of the 4-pixel patches 0.224 against 0.156
for MAE's 75 %.

    settings = mae_settings(profile)
    model = MaskedAutoencoder(make_encoder(profile), image_size=32)
    history = train_masked_autoencoder(model, train_x, profile, settings)
    features = embed(model.encoder, test_x)          # the encoder, not the decoder
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn as nn

from ..data.pairs import minibatches
from ..device import get_device, make_generator
from ..images import as_float_images, images_on_device
from ..models import prepare_model
from ..profiles import Settings
from ..train import History, Recipe, compile_once
from .views import fit_recipe

GRAY = 0.5          # what a hidden patch is painted with (the middle of [0, 1])


@dataclass(frozen=True)
class MAESettings(Settings):
    """Sizes of a masked-autoencoder run, derived from a profile by `mae_settings`.

    patch: side of a square patch in pixels (the image side must be a multiple of it).
    mask_ratio: fraction of each image's patches hidden, in (0, 1).
    decoder_width: hidden units of the decoder's MLP.
    epochs, batch_size, lr: the training run.
    """

    patch: int
    mask_ratio: float
    decoder_width: int
    epochs: int
    batch_size: int
    lr: float


def mae_settings(profile) -> MAESettings:
    """Masked-autoencoder sizes for a profile.

    The budget is notebook 05's supervised baseline: half the SimCLR run's
    epochs, one pass of each image per epoch, the profile's batch and lr.
    Patches of 4 pixels (an 8 × 8 grid on 32 × 32 images), half of them hidden
    (MAE hides 75 % of 16-pixel patches on 224-pixel images; at 32 pixels half
    the 4-pixel patches already leaves little of a digit in view).
    """
    return MAESettings(patch=4, mask_ratio=0.5, decoder_width=4 * profile.cnn_widths[-1],
                       epochs=max(1, profile.epochs // 2), batch_size=profile.batch_size, lr=profile.lr)


class MaskedAutoencoder(nn.Module):
    """Encoder + a two-layer MLP decoder that paints an image from the encoder's pooled features.

    forward: images (N, C, H, W) → predictions (N, C, H, W) of the patch-normalized
    image (`normalize_patches`), unbounded. Decoder: Linear(feature_dim →
    decoder_width) → ReLU → Linear(→ C·H·W).
    """

    def __init__(self, encoder: nn.Module, image_size: int = 32, channels: int = 3, decoder_width: int = 512):
        super().__init__()
        self.encoder = encoder
        self.decoder = nn.Sequential(
            nn.Linear(encoder.feature_dim, decoder_width), nn.ReLU(inplace=True),
            nn.Linear(decoder_width, channels * image_size * image_size),
            nn.Unflatten(1, (channels, image_size, image_size)))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.decoder(self.encoder(x))


def normalize_patches(x: torch.Tensor, patch: int, eps: float = 1e-6) -> torch.Tensor:
    """MAE's reconstruction target: each patch × patch square of each channel of x (N, C, H, W)
    minus its mean, divided by its std (+ eps). Same shape as x."""
    n, c, h, w = x.shape
    if h % patch or w % patch:
        raise ValueError(f"image size {h}×{w} must be a multiple of patch ({patch})")
    t = x.float().view(n, c, h // patch, patch, w // patch, patch)
    mean = t.mean((3, 5), keepdim=True)
    std = t.var((3, 5), keepdim=True).add(eps).sqrt()
    return ((t - mean) / std).view(n, c, h, w)


def random_patch_mask(n: int, image_size: int, patch: int, mask_ratio: float,
                      generator: torch.Generator | None = None, device=None) -> torch.Tensor:
    """A float mask (n, 1, image_size, image_size): 1 on hidden pixels, 0 on visible ones.

    Exactly round(mask_ratio · G) of the G = (image_size / patch)² patches of each
    image are hidden, chosen uniformly at random (ranks of random scores, as MAE
    does), so every image loses the same share. Made on the generator's device
    without reading any value on the host.
    """
    if image_size % patch:
        raise ValueError(f"image_size ({image_size}) must be a multiple of patch ({patch})")
    if not 0 < mask_ratio < 1:
        raise ValueError(f"mask_ratio must be in (0, 1), got {mask_ratio}")
    side = image_size // patch
    hidden = round(mask_ratio * side * side)
    device = generator.device if generator is not None else (device or "cpu")
    scores = torch.rand(n, side * side, generator=generator, device=device)
    ranks = scores.argsort(1).argsort(1)                          # (n, G): a random permutation per image
    mask = (ranks < hidden).float().view(n, 1, side, side)
    return mask.repeat_interleave(patch, 2).repeat_interleave(patch, 3)


def hide_patches(x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Images (N, C, H, W) with the pixels where mask (N, 1, H, W) is 1 painted gray."""
    return x * (1 - mask) + GRAY * mask


def masked_mse(reconstruction: torch.Tensor, target: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Mean squared error over the hidden pixels only (every channel), a scalar tensor.

    reconstruction, target: (N, C, H, W); mask: (N, 1, H, W), 1 = hidden.
    """
    if reconstruction.shape != target.shape:
        raise ValueError(f"expected reconstruction and target of the same shape, got "
                         f"{tuple(reconstruction.shape)} and {tuple(target.shape)}")
    error = (reconstruction.float() - target.float()).pow(2) * mask
    return error.sum() / (mask.sum() * target.shape[1]).clamp_min(1.0)


def train_masked_autoencoder(model: MaskedAutoencoder, train_x: torch.Tensor, profile,
                             settings: MAESettings | None = None, *, device=None, evaluate=None,
                             eval_every: int | None = None, checkpoint=None, seed: int = 0,
                             progress: bool = True, desc: str = "masked autoencoder") -> History:
    """Train `model` to paint back the hidden patches of unlabelled images train_x (N, C, H, W).

    Each step: a batch of images, a fresh random patch mask per image,
    `masked_mse(model(hide_patches(x, mask)), normalize_patches(x, patch), mask)`. No value is read on the
    host inside the step. The profile's optimizer recipe, the settings' epochs,
    batch and lr; `evaluate`, `checkpoint` and `progress` as in `fit`.
    """
    settings = settings or mae_settings(profile)
    device = get_device(device)
    prepare_model(model, device, profile.channels_last)
    compile_once(model, profile.compile)
    data = images_on_device(train_x, device, profile.store_uint8)
    order, masks = make_generator(seed, device), make_generator(seed + 1, device)
    recipe = Recipe.of(profile).given(batch_size=settings.batch_size, epochs=settings.epochs, lr=settings.lr)
    batch_size = min(recipe.batch_size, len(data))
    image_size = data.shape[-1]

    def step(idx: torch.Tensor) -> torch.Tensor:
        x = as_float_images(data[idx])
        mask = random_patch_mask(len(idx), image_size, settings.patch, settings.mask_ratio, masks)
        return masked_mse(model(hide_patches(x, mask)), normalize_patches(x, settings.patch), mask)

    model.train()
    return fit_recipe(step, model, recipe, lambda epoch: minibatches(len(data), batch_size, order),
                      len(data) // batch_size, device=device, amp=profile.amp, evaluate=evaluate,
                      eval_every=eval_every or profile.eval_every, checkpoint=checkpoint,
                      generators={"order": order, "masks": masks}, log_every=profile.log_every,
                      progress=progress, desc=desc)
