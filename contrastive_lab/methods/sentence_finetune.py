"""Contrastive fine-tuning of a pretrained sentence encoder on in-domain (query, document) pairs.

The loss is the one all-MiniLM-L6-v2 was pretrained with, MultipleNegativesRankingLoss
(`losses.multiple_negatives_ranking_loss`: InfoNCE over the batch's documents, plus one
mined hard negative per query), now on pairs of the new domain. What trains depends on
the compute the profile has:

    "adapter"  quick profile, CPU: a linear map on the frozen encoder's embeddings,
               z ↦ normalize(W z + b), with W starting at the identity, so that before the first
               step the tuned model IS the zero-shot model. The training texts are embedded
               once; a step then costs microseconds. (The same trick adapts an embedding model
               you can only call, not train.)
    "full"     full profile, GPU: every weight of the encoder, at a small learning rate.

Both keep the epoch with the best validation nDCG@10, epoch 0 (the zero-shot model)
included, so a fine-tune that does not help on validation is not kept.

    settings = finetune_settings(profile)
    tuned = finetune_or_load(encoder, queries, documents, settings, key=..., validation=val,
                             hard_negatives=neg, embed_pairs=lambda: (q_emb, d_emb))
    tuned.model.encode(texts)                # a SentenceTransformer in both modes
    tuned.embed(texts, frozen=zero_shot)     # the same vectors; in adapter mode without re-encoding
"""
from __future__ import annotations

import copy
from dataclasses import dataclass, replace

import torch
import torch.nn as nn
import torch.nn.functional as F

from ..evaluate import ndcg_at_k
from ..losses import multiple_negatives_ranking_loss
from ..model_cache import train_or_load
from ..text.pretrained import REVISION, encode
from ..train import History, fit, make_optimizer, make_schedule
from .sentence_bert import length_batches

MODES = ("adapter", "full")
METRIC = "val nDCG@10"


@dataclass(frozen=True)
class FinetuneSettings:
    """How notebook 09 fine-tunes the pretrained encoder; derived from a profile by `finetune_settings`.

    mode: "adapter" (a linear map on frozen embeddings) or "full" (every layer).
    pairs: train on this many of the training pairs (a fixed random subset), None = all of
        them; the quick profile's budget for embedding the training texts.
    epochs, lr, batch_size, warmup (fraction of the steps), weight_decay: the AdamW run
        (linear warm-up, then cosine decay).
    scale: MNRL's logit scale, 1 / temperature (20, as the encoder was pretrained).
    max_seq_length: tokens per text in full mode.
    amp, log_every: the profile's (bf16 autocast on CUDA; read the loss every this many steps).
    """

    mode: str
    epochs: int
    lr: float
    batch_size: int
    pairs: int | None = None
    warmup: float = 0.1
    weight_decay: float = 0.01
    scale: float = 20.0
    max_seq_length: int = 256
    amp: bool = False
    log_every: int = 25

    def __post_init__(self):
        if self.mode not in MODES:
            raise ValueError(f"mode must be one of {MODES}, got {self.mode!r}")

    def replace(self, **changes) -> "FinetuneSettings":
        return replace(self, **changes)


def finetune_settings(profile) -> FinetuneSettings:
    """quick (CPU): an adapter on 1,200 training pairs (what the budget allows to embed), 3 epochs
    at lr 3e-4, batch 64; the learning rate had the best mean validation nDCG@10 of 1e-4, 3e-4,
    1e-3 and 3e-3 over three seeds (`benchmarks/sentence_finetune.py` records the runs).
    full (GPU): every layer on every training pair, 2 epochs at lr 2e-5 (the usual range for
    fine-tuning a BERT), batch 64, 256 tokens."""
    if profile.backbone == "small_cnn":
        return FinetuneSettings(mode="adapter", epochs=3, lr=3e-4, batch_size=64, pairs=1200, amp=profile.amp,
                                log_every=profile.log_every)
    return FinetuneSettings(mode="full", epochs=2, lr=2e-5, batch_size=64, amp=profile.amp,
                            log_every=profile.log_every)


class LinearAdapter(nn.Module):
    """(N, D) frozen embeddings → (N, D) unit rows, normalize(W z + b); W = identity, b = 0 at start."""

    def __init__(self, dim: int):
        super().__init__()
        self.linear = nn.Linear(dim, dim)
        nn.init.eye_(self.linear.weight)
        nn.init.zeros_(self.linear.bias)

    def forward(self, emb: torch.Tensor) -> torch.Tensor:
        return F.normalize(self.linear(emb), dim=-1)


