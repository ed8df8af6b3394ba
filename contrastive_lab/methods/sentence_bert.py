"""Sentence-BERT-style training of a bi-encoder on (query, document) pairs.

What is special about it, and all this file adds to the shared fit loop:
- one encoder for both sides (`text.biencoder.BiEncoder`), mean-pooled;
- `losses.multiple_negatives_ranking_loss`: every other document of the batch is a
  negative, optionally with one mined hard negative per query (`mine_hard_negatives`);
- batches cut to the longest text they hold, computed on the host by the batch
  iterator so that the step itself never reads a tensor value.

    settings = sentence_settings(profile)
    model = BiEncoder(tok.vocab_size, settings.width, settings.layers, settings.heads, settings.doc_len)
    history = train_biencoder(model, tok, queries, documents, settings)
"""
from __future__ import annotations

from dataclasses import dataclass

import torch

from ..device import make_generator
from ..losses import multiple_negatives_ranking_loss
from ..profiles import Settings
from ..train import History, fit, make_optimizer, make_schedule


@dataclass(frozen=True)
class SentenceSettings(Settings):
    """Sizes of notebook 09's bi-encoder runs, derived from a profile by `sentence_settings`.

    vocab_size: WordPiece vocabulary. query_len / doc_len: longest query / document in
    tokens. doc_words: every method (BM25, TF-IDF, the bi-encoder) reads the first
    doc_words words of each document. width, layers, heads, dropout: the Transformer.
    batch_size, epochs, lr, warmup: the main run (linear warm-up, then cosine decay).
    finetune_epochs, finetune_lr: the short runs that start from the main model.
    adapt_epochs: the in-domain fine-tune of the domain-shift run (a smaller set, more epochs).
    scale: the loss's logit scale (1 / temperature), called `scale` as in sentence-transformers.
    symmetric: train in both directions (query → document and document → query).
    amp, log_every: the profile's (autocast on CUDA, bf16 or fp16 by GPU; read the loss every this many steps).
    """

    vocab_size: int
    query_len: int
    doc_len: int
    doc_words: int
    width: int
    layers: int
    heads: int
    dropout: float
    batch_size: int
    epochs: int
    lr: float
    warmup: float
    finetune_epochs: int
    finetune_lr: float
    adapt_epochs: int
    scale: float
    symmetric: bool = False
    amp: bool = False
    log_every: int = 25


def sentence_settings(profile) -> SentenceSettings:
    """Bi-encoder sizes for a profile.

    quick (CPU): one Transformer layer, 128 wide, on 24-token queries and 48-token
    documents (every method reads the first 32 words, which fit in 48 pieces for 95 %
    of the documents), batch 64, 3 epochs over about 8,400 pairs (the numerical
    libraries' training modules and the training-only libraries, two queries per
    document). Chosen on validation Recall@10: a second layer overfitted and scored
    lower; dropout 0.3 and a 2,000-piece vocabulary beat 4,000 pieces; a width of 256
    raised the random init as much as the trained model at 2.5 times the cost. The
    training-only text added about three points (mean of two runs 0.538 → 0.565); the
    symmetric loss (each document also picks its query) changed nothing (0.539, 0.561),
    so it stays off (`benchmarks/sentence_validation.py` prints these).
    full (GPU): 2 layers, 256 wide, 160-token documents (the first 112 words), batch 128,
    more epochs.
    """
    big = profile.backbone != "small_cnn"
    return SentenceSettings(
        vocab_size=8000 if big else 2000,
        query_len=32 if big else 24,
        doc_len=160 if big else 48,
        doc_words=112 if big else 32,
        width=256 if big else 128,
        layers=2 if big else 1,
        heads=8 if big else 4,
        dropout=0.1 if big else 0.3,
        batch_size=128 if big else 64,
        epochs=15 if big else 3,
        lr=5e-4 if big else 1e-3,
        warmup=0.1,
        finetune_epochs=2 if big else 1,
        finetune_lr=2e-4 if big else 3e-4,
        adapt_epochs=8 if big else 4,
        scale=20.0,
        amp=profile.amp,
        log_every=profile.log_every,
    )


def mine_hard_negatives(scores: torch.Tensor, answers: torch.Tensor | None = None,
                        exclude: torch.Tensor | None = None) -> torch.Tensor:
    """For each query, the highest-scored document that is not its answer: (Q,) indices.

    Args:
        scores: (Q, D) scores of the training documents for the training queries, e.g. BM25.
        answers: (Q,) index of each query's own document; default: query i ↔ document i
            (then scores must be square).
        exclude: optional (Q, D) bool, True where a document must not be picked
            (known false negatives: another module's function of the same name).
    These are BM25's most convincing wrong answers — and some of them are not
    wrong at all (false negatives): measure how many before training on them.
    """
    if scores.ndim != 2:
        raise ValueError(f"scores must be (Q, D), queries × documents; got {tuple(scores.shape)}")
    if answers is None:
        if scores.shape[0] != scores.shape[1]:
            raise ValueError(f"scores must be square (N, N) when answers is not given "
                             f"(document i answers query i); got {tuple(scores.shape)}")
        answers = torch.arange(scores.shape[0])
    if answers.shape != (scores.shape[0],):
        raise ValueError(f"answers must be ({scores.shape[0]},) document indices, got {tuple(answers.shape)}")
    masked = scores.float().clone()
    masked[torch.arange(len(answers)), answers] = -torch.inf
    if exclude is not None:
        if exclude.shape != scores.shape:
            raise ValueError(f"exclude must have the shape of scores {tuple(scores.shape)}, got {tuple(exclude.shape)}")
        masked = masked.masked_fill(exclude.bool(), -torch.inf)
    return masked.argmax(1)


