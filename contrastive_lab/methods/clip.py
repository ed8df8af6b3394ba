"""CLIP: an image encoder and a text encoder trained into one space (Radford et al. 2021).

What is special about CLIP, and all this file adds to the shared fit loop:
- two towers: an image encoder (the package's CNN) and a text encoder
  (`contrastive_lab.text`), each followed by a linear projection into one
  `embed_dim`-dimensional space, where both are L2-normalized;
- the symmetric InfoNCE `losses.clip_loss` over an image–caption batch: the
  other N − 1 captions are the negatives of each image, and vice versa;
- a learnable logit scale (= 1 / temperature), stored as its log, started at
  1 / 0.07 and clamped at 100 after every step, as CLIP does. It is called
  `logit_scale`, CLIP's own name, because learning it is part of the lesson;
  the other losses of the course take a fixed `temperature` τ.

The training loop over image–caption pairs (`train_on_captions`: images and
caption ids on the device, one phrasing of each caption drawn per step) takes
the loss as an argument: a method that pairs images with captions differently
(SigLIP's sigmoid loss) reuses it. `METHOD` is CLIP's registry entry (`registry`).

    settings = clip_settings(profile)              # sizes derived from the profile
    model = build_clip(profile, tok, settings)     # make_encoder(profile) + TextEncoder
    history = train_clip(model, scenes, tok, settings, profile)
    weights = zero_shot_weights(model, tok, [["a red circle"], ["a blue square"]])
    accuracy = zero_shot_accuracy(model, images, labels, weights)
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn as nn
import torch.nn.functional as F

from ..device import get_device, make_generator
from ..distributed import global_clip_loss
from ..evaluate import recall_at_k
from ..images import as_float_images, images_on_device
from ..losses import clip_loss
from ..models import make_encoder, prepare_model
from ..profiles import Settings
from ..text import TextEncoder, Tokenizer
from ..train import History, Recipe, compile_once
from .registry import Method, Projected
from .views import fit_recipe, index_batches


@dataclass(frozen=True)
class CLIPSettings(Settings):
    """Sizes of a CLIP run, derived from a profile by `clip_settings`.

    n_train / n_test: generated scenes to train on / to measure retrieval on.
    n_zero_shot: test images per group (seen, held-out) for zero-shot accuracy.
    embed_dim: the shared image–text space. text_width, text_layers, pooling: the text encoder.
    batch_size, epochs, lr, eval_every: the training run.
    """

    n_train: int
    n_test: int
    n_zero_shot: int
    embed_dim: int
    text_width: int
    text_layers: int
    pooling: str
    batch_size: int
    epochs: int
    lr: float
    eval_every: int


def clip_settings(profile) -> CLIPSettings:
    """CLIP sizes for a profile, derived from its fields.

    quick (small CNN, CPU): 10,000 training scenes, 8 epochs of batch 128, a
    convolutional text tower; about 40 s of training on 2 cores.
    full (ResNet-18, GPU): 100,000 scenes, 25 epochs of batch 512, a 512-wide
    text tower with 2 Transformer layers, a larger retrieval gallery.
    """
    big = profile.backbone != "small_cnn"
    return CLIPSettings(
        n_train=2 * profile.n_train,
        n_test=min(8 * profile.n_test, 12000),
        n_zero_shot=max(300, profile.n_test // 4),
        embed_dim=profile.proj_dim,
        text_width=profile.cnn_widths[-1],
        text_layers=2 if big else 0,
        pooling="conv",
        batch_size=profile.batch_size,
        epochs=max(8, profile.epochs // 4),
        lr=profile.lr,
        eval_every=max(1, profile.eval_every // 4),
    )


class CLIP(nn.Module):
    """Image tower + text tower + projections + learnable logit scale.

    forward(images (N, C, H, W), ids (N, L)) → (image_emb (N, D), text_emb (N, D),
    logit_scale ()), embeddings L2-normalized, ready for `clip_loss`.

    Args:
        image_encoder: images → (N, feature_dim) features (exposes `feature_dim`).
        text_encoder: ids → (N, feature_dim) features (exposes `feature_dim`).
        embed_dim: size D of the shared space.
        init_temperature: CLIP starts at 0.07, i.e. logit scale 1 / 0.07 ≈ 14.3.
        max_logit_scale: the clamp (CLIP: 100).
    """

    def __init__(self, image_encoder: nn.Module, text_encoder: nn.Module, embed_dim: int = 64,
                 init_temperature: float = 0.07, max_logit_scale: float = 100.0):
        super().__init__()
        if not 0 < init_temperature:
            raise ValueError(f"init_temperature must be > 0, got {init_temperature}")
        if not 1 <= max_logit_scale:
            raise ValueError(f"max_logit_scale must be >= 1, got {max_logit_scale}")
        self.image_encoder = image_encoder
        self.text_encoder = text_encoder
        self.image_projection = nn.Linear(image_encoder.feature_dim, embed_dim, bias=False)
        self.text_projection = nn.Linear(text_encoder.feature_dim, embed_dim, bias=False)
        # the parameter is log(scale): it stays positive and its steps are relative
        self.log_logit_scale = nn.Parameter(torch.tensor(math.log(1 / init_temperature)))
        self.max_logit_scale = max_logit_scale
        self.embed_dim = embed_dim

    @property
    def logit_scale(self) -> torch.Tensor:
        """The multiplier exp(log_logit_scale) that `clip_loss` takes (0-dim, with gradient)."""
        return self.log_logit_scale.exp()

    @property
    def temperature(self) -> float:
        return 1.0 / self.logit_scale.item()

    @torch.no_grad()
    def clamp_logit_scale_(self) -> None:
        """Keep the scale in [1, max_logit_scale]; call after every optimizer step."""
        self.log_logit_scale.clamp_(0.0, math.log(self.max_logit_scale))

    def encode_image(self, images: torch.Tensor) -> torch.Tensor:
        return F.normalize(self.image_projection(self.image_encoder(images)), dim=-1)

    def encode_text(self, ids: torch.Tensor) -> torch.Tensor:
        return F.normalize(self.text_projection(self.text_encoder(ids)), dim=-1)

    def forward(self, images: torch.Tensor, ids: torch.Tensor):
        return self.encode_image(images), self.encode_text(ids), self.logit_scale


def clip_recipe(settings: CLIPSettings) -> Recipe:
    """CLIP's optimization: Adam, the learning rate decaying to 0 on a cosine over the run,
    as CLIP's does (no warm-up needed at this scale)."""
    return Recipe(batch_size=settings.batch_size, epochs=settings.epochs, lr=settings.lr, optimizer="adam",
                  schedule="cosine")