def attach_adapter(encoder, adapter: LinearAdapter):
    """A SentenceTransformer that runs `encoder`, then the adapter, then normalises: the tuned model
    as one object (`.encode`, `.save`) — it shares the encoder's modules."""
    from sentence_transformers import SentenceTransformer
    from sentence_transformers.base.modules.dense import Dense
    from sentence_transformers.base.modules.normalize import Normalize

    dim = adapter.linear.in_features
    dense = Dense(dim, dim, activation_function=nn.Identity(),
                  init_weight=adapter.linear.weight.detach().clone(), init_bias=adapter.linear.bias.detach().clone())
    return SentenceTransformer(modules=[*encoder, dense, Normalize()], device=str(encoder.device)).eval()


@dataclass
class Validation:
    """Held-out pairs a fine-tune is chosen on.

    queries, documents: the texts (Q and D of them); relevance: (Q, D) graded relevance;
    query_emb, doc_emb: the frozen encoder's (Q, 384) and (D, 384) embeddings of them
    (adapter mode reads only these; full mode encodes the texts with the model in training).
    """

    queries: list[str]
    documents: list[str]
    relevance: torch.Tensor
    query_emb: torch.Tensor
    doc_emb: torch.Tensor
    k: int = 10

    def ndcg(self, model) -> float:
        """nDCG@k of `model`: a LinearAdapter (on the frozen embeddings) or a SentenceTransformer."""
        if isinstance(model, LinearAdapter):
            device = model.linear.weight.device
            with torch.no_grad():
                q, d = model(self.query_emb.to(device)).cpu(), model(self.doc_emb.to(device)).cpu()
        else:
            q, d = encode(model, self.queries), encode(model, self.documents)
        return ndcg_at_k(q @ d.T, self.relevance, self.k)


@dataclass
class FineTuned:
    """The result: `model` (a SentenceTransformer), the run's `history` (loss per step, validation
    nDCG@10 per epoch from epoch 0 = zero-shot), the `adapter` (adapter mode; else None) and
    `kept_epoch`, the epoch chosen on validation (0: the zero-shot model was kept)."""

    model: object
    history: History
    adapter: LinearAdapter | None
    kept_epoch: int

    def embed(self, texts: list[str], frozen: torch.Tensor | None = None) -> torch.Tensor:
        """(N, D) unit rows of the tuned model. In adapter mode, given the frozen encoder's
        embeddings of the same texts, only the adapter runs (equal to model.encode(texts))."""
        if self.adapter is not None and frozen is not None:
            with torch.no_grad():
                return self.adapter.cpu()(frozen.float()).cpu()
        return encode(self.model, texts)


def _keep_best(model: nn.Module, validation: Validation | None, history: History):
    """An `evaluate` for fit that logs validation nDCG@10 and remembers the best epoch's weights
    (epoch 0, before training, included)."""
    if validation is None:
        return None, {"epoch": None, "state": None}
    best = {"epoch": 0, "value": validation.ndcg(model), "state": copy.deepcopy(model.state_dict())}
    history.log(METRIC, 0, best["value"])
    epoch = {"n": 0}

    def evaluate():
        epoch["n"] += 1
        value = validation.ndcg(model)
        if value > best["value"]:
            best.update(epoch=epoch["n"], value=value, state=copy.deepcopy(model.state_dict()))
        return {METRIC: value}
    return evaluate, best


def _adamw_cosine(params, settings: FinetuneSettings, steps_per_epoch: int):
    """AdamW at settings.lr with its weight decay, and a cosine decay after a linear warm-up over
    settings.warmup of the run."""
    optimizer = make_optimizer(params, "adamw", settings.lr, settings.weight_decay)
    total = settings.epochs * steps_per_epoch
    return optimizer, make_schedule(optimizer, total, max(1, int(settings.warmup * total)), "cosine")


def _with_epoch_zero(history: History, before: History) -> History:
    """`history` with the metrics logged before training (epoch 0, the starting model) put first."""
    for name, entries in before.metrics.items():
        history.metrics[name] = list(entries) + history.metrics.get(name, [])
    return history


def _finish(model: nn.Module, best: dict, history: History) -> None:
    if best["state"] is not None:
        model.load_state_dict(best["state"])
        history.log("kept epoch", 0, best["epoch"])


def adapter_step(adapter: LinearAdapter, query_emb: torch.Tensor, doc_emb: torch.Tensor, scale: float,
                 hard_negatives: torch.Tensor | None = None):
    """The adapter's training step: a batch of pair indices (B,) → MNRL loss.

    query_emb, doc_emb: (N, D) frozen embeddings on the adapter's device; hard_negatives: (N,)
    index into doc_emb of each query's hard negative, or None. Reads no tensor value on the host.
    """
    def step(idx):
        h = adapter(doc_emb[hard_negatives[idx]]) if hard_negatives is not None else None
        return multiple_negatives_ranking_loss(adapter(query_emb[idx]), adapter(doc_emb[idx]), h, scale=scale)
    return step