def length_batches(query_lengths: list[int], doc_lengths: list[int], batch_size: int,
                   generator: torch.Generator | None = None, hard_negatives: list[int] | None = None,
                   device: torch.device | str | None = None):
    """Shuffled batches for one epoch: (indices, query_len, doc_len, negative_len) tuples.

    The lengths are the longest query, document and hard-negative document in the
    batch (python ints, worked out here on the host from a host `generator`'s
    shuffle), so the step can cut the padded id tensors without reading them.
    The indices (batch_size,) are on `device` (default: the CPU): the epoch's
    order is copied there once, and each batch is a slice of it, so no step copies
    an index batch from the host. Incomplete last batch dropped.
    """
    n = len(query_lengths)
    if batch_size < 2 or batch_size > n:
        raise ValueError(f"batch_size must be between 2 and the number of pairs ({n}), got {batch_size}")
    order = torch.randperm(n, generator=generator)
    on_device = order.to(device) if device is not None else order          # one copy per epoch
    order = order.tolist()
    for start in range(0, n - n % batch_size, batch_size):
        idx = order[start:start + batch_size]
        neg_len = max(doc_lengths[hard_negatives[i]] for i in idx) if hard_negatives is not None else 0
        yield (on_device[start:start + batch_size], max(query_lengths[i] for i in idx),
               max(doc_lengths[i] for i in idx), neg_len)


def mnrl_step(model, query_ids: torch.Tensor, doc_ids: torch.Tensor, scale: float,
              hard_negatives: torch.Tensor | None = None, symmetric: bool = False):
    """The training step: batch (indices, query_len, doc_len, negative_len) → loss.

    query_ids (N, Lq) and doc_ids (N, Ld) are padded ids on the model's device;
    the batch's indices (B,) must be on that device too (`length_batches(device=...)`):
    a host index batch would be copied to the device in every step.
    hard_negatives (N,) the index of each query's hard-negative document, or None;
    symmetric: the loss in both directions (see multiple_negatives_ranking_loss).
    """
    def step(batch):
        idx, lq, ld, ln = batch
        q = model(query_ids[idx, :lq])
        d = model(doc_ids[idx, :ld])
        h = model(doc_ids[hard_negatives[idx], :ln]) if hard_negatives is not None else None
        return multiple_negatives_ranking_loss(q, d, h, scale=scale, symmetric=symmetric)
    return step


def train_biencoder(model, tokenizer, queries: list[str], documents: list[str], settings: SentenceSettings, *,
                    hard_negatives: torch.Tensor | None = None, epochs: int | None = None,
                    lr: float | None = None, device=None, evaluate=None, eval_every: int = 1,
                    seed: int = 0, progress: bool = True, desc: str = "bi-encoder") -> History:
    """Train `model` so that query i finds document i among the batch.

    Args:
        model: a BiEncoder (moved to `device`).
        tokenizer: a SubwordTokenizer trained on the training texts.
        queries, documents: the N training pairs (documents already cut to doc_words).
        settings: lengths, batch size, epochs, lr, warm-up, scale (see sentence_settings).
        hard_negatives: (N,) document index per query (from `mine_hard_negatives`), or None.
        epochs, lr: override settings (the short fine-tunes pass finetune_epochs/_lr).
        evaluate: () → {metric: value}, run every `eval_every` epochs (e.g. validation Recall@10).
    Returns the History (loss per step, metrics per epoch).
    """
    if len(queries) != len(documents):
        raise ValueError(f"need one document per query, got {len(queries)} queries and {len(documents)} documents")
    device = torch.device(device or ("cuda" if torch.cuda.is_available() else "cpu"))
    model.to(device)
    query_ids = tokenizer(queries, max_len=settings.query_len).to(device)
    doc_ids = tokenizer(documents, max_len=settings.doc_len).to(device)
    q_len = tokenizer.lengths(queries, settings.query_len)
    d_len = tokenizer.lengths(documents, settings.doc_len)
    negatives = None
    if hard_negatives is not None:
        if hard_negatives.shape != (len(queries),):
            raise ValueError(f"hard_negatives must be ({len(queries)},) document indices, got {tuple(hard_negatives.shape)}")
        negatives = hard_negatives.to(device)
    epochs = epochs or settings.epochs
    lr = lr or settings.lr
    batch_size = min(settings.batch_size, len(queries))
    steps_per_epoch = len(queries) // batch_size
    order = make_generator(seed)                 # seed + $CLAB_SEED
    hard_list = hard_negatives.tolist() if hard_negatives is not None else None
    model.train()
    optimizer = make_optimizer(model.parameters(), "adamw", lr, weight_decay=0.01)
    schedule = make_schedule(optimizer, epochs * steps_per_epoch, max(1, int(settings.warmup * epochs * steps_per_epoch)),
                             "cosine")
    return fit(mnrl_step(model, query_ids, doc_ids, settings.scale, negatives, settings.symmetric), optimizer,
               lambda epoch: length_batches(q_len, d_len, batch_size, order, hard_list, device), epochs,
               schedule=schedule, steps_per_epoch=steps_per_epoch, device=device, amp=settings.amp,
               evaluate=evaluate, eval_every=eval_every, log_every=settings.log_every,
               progress=progress, desc=desc)