def build_clip(profile, tokenizer: Tokenizer, settings: CLIPSettings | None = None) -> CLIP:
    """The CLIP model a profile asks for: make_encoder(profile) + TextEncoder."""
    if tokenizer is None:
        raise ValueError("CLIP needs the tokenizer built from its training captions")
    settings = settings or clip_settings(profile)
    text = TextEncoder(tokenizer.vocab_size, settings.text_width, pooling=settings.pooling,
                       layers=settings.text_layers)
    return CLIP(make_encoder(profile), text, embed_dim=settings.embed_dim)


def tokenize_captions(tokenizer: Tokenizer, captions: list[list[str]]) -> torch.Tensor:
    """N scenes × P phrasings → ids (N, P, L), padded to the longest phrasing."""
    n, p = len(captions), len(captions[0])
    flat = tokenizer([c for phrasings in captions for c in phrasings])
    return flat.view(n, p, -1)


LOGIT_PARAMETERS = ("logit_scale", "logit_bias")     # what a model's forward returns after the embeddings


def clip_pairs_loss(model: nn.Module, loss=clip_loss):
    """(images (B, C, H, W), ids (B, L)) → (loss of the pairs, {"logit_scale": tensor, ...}).

    model: a CLIP, or its DDP-wrapped copy on several processes. Its forward returns the two
    embeddings (B, D) and then what `loss` takes besides them (CLIP: the scale; a SigLIP:
    the scale and the bias), each logged by name. loss: (image_emb, text_emb, *those) → loss;
    `losses.clip_loss` (the default), or `distributed.global_clip_loss` to score against the
    captions and images of every process (on one process it equals `clip_loss`, up to the
    order of float32 sums).
    """
    def loss_fn(images: torch.Tensor, ids: torch.Tensor):
        image_emb, text_emb, *logit = model(images, ids)
        return loss(image_emb, text_emb, *logit), {name: v.detach() for name, v in zip(LOGIT_PARAMETERS, logit)}
    return loss_fn


