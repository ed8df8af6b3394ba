"""SigLIP: CLIP's two towers trained with a pairwise sigmoid loss (Zhai et al. 2023).

What is special about SigLIP, and all this file adds to CLIP (`methods.clip`):
- the loss `losses.siglip_loss`: each of the N × N image–caption pairs of a
  batch is a yes/no question of its own (a logistic regression on
  scale · cos + bias), with no softmax over the batch;
- a learnable bias beside the learnable scale, started as in the paper: the
  scale at 10 (its log, t′ = log 10, is the parameter) and the bias at −10.
Everything else (the towers, the captions, the text-side augmentation, the
optimizer and its schedule, zero-shot and retrieval) is CLIP's: `train_siglip`
is `train_clip` with the other loss.

    model = build_siglip(profile, tok, settings)
    history = train_siglip(model, scenes, tok, settings, profile)
    history.metrics["logit_bias"]          # the bias after every step

**Several processes.** The loss is a sum over pairs, so each process can score
ITS n images against the captions of all W processes (`global_siglip_loss`):
every pair of the global batch is counted once, on the process that holds its
image, and the mean over processes is the loss of the whole batch. Only the
captions travel (an all-gather, with gradient); no softmax needs the whole row.
"""
from __future__ import annotations

import torch
import torch.nn as nn

from ..device import get_rank
from ..distributed import gather_with_grad
from ..losses import sigmoid_pair_loss, siglip_loss
from ..text import Tokenizer
from ..train import History
from ..validate import check_finite, check_matrix, check_positive, check_same_shape
from .clip import CLIP, CLIPSettings, build_clip, caption_method, train_clip

INIT_SCALE = 10.0          # the paper's t′ = log 10
INIT_BIAS = -10.0          # the paper's b; notebook 08 derives why it is so negative


class SigLIP(CLIP):
    """CLIP's towers and learnable scale, plus a learnable bias.

    forward(images (N, C, H, W), ids (N, L)) → (image_emb (N, D), text_emb (N, D),
    logit_scale (), logit_bias ()), ready for `siglip_loss`.

    Args:
        image_encoder, text_encoder, embed_dim, max_logit_scale: as for CLIP.
        init_scale: the starting multiplier (SigLIP: 10); its log is the parameter.
        init_bias: the starting bias (SigLIP: −10).
    """

    def __init__(self, image_encoder: nn.Module, text_encoder: nn.Module, embed_dim: int = 64,
                 init_scale: float = INIT_SCALE, init_bias: float = INIT_BIAS, max_logit_scale: float = 100.0):
        check_positive(init_scale, "init_scale")
        check_finite(init_bias, "init_bias")
        super().__init__(image_encoder, text_encoder, embed_dim, init_temperature=1 / init_scale,
                         max_logit_scale=max_logit_scale)
        self.logit_bias = nn.Parameter(torch.tensor(float(init_bias)))

    def forward(self, images: torch.Tensor, ids: torch.Tensor):
        return self.encode_image(images), self.encode_text(ids), self.logit_scale, self.logit_bias


def build_siglip(profile, tokenizer: Tokenizer, settings: CLIPSettings | None = None, *,
                 init_scale: float = INIT_SCALE, init_bias: float = INIT_BIAS) -> SigLIP:
    """The SigLIP model a profile asks for: the towers `build_clip` makes, in a SigLIP."""
    clip = build_clip(profile, tokenizer, settings)
    return SigLIP(clip.image_encoder, clip.text_encoder, clip.embed_dim, init_scale=init_scale,
                  init_bias=init_bias, max_logit_scale=clip.max_logit_scale)


def train_siglip(model: SigLIP, scenes, tokenizer: Tokenizer, settings: CLIPSettings, profile, *,
                 desc: str = "SigLIP", **kwargs) -> History:
    """`train_clip` with `siglip_loss`: the same data, steps, optimizer and schedule. The scale
    is clamped to [1, 100] after every step as CLIP's is; the bias is free. Keyword arguments
    go to `train_clip` (epochs, device, evaluate, checkpoint, seed, ...)."""
    return train_clip(model, scenes, tokenizer, settings, profile, desc=desc, loss=siglip_loss, **kwargs)


def siglip_loss_gathered(image_emb: torch.Tensor, all_text: torch.Tensor, rank: int, logit_scale,
                         logit_bias) -> torch.Tensor:
    """SigLIP's loss for this process's n images against the captions of all W processes.

    image_emb: (n, D) this process's images; all_text: (nW, D) every process's
    captions, in rank order, so image i's own caption is row n·rank + i (label
    +1) and the other nW − 1 are its negatives (label −1). Returns
    −(1/n) Σ_i Σ_j log σ(label_ij · (scale · cos_ij + bias)); its mean over the
    ranks is `siglip_loss` of the whole batch, since each pair is counted once,
    on the process that holds its image.
    """
    check_matrix(image_emb, "image_emb")
    check_matrix(all_text, "all_text")
    n, m = image_emb.shape[0], all_text.shape[0]
    if image_emb.shape[1] != all_text.shape[1] or m % n:
        raise ValueError(f"expected all_text of shape (n · W, D) for image_emb {tuple(image_emb.shape)}, "
                         f"got {tuple(all_text.shape)}")
    if not 0 <= rank < m // n:
        raise ValueError(f"rank must be in 0 … {m // n - 1} for {m // n} processes, got {rank}")
    own = torch.arange(n, device=image_emb.device) + n * rank                      # each image's caption
    return sigmoid_pair_loss(image_emb, all_text, own, logit_scale, logit_bias)

def global_siglip_loss(image_emb: torch.Tensor, text_emb: torch.Tensor, logit_scale, logit_bias) -> torch.Tensor:
    """`siglip_loss_gathered` with the captions (n, D) gathered from every process (with
    gradient). On one process it is `siglip_loss`."""
    check_same_shape(image_emb, text_emb, "image_emb", "text_emb")
    return siglip_loss_gathered(image_emb, gather_with_grad(text_emb), get_rank(), logit_scale, logit_bias)


METHOD = caption_method("siglip", "SigLIP", build_siglip, global_siglip_loss)