def mean_pooled(bert, input_ids: torch.Tensor, attention_mask: torch.Tensor,
                token_type_ids: torch.Tensor | None = None) -> torch.Tensor:
    """What a mean-pooling Sentence-BERT computes: (B, L) token ids and 0/1 mask → (B, H) unit rows.

    Token states from the Transformer, averaged over the real tokens (the mask), L2-normalised:
    all-MiniLM-L6-v2's Pooling and Normalize modules. The mask goes in ready-made in 4D
    (True where a key token is real), so that transformers does not read it on the host to
    check for padding (which it does for a 2D mask, once per forward).
    """
    states = bert(input_ids=input_ids, attention_mask=attention_mask[:, None, None, :].bool(),
                  token_type_ids=token_type_ids).last_hidden_state                # (B, L, H)
    mask = attention_mask.unsqueeze(-1).to(states.dtype)
    return F.normalize((states * mask).sum(1) / mask.sum(1).clamp_min(1), dim=-1)


def encoder_step(encoder, query_features: dict, doc_features: dict, scale: float,
                 hard_negatives: torch.Tensor | None = None):
    """The full fine-tune's step: batch (indices, query_len, doc_len, negative_len) → MNRL loss.

    query_features, doc_features: {"input_ids", "attention_mask", ("token_type_ids")} padded
    (N, L) tensors on the encoder's device; each batch is cut to the lengths the batch
    iterator worked out on the host. The encoder must be a mean-pooling, normalising
    Sentence-BERT (as all-MiniLM-L6-v2). Reads no tensor value on the host.
    """
    bert = encoder[0].auto_model

    def embed(features, rows, length):
        cut = {k: v[rows, :length] for k, v in features.items()}
        return mean_pooled(bert, cut["input_ids"], cut["attention_mask"], cut.get("token_type_ids"))

    def step(batch):
        idx, lq, ld, ln = batch
        idx = idx.to(query_features["input_ids"].device)
        h = embed(doc_features, hard_negatives[idx], ln) if hard_negatives is not None else None
        return multiple_negatives_ranking_loss(embed(query_features, idx, lq), embed(doc_features, idx, ld), h,
                                               scale=scale)
    return step


def train_adapter(adapter: LinearAdapter, query_emb: torch.Tensor, doc_emb: torch.Tensor,
                  settings: FinetuneSettings, *, hard_negatives: torch.Tensor | None = None,
                  validation: Validation | None = None, seed: int = 0, device=None,
                  progress: bool = True, desc: str = "adapter") -> History:
    """Train `adapter` with MNRL so that adapter(query_emb[i]) finds adapter(doc_emb[i]) in its batch.

    Args:
        query_emb, doc_emb: (N, D) frozen embeddings of the N training pairs.
        hard_negatives: (N,) index into doc_emb of each query's hard negative, or None.
        validation: keeps the epoch with the best validation nDCG@10 (epoch 0 included).
        seed: the batch order's seed (plus $CLAB_SEED).
    Returns the History; the adapter is left with the kept epoch's weights.
    """
    from ..device import make_generator

    n = len(query_emb)
    if doc_emb.shape != query_emb.shape:
        raise ValueError(f"need one document per query: query_emb {tuple(query_emb.shape)}, "
                         f"doc_emb {tuple(doc_emb.shape)}")
    device = torch.device(device or ("cuda" if torch.cuda.is_available() else "cpu"))
    adapter.to(device)
    q, d = query_emb.float().to(device), doc_emb.float().to(device)
    neg = None
    if hard_negatives is not None:
        if hard_negatives.shape != (n,):
            raise ValueError(f"hard_negatives must be ({n},) document indices, got {tuple(hard_negatives.shape)}")
        neg = hard_negatives.to(device)
    batch_size = min(settings.batch_size, n)
    steps = n // batch_size
    order = make_generator(seed)

    def batches(epoch):
        perm = torch.randperm(n, generator=order)
        return [perm[s:s + batch_size].to(device) for s in range(0, steps * batch_size, batch_size)]

    before = History()
    evaluate, best = _keep_best(adapter, validation, before)
    optimizer, schedule = _adamw_cosine(adapter.parameters(), settings, steps)
    history = fit(adapter_step(adapter, q, d, settings.scale, neg), optimizer, batches, settings.epochs,
                  schedule=schedule, steps_per_epoch=steps, device=device, amp=False, evaluate=evaluate,
                  log_every=settings.log_every, progress=progress, desc=desc)
    _finish(adapter, best, _with_epoch_zero(history, before))
    return history


