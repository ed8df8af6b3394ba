"""Words for contrastive models: a word-level tokenizer and a small text encoder.

    tok = Tokenizer.from_texts(captions)       # vocabulary built from the training captions
    ids = tok(["a red circle", "a mauve circle"])   # (2, L) int64; "mauve" → <unk>, padding → <pad>
    enc = TextEncoder(tok.vocab_size, width=128)    # ids (B, L) → features (B, 128)

The tokenizer lower-cases and splits on anything that is not a letter or a
digit. Words it has not seen map to <unk> (id 1); it never fails on new text.

The encoder embeds each word and pools over the caption:
    pooling="mean"   bag of words: the mean of the word embeddings (order-blind)
    pooling="conv"   a width-3 convolution over neighbouring words, then the mean:
                     "red circle" and "circle red" differ, so colour binds to its shape
and `layers` > 0 adds Transformer layers (with learned positions) before pooling.
"""
from __future__ import annotations

import re
from collections import Counter
from collections.abc import Iterable

import torch
import torch.nn as nn
import torch.nn.functional as F

PAD, UNK = "<pad>", "<unk>"
_WORD = re.compile(r"[a-z0-9]+")


def pad_rows(rows: list[list[int]], max_len: int | None = None, pad_id: int = 0) -> torch.Tensor:
    """Token-id lists → (B, L) int64, each cut to `max_len` (if given) and padded with `pad_id`
    on the right; L is the longest row after the cut. Shared by every tokenizer of the package."""
    if max_len is not None:
        rows = [r[:max_len] for r in rows]
    out = torch.full((len(rows), max(len(r) for r in rows)), pad_id, dtype=torch.long)
    for i, r in enumerate(rows):
        out[i, :len(r)] = torch.tensor(r, dtype=torch.long)
    return out


def split_words(text: str) -> list[str]:
    """Lower-case `text` and return its words: "A red-circle!" → ["a", "red", "circle"]."""
    return _WORD.findall(text.lower())


class Tokenizer:
    """Word-level tokenizer with a fixed vocabulary. Id 0 is <pad>, id 1 is <unk>.

    Calling it on a list of texts gives a (B, L) int64 tensor padded with 0,
    where L is the longest text (or `max_len`, truncating longer ones).
    """

    def __init__(self, words: Iterable[str]):
        words = [w for w in dict.fromkeys(words) if w not in (PAD, UNK)]
        self.vocab = [PAD, UNK] + words
        self.index = {w: i for i, w in enumerate(self.vocab)}

    @classmethod
    def from_texts(cls, texts: Iterable[str], min_count: int = 1) -> "Tokenizer":
        """Vocabulary of every word seen at least `min_count` times, most frequent first
        (ties alphabetical, so the same texts always give the same ids)."""
        counts = Counter(w for t in texts for w in split_words(t))
        words = sorted((w for w, c in counts.items() if c >= min_count), key=lambda w: (-counts[w], w))
        return cls(words)

    @property
    def vocab_size(self) -> int:
        return len(self.vocab)

    @property
    def pad_id(self) -> int:
        return 0

    @property
    def unk_id(self) -> int:
        return 1

    def encode(self, text: str) -> list[int]:
        """Word ids of one text; unknown words become <unk> (1)."""
        return [self.index.get(w, self.unk_id) for w in split_words(text)]

    def decode(self, ids) -> str:
        """Words of a list/tensor of ids, padding dropped."""
        ids = ids.tolist() if isinstance(ids, torch.Tensor) else ids
        return " ".join(self.vocab[i] for i in ids if i != self.pad_id)

    def __call__(self, texts: str | list[str], max_len: int | None = None) -> torch.Tensor:
        """Texts → (B, L) int64 ids, padded with <pad> (0). A text with no words
        becomes a single <unk>, so every row has at least one real token."""
        if isinstance(texts, str):
            texts = [texts]
        return pad_rows([self.encode(t) or [self.unk_id] for t in texts], max_len, self.pad_id)

    def __len__(self) -> int:
        return self.vocab_size

    def __repr__(self) -> str:
        return f"Tokenizer({self.vocab_size} words: {' '.join(self.vocab[:8])} …)"


class TextEncoder(nn.Module):
    """Word embeddings pooled over a caption: ids (B, L) → features (B, width).

    Args:
        vocab_size: rows of the embedding table (Tokenizer.vocab_size).
        width: size of word embeddings and of the output features.
        pooling: "mean" (bag of words) or "conv" (width-3 convolution over
            neighbouring words + ReLU, then the mean over the caption).
        layers: Transformer encoder layers before pooling (0 = none). They get
            learned position embeddings, so they see word order.
        heads: attention heads per Transformer layer.
        max_len: longest caption the position table covers.
    Padding (id 0) is masked out of the mean and of attention.
    """

    def __init__(self, vocab_size: int, width: int = 128, pooling: str = "conv", layers: int = 0,
                 heads: int = 4, max_len: int = 32, dropout: float = 0.0):
        super().__init__()
        if pooling not in ("mean", "conv"):
            raise ValueError(f"pooling must be 'mean' or 'conv', got {pooling!r}")
        self.embedding = nn.Embedding(vocab_size, width, padding_idx=0)
        self.pooling = pooling
        self.conv = nn.Conv1d(width, width, 3, padding=1) if pooling == "conv" else None
        self.position = nn.Parameter(torch.zeros(max_len, width)) if layers else None
        self.transformer = nn.TransformerEncoder(
            nn.TransformerEncoderLayer(width, heads, 2 * width, dropout, batch_first=True,
                                       norm_first=True), layers, enable_nested_tensor=False,
        ) if layers else None
        self.norm = nn.LayerNorm(width)
        self.feature_dim = width
        self.max_len = max_len

    def forward(self, ids: torch.Tensor) -> torch.Tensor:
        if ids.ndim != 2:
            raise ValueError(f"expected token ids of shape (B, L), got {tuple(ids.shape)}")
        if ids.shape[1] > self.max_len:
            raise ValueError(f"captions of {ids.shape[1]} tokens exceed max_len={self.max_len}; "
                             "truncate with tokenizer(texts, max_len=...)")
        keep = (ids != 0).unsqueeze(-1).float()                        # (B, L, 1), 0 at padding
        x = self.embedding(ids)                                        # (B, L, W)
        if self.transformer is not None:
            x = self.transformer(x + self.position[:ids.shape[1]], src_key_padding_mask=ids == 0)
        if self.conv is not None:
            x = F.relu(self.conv((x * keep).transpose(1, 2))).transpose(1, 2)
        pooled = (x * keep).sum(1) / keep.sum(1).clamp_min(1.0)         # mean over real words
        return self.norm(pooled)