def train_on_captions(loss_fn, model: nn.Module, scenes, tokenizer: Tokenizer, profile, *, recipe: Recipe,
                      device=None, evaluate=None, eval_every: int = 1, after_step=None, checkpoint=None,
                      seed: int = 0, max_seconds: float | None = None, progress: bool = True, desc: str = "train",
                      rank: int = 0, world_size: int = 1,
                      generators: dict[str, torch.Generator] | None = None) -> History:
    """Train `model` with `loss_fn(images, ids)` on batches of image–caption pairs.

    images (N, C, H, W) and the tokenized captions (N, P, L) are copied to the device
    once; each step takes a batch of indices there, draws one of the P phrasings of every
    caption at random (text-side augmentation) and returns loss_fn(images (B, C, H, W),
    ids (B, L)). recipe: the optimization (`clip_recipe`). rank, world_size: this
    process's shard of every global batch under torchrun, with phrasings of its own, as
    in `views.train_on_views`; the other arguments as there.
    """
    device = get_device(device)
    prepare_model(model, device, profile.channels_last)
    compile_once(model, profile.compile)
    images = images_on_device(scenes.images, device, profile.store_uint8)
    ids = tokenize_captions(tokenizer, scenes.captions).to(device)
    order, phrasing = make_generator(seed, device), make_generator(seed + 1, device)
    batch_size = min(recipe.batch_size, len(images))

    def step(idx: torch.Tensor):
        pick = torch.randint(ids.shape[1], (len(idx),), generator=phrasing, device=device)
        return loss_fn(as_float_images(images[idx]), ids[idx, pick])

    model.train()
    return fit_recipe(step, model, recipe, index_batches(len(images), batch_size, order, rank, world_size,
                                                         (phrasing, seed + 1)),
                      len(images) // (batch_size * world_size), device=device, amp=profile.amp,
                      evaluate=evaluate, eval_every=eval_every, after_step=after_step, checkpoint=checkpoint,
                      generators={"order": order, "phrasing": phrasing, **(generators or {})},
                      log_every=profile.log_every, max_seconds=max_seconds, progress=progress, desc=desc)


def train_clip(model: CLIP, scenes, tokenizer: Tokenizer, settings: CLIPSettings, profile, *,
               epochs: int | None = None, device=None, evaluate=None, checkpoint=None, seed: int = 0,
               max_seconds: float | None = None, progress: bool = True, desc: str = "CLIP",
               loss=clip_loss) -> History:
    """Train `model` on captioned scenes with the symmetric InfoNCE, or another image–text
    `loss` (`train_on_captions`).

    Args:
        model: a CLIP; moved to `device` (channels_last if the profile says so).
        scenes: a CaptionedScenes (images (N, 3, H, W), N lists of phrasings).
        tokenizer: turns the captions into ids (built from the training captions).
        settings: batch size, epochs, lr, eval_every (see `clip_settings`).
        profile: amp, channels_last, compile, store_uint8, log_every.
        evaluate: () → {metric: value}, run every settings.eval_every epochs.
        checkpoint: a file path: saved every epoch, resumed from when it exists.
        loss: (image_emb, text_emb, *what the model's forward returns after them) → loss;
            `losses.clip_loss` here, a sigmoid loss for a SigLIP (`clip_pairs_loss`).
    The learning rate decays to 0 over the run on a cosine, as CLIP's does (no
    warm-up needed at this scale); the scale is clamped after every step.
    Returns the History; history.metrics["logit_scale"] holds the scale after every step
    (and "logit_bias" the bias, for a model that has one).
    """
    return train_on_captions(clip_pairs_loss(model, loss), model, scenes, tokenizer, profile,
                             recipe=clip_recipe(settings).given(epochs=epochs), device=device, evaluate=evaluate,
                             eval_every=settings.eval_every, after_step=model.clamp_logit_scale_,
                             checkpoint=checkpoint, seed=seed, max_seconds=max_seconds, progress=progress, desc=desc)


# ------------------------------------------------------------------ using a trained model
@torch.no_grad()
def encode_images(model: CLIP, images: torch.Tensor, batch_size: int = 512) -> torch.Tensor:
    """Image embeddings (N, D), unit length, on the CPU (eval mode, no gradient)."""
    device = next(model.parameters()).device
    was_training = model.training
    model.eval()
    try:
        return torch.cat([model.encode_image(as_float_images(images[i:i + batch_size].to(device))).float().cpu()
                          for i in range(0, len(images), batch_size)])
    finally:
        model.train(was_training)