def finetune_every_layer(encoder, queries: list[str], documents: list[str], settings: FinetuneSettings, *,
                         hard_negatives: torch.Tensor | None = None, validation: Validation | None = None,
                         seed: int = 0, device=None, progress: bool = True, desc: str = "fine-tune") -> History:
    """Train every weight of a SentenceTransformer with MNRL on the N (query, document) pairs.

    The texts are tokenised once (padded to the longest, at most settings.max_seq_length
    tokens); each batch is cut to its longest text, lengths worked out on the host, so
    the step never reads a tensor value. Dropout is on during training.
    Returns the History; the encoder is left with the kept epoch's weights.
    """
    from ..device import make_generator

    if len(queries) != len(documents):
        raise ValueError(f"need one document per query, got {len(queries)} queries and {len(documents)} documents")
    device = torch.device(device or ("cuda" if torch.cuda.is_available() else "cpu"))
    encoder.to(device)
    encoder.max_seq_length = settings.max_seq_length
    q_feat, d_feat = encoder.preprocess(queries), encoder.preprocess(documents)
    keys = [k for k in ("input_ids", "attention_mask", "token_type_ids") if k in q_feat]
    q_feat = {k: q_feat[k].to(device) for k in keys}
    d_feat = {k: d_feat[k].to(device) for k in keys}
    q_len = q_feat["attention_mask"].sum(1).tolist()          # once, before training
    d_len = d_feat["attention_mask"].sum(1).tolist()
    neg = hard_negatives.to(device) if hard_negatives is not None else None
    hard_list = hard_negatives.tolist() if hard_negatives is not None else None
    batch_size = min(settings.batch_size, len(queries))
    steps = len(queries) // batch_size
    order = make_generator(seed)

    before = History()
    evaluate, best = _keep_best(encoder, validation, before)
    optimizer, schedule = _adamw_cosine(encoder.parameters(), settings, steps)
    encoder.train()
    try:
        history = fit(encoder_step(encoder, q_feat, d_feat, settings.scale, neg), optimizer,
                      lambda epoch: length_batches(q_len, d_len, batch_size, order, hard_list), settings.epochs,
                      schedule=schedule, steps_per_epoch=steps, device=device, amp=settings.amp,
                      evaluate=_in_eval_mode(encoder, evaluate), log_every=settings.log_every, progress=progress,
                      desc=desc)
    finally:
        encoder.eval()
    _finish(encoder, best, _with_epoch_zero(history, before))
    return history


def _in_eval_mode(model: nn.Module, evaluate):
    if evaluate is None:
        return None

    def run():
        model.eval()
        try:
            return evaluate()
        finally:
            model.train()
    return run


def finetune_or_load(encoder, queries: list[str], documents: list[str], settings: FinetuneSettings, *, key: dict,
                     embed_pairs=None, hard_negatives: torch.Tensor | None = None,
                     validation: Validation | None = None, seed: int = 0, device=None,
                     progress: bool = True) -> FineTuned:
    """Fine-tune the pretrained `encoder` on the pairs (train_or_load: trained once, then loaded).

    Args:
        encoder: the pretrained SentenceTransformer (left unchanged: full mode trains a copy).
        queries, documents: the N training pairs (documents already cut as the evaluation cuts them).
        settings: see finetune_settings.
        key: everything else that defines the run, as plain data (the corpus fingerprint, the
            split, how documents were cut, how hard negatives were mined, the number of pairs).
        embed_pairs: () → (query_emb, doc_emb), the frozen embeddings of the pairs (adapter mode;
            called only when the adapter is trained, not when it is loaded).
        hard_negatives: (N,) document index of each query's hard negative, or None.
        validation: keeps the best epoch by validation nDCG@10.
    """
    dim = encoder.get_embedding_dimension()
    run = {"revision": REVISION, "settings": settings, "key": key, "pairs": len(queries), "seed": seed,
           "hard_negatives": hard_negatives is not None, "validation": validation is not None}
    if settings.mode == "adapter":
        if embed_pairs is None:
            raise ValueError("adapter mode needs embed_pairs: () → (query_emb, doc_emb) of the training pairs")

        def train(adapter):
            q, d = embed_pairs()
            return train_adapter(adapter, q, d, settings, hard_negatives=hard_negatives, validation=validation,
                                 seed=seed, device=device, progress=progress)
        adapter, history = train_or_load("minilm-adapter", run, lambda: LinearAdapter(dim), train, device="cpu")
        adapter.cpu().eval()
        return FineTuned(attach_adapter(encoder, adapter), history, adapter, _kept(history))

    def train_full(model):
        return finetune_every_layer(model, queries, documents, settings, hard_negatives=hard_negatives,
                                    validation=validation, seed=seed, device=device, progress=progress)
    model, history = train_or_load("minilm-finetuned", run, lambda: copy.deepcopy(encoder), train_full, device=device)
    return FineTuned(model.eval(), history, None, _kept(history))


def _kept(history: History) -> int:
    """The epoch kept: chosen on validation, else the last one."""
    return int(history.metrics["kept epoch"][0][1]) if "kept epoch" in history.metrics else len(history.epoch_loss)
