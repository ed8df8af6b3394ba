"""Verification on identities never seen in training (notebook 10): its settings.

Every loss of the notebook (ArcFace, triplet with batch-hard mining, SupCon,
softmax cross-entropy) trains the same embedder — the profile's small CNN with
a linear output of `embed_dim` and a BatchNorm1d "neck" (notebook 02's centred
head) — for the same `steps` on the same P×K batches. Only the loss differs.

    >>> settings = verification_settings(get_profile())
    >>> model = make_embedder(settings, device)

The full profile reads Omniglot (falling back to generated glyphs offline) and
trains the 4-conv, 64-channel network that few-shot papers use on Omniglot
(Vinyals et al. 2016; Snell et al. 2017): at 28×28 a ResNet buys little.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn as nn

from ..device import seed_offset
from ..models import make_encoder, prepare_model
from ..profiles import Profile, Settings


@dataclass(frozen=True)
class VerificationSettings(Settings):
    """Sizes of notebook 10, derived from a profile.

    source: "generated" glyphs or "omniglot" (falls back to generated offline).
    n_train_ids, n_val_ids, n_test_ids: identities per split (generated glyphs).
    per_identity: images per training identity; eval_per_identity: per val/test identity.
    n_gallery: test images per identity enrolled in the 1:N gallery (the rest are probes).
    max_impostors: impostor pairs drawn at random for each pair set (every genuine pair is kept);
        200,000 leave 200 false accepts at FAR = 1e-3, and keep a ROC to a tenth of a second.
    image_size: side of the grayscale images.
    encoder: the profile the embedder's encoder is built from (`make_encoder`).
    embed_dim: embedding size of every model.
    p, k: identities per batch × images per identity (P·K images a batch).
    steps: optimizer steps of every training run.
    leak_steps: steps of the two leakage runs, which train on far fewer images and must
        fit their identities (memorize them) for the leak to show.
    lr: Adam learning rate.
    arcface_margin, arcface_scale: ArcFace's m (radians; 0.5 as in Deng et al. 2019) and s (30 here,
        a smaller scale than the paper's 64, for 64-d embeddings and a short run).
    supcon_temperature: SupCon's τ (notebook 04's).
    triplet_margin: the triplet loss's margin on cosine distance (notebook 02's).
    target_far: the false accept rate a threshold is calibrated for.
    nca_ids, nca_per_identity: the training subsample NCA is fitted on (its cost grows
        with the square of the samples); pca_dims: PCA size before NCA.
    """

    source: str
    n_train_ids: int
    n_val_ids: int
    n_test_ids: int
    per_identity: int
    eval_per_identity: int
    n_gallery: int
    max_impostors: int
    image_size: int
    encoder: Profile
    embed_dim: int
    p: int
    k: int
    steps: int
    leak_steps: int
    lr: float
    arcface_margin: float
    arcface_scale: float
    supcon_temperature: float
    triplet_margin: float
    target_far: float
    nca_ids: int
    nca_per_identity: int
    pca_dims: int

    @property
    def batch_size(self) -> int:
        return self.p * self.k

    def __repr__(self) -> str:
        return (f"VerificationSettings({self.source}: {self.n_train_ids}/{self.n_val_ids}/{self.n_test_ids} "
                f"identities, {self.per_identity} images per training identity, {self.image_size}px; "
                f"{self.encoder.backbone} {self.encoder.cnn_widths} → {self.embed_dim}-d; "
                f"P×K = {self.p}×{self.k}, {self.steps} steps, lr {self.lr:g})")


def verification_settings(profile: Profile) -> VerificationSettings:
    """Notebook 10's sizes for this profile (quick: about 12 s a training run on 2 CPU cores)."""
    quick = profile.name == "quick"
    return VerificationSettings(
        source="generated" if quick else "omniglot",
        n_train_ids=640, n_val_ids=120 if quick else 150, n_test_ids=320,
        per_identity=16 if quick else 20, eval_per_identity=10 if quick else 20, n_gallery=5 if quick else 10,
        max_impostors=200_000,
        image_size=28,
        encoder=profile.replace(backbone="small_cnn", cnn_widths=profile.cnn_widths if quick else (64, 64, 64, 64)),
        embed_dim=profile.proj_dim,
        p=32 if quick else 64, k=4,
        steps=150 if quick else 3000, leak_steps=200 if quick else 3000,
        lr=profile.lr,
        arcface_margin=0.5, arcface_scale=30.0, supcon_temperature=0.1, triplet_margin=0.2,
        target_far=1e-2,
        nca_ids=100 if quick else 300, nca_per_identity=6 if quick else 10, pca_dims=32 if quick else 64,
    )


def make_embedder(settings: VerificationSettings, device: torch.device | str = "cpu", seed: int = 0) -> nn.Module:
    """A fresh embedder: the encoder (1 input channel) → embed_dim, then BatchNorm1d.

    Input (N, 1, S, S); output (N, embed_dim), not normalized (losses and `embed` do that).
    The BatchNorm1d neck centres the embeddings over the batch, which keeps batch-hard
    triplet mining from collapsing every image onto one point (notebook 02).
    """
    torch.manual_seed(seed + seed_offset())                   # CLAB_SEED=s shifts it, like every course seed
    encoder = make_encoder(settings.encoder, out_dim=settings.embed_dim, in_channels=1)
    model = nn.Sequential(encoder, nn.BatchNorm1d(settings.embed_dim))
    return prepare_model(model, device, settings.encoder.channels_last)