@torch.no_grad()
def encode_texts(model: CLIP, tokenizer: Tokenizer, texts: list[str], batch_size: int = 1024) -> torch.Tensor:
    """Text embeddings (T, D), unit length, on the CPU. Unknown words become <unk>."""
    device = next(model.parameters()).device
    was_training = model.training
    model.eval()
    try:
        return torch.cat([model.encode_text(tokenizer(texts[i:i + batch_size]).to(device)).float().cpu()
                          for i in range(0, len(texts), batch_size)])
    finally:
        model.train(was_training)


def zero_shot_weights(model: CLIP, tokenizer: Tokenizer, prompts: list[list[str]]) -> torch.Tensor:
    """One unit vector per class: the mean embedding of that class's prompts (prompt ensembling).

    prompts: C lists of prompt strings (one list per class; a list of one
    string is a single prompt). Returns (C, D).
    """
    flat = [p for group in prompts for p in group]
    emb = encode_texts(model, tokenizer, flat)
    sizes = [len(group) for group in prompts]
    return F.normalize(torch.stack([e.mean(0) for e in emb.split(sizes)]), dim=1)


def zero_shot_accuracy(model: CLIP, images: torch.Tensor, labels: torch.Tensor,
                       weights: torch.Tensor) -> float:
    """Fraction of images (N, C, H, W) whose most similar class vector (weights (K, D)) is labels (N,)."""
    pred = (encode_images(model, images) @ weights.T).argmax(1)
    return (pred == labels).float().mean().item()


def cross_modal_recall(image_emb: torch.Tensor, text_emb: torch.Tensor, content: torch.Tensor,
                       ks=(1, 5, 10)) -> dict[str, dict[int, float]]:
    """Recall@K both ways between N images and their N captions.

    image_emb, text_emb: (N, D); row i of each belongs to scene i. content (N,):
    scenes with the same content id count as correct answers for each other
    (two captions "two red circles" are interchangeable). Returns
    {"image→text": {k: recall}, "text→image": {k: recall}}.
    """
    ks = list(ks)
    return {"image→text": recall_at_k(gallery_emb=text_emb, gallery_labels=content, query_emb=image_emb,
                                      query_labels=content, k=ks),
            "text→image": recall_at_k(gallery_emb=image_emb, gallery_labels=content, query_emb=text_emb,
                                      query_labels=content, k=ks)}


def chance_recall(content: torch.Tensor, ks=(1, 5, 10)) -> dict[int, float]:
    """Recall@K of a random ranking: mean over queries of 1 − C(G − m, K) / C(G, K),
    where m is how many of the G gallery items share the query's content."""
    g = len(content)
    m = (content[:, None] == content[None, :]).sum(1).tolist()
    out = {}
    for k in ks:
        miss = [math.comb(g - mi, k) / math.comb(g, k) for mi in m]
        out[k] = 1.0 - sum(miss) / g
    return out


# ------------------------------------------------------------------ the registry entry
def _clip_sizes(profile) -> dict:
    """The sizes of CLIP's model beyond the profile's (the experiment record)."""
    settings = clip_settings(profile)
    return {"embed_dim": settings.embed_dim, "text_width": settings.text_width,
            "text_layers": settings.text_layers, "pooling": settings.pooling}


def caption_method(name: str, title: str, build, pair_loss) -> Method:
    """The registry entry of a two-tower image–caption method trained like CLIP: `build(profile,
    tokenizer)` makes the model, `pair_loss(image_emb, text_emb, *logit parameters)` is its loss over
    every process's pairs (`distributed.global_clip_loss`; SigLIP's `global_siglip_loss`)."""
    return Method(
        name=name, title=title, data="captions",
        build=lambda profile, options, data: build(profile, data.tokenizer),
        loss=lambda run: clip_pairs_loss(run.part, pair_loss),
        after_step=lambda model: model.clamp_logit_scale_,
        negatives_per_query=lambda model, batch, world: batch * world - 1,
        recipe=lambda profile: clip_recipe(clip_settings(profile)),
        n_train=lambda profile: clip_settings(profile).n_train,
        sizes=_clip_sizes,
        served=lambda model: Projected(model.image_encoder, model.image_projection),
    )


METHOD = caption_method("clip", "CLIP", build_clip, global_clip_loss)
