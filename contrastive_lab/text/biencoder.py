"""A bi-encoder: one small Transformer that embeds queries and documents alike (Sentence-BERT).

    model = BiEncoder(tok.vocab_size, width=128, layers=2, max_len=64)
    q = model(tok(queries, max_len=24))             # (Q, 128)
    d = model(tok(documents, max_len=64))           # (D, 128): the SAME weights ("siamese")
    emb = encode_texts(model, tok, documents, max_len=64)   # (D, 128) unit rows, eval mode, no grad

Sentence-BERT (Reimers & Gurevych 2019) embeds each text on its own and mean-pools
the token states into one vector; relevance is the cosine of two vectors. Documents
can therefore be embedded once, ahead of time, and searched with a dot product — the
property that makes a bi-encoder a search engine (a cross-encoder, which reads query
and document together, is more accurate but must run once per pair).
Training (`multiple_negatives_ranking_loss`) lives in `contrastive_lab.methods.sentence_bert`.
"""
from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F

from .words import TextEncoder


class BiEncoder(nn.Module):
    """Token ids (B, L) → text embeddings (B, width), the same encoder for queries and documents.

    Token embeddings + learned positions → `layers` Transformer encoder layers
    (pre-norm, `heads` heads, feed-forward 2·width) → mean over the real tokens
    (padding, id 0, is masked out of attention and of the mean) → LayerNorm.
    This is `TextEncoder(..., pooling="mean", layers=layers)` from notebook 08.

    Args:
        vocab_size: the tokenizer's vocabulary size (id 0 must be padding).
        width: embedding size; a multiple of heads.
        layers: Transformer layers, >= 1 (1–2 train in seconds on a CPU).
        heads: attention heads per layer.
        max_len: longest input in tokens (cut texts with tokenizer(..., max_len=...)).
        dropout: inside the Transformer layers, during training only.
    """

    def __init__(self, vocab_size: int, width: int = 128, layers: int = 2, heads: int = 4,
                 max_len: int = 64, dropout: float = 0.1):
        super().__init__()
        if layers < 1:
            raise ValueError(f"a bi-encoder needs at least one Transformer layer, got layers={layers}")
        if width % heads:
            raise ValueError(f"width ({width}) must be a multiple of heads ({heads})")
        self.encoder = TextEncoder(vocab_size, width, pooling="mean", layers=layers, heads=heads,
                                   max_len=max_len, dropout=dropout)
        self.width = width
        self.max_len = max_len

    def forward(self, ids: torch.Tensor) -> torch.Tensor:
        return self.encoder(ids)


@torch.no_grad()
def encode_texts(model: nn.Module, tokenizer, texts: list[str], max_len: int,
                 batch_size: int = 256) -> torch.Tensor:
    """Embeddings (N, width) of `texts`, L2-normalized, float32 on the CPU.

    Eval mode, no gradient. Texts are sorted by length so that each batch pads
    little, then put back in their order.
    """
    if not texts:
        raise ValueError("encode_texts needs at least one text")
    device = next(model.parameters()).device
    lengths = tokenizer.lengths(texts, max_len)
    order = sorted(range(len(texts)), key=lambda i: lengths[i])
    was_training = model.training
    model.eval()
    out = torch.empty(len(texts), 0)
    try:
        chunks = []
        for start in range(0, len(texts), batch_size):
            rows = order[start:start + batch_size]
            ids = tokenizer([texts[i] for i in rows], max_len=max_len).to(device)
            chunks.append(F.normalize(model(ids).float(), dim=1).cpu())
        emb = torch.cat(chunks)
        out = torch.empty_like(emb)
        out[torch.tensor(order)] = emb
    finally:
        model.train(was_training)
    return out

