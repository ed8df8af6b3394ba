"""Notebook 09's fine-tuned and from-scratch encoders over three seeds: the effects and their spread.

The notebook trains each model once; a difference between two single runs is only an
effect when it exceeds what another seed moves it by. This runs notebook 09's recipes
with the seed offset CLAB_SEED = 0, 1, 2 (what `make execute NB=... SEED=s` would run):

- the pretrained all-MiniLM-L6-v2 zero-shot (no seed: one row);
- its fine-tune in the quick profile (a linear adapter on frozen embeddings, MNRL, 1,200
  training pairs, with BM25-mined hard negatives, false negatives excluded) and the same
  without hard negatives, each scored on validation, test and the standard library's test
  modules (the domain-shift split);
- the choices behind `finetune_settings`, on validation only: the learning rate, and how
  many training pairs (the quick profile's budget allows 1,200 of the 2,466);
- the from-scratch bi-encoder (`sentence_settings`), as the notebook trains it.

It writes benchmarks/results/sentence_finetune.json, which the notebook loads to print the
spread beside its own run. Nothing here reads the test split to choose anything.

    python benchmarks/sentence_finetune.py      # 57 minutes on 2 busy shared cores (the file records its seconds)
"""
from __future__ import annotations

import copy
import json
import os
import platform
import time
from pathlib import Path

import torch

from contrastive_lab.device import seed_everything
from contrastive_lab.evaluate import retrieval_metrics
from contrastive_lab.methods.sentence_bert import mine_hard_negatives, sentence_settings, train_biencoder
from contrastive_lab.methods.sentence_finetune import LinearAdapter, Validation, finetune_settings, train_adapter
from contrastive_lab.profiles import QUICK
from contrastive_lab.text.biencoder import BiEncoder, encode_texts
from contrastive_lab.text.corpus import (build_docstring_corpus, build_training_extra, relevance_matrix,
                                         split_by_module, truncate_words)
from contrastive_lab.text.lexical import BM25Index
from contrastive_lab.text.pretrained import REVISION, encode, load_sentence_encoder
from contrastive_lab.text.subword import SubwordTokenizer

SEEDS = (0, 1, 2)
LRS = (1e-4, 3e-4, 1e-3, 3e-3)
OUT = Path(__file__).resolve().parent / "results" / "sentence_finetune.json"
B_GRID = (0.0, 0.25, 0.5, 0.75, 1.0)


def metrics(scores, relevance) -> dict:
    return {k: round(v, 4) for k, v in retrieval_metrics(scores, relevance).items()}


def main() -> None:
    start = time.perf_counter()
    settings, ft = sentence_settings(QUICK), finetune_settings(QUICK)
    corpus = build_docstring_corpus()
    main_part = corpus.where(lambda e: e.library != "stdlib")
    splits = split_by_module(main_part, {"val": 0.15, "test": 0.2}, seed=0)
    shift = split_by_module(corpus.where(lambda e: e.library == "stdlib"), {"val": 0.2, "test": 0.3}, seed=0)
    train, val, test, std_test = splits["train"], splits["val"], splits["test"], shift["test"]

    def documents(part):
        return [truncate_words(d, settings.doc_words) for d in part.documents]

    rel = {"val": relevance_matrix(val), "test": relevance_matrix(test), "stdlib test": relevance_matrix(std_test)}
    b_ndcg = {b: retrieval_metrics(BM25Index(documents(val), b=b).scores(val.queries), rel["val"])["nDCG@10"]
              for b in B_GRID}
    bm25_b = max(b_ndcg, key=b_ndcg.get)

    encoder = load_sentence_encoder(device="cpu")
    parts = {"val": val, "test": test, "stdlib test": std_test}
    zs = {name: (encode(encoder, p.queries), encode(encoder, documents(p))) for name, p in parts.items()}
    order = torch.randperm(len(train), generator=torch.Generator().manual_seed(0)).tolist()
    every_q, every_d = encode(encoder, [train[i].query for i in order]), encode(encoder, documents(train.subset(order)))
    print(f"embedded in {time.perf_counter() - start:.0f} s", flush=True)

    def hard_negatives(n):
        subset = train.subset(order[:n])
        scores = BM25Index(documents(subset), b=bm25_b).scores(subset.queries)
        return mine_hard_negatives(scores, exclude=relevance_matrix(subset) > 0)

    validation = Validation(val.queries, documents(val), rel["val"], *zs["val"])
    result = {
        "what": "notebook 09, quick profile: all-MiniLM-L6-v2 zero-shot, its fine-tune, and the from-scratch "
                "bi-encoder, under seed offsets (CLAB_SEED) 0, 1, 2; nDCG@10, MRR@10, R@1, R@10",
        "versions": {**corpus.versions, "platform": platform.machine(), "torch threads": torch.get_num_threads()},
        "corpus fingerprint": corpus.fingerprint(), "model revision": REVISION, "bm25 b": bm25_b,
        "finetune settings": {k: getattr(ft, k) for k in ("mode", "epochs", "lr", "batch_size", "pairs")},
        "seeds": list(SEEDS),
        "zero-shot": {name: metrics(q @ d.T, rel[name]) for name, (q, d) in zs.items()},
        "bm25": {name: metrics(BM25Index(documents(p), b=bm25_b).scores(p.queries), rel[name])
                 for name, p in parts.items()},
        "fine-tuned": {}, "fine-tuned without hard negatives": {}, "lr on validation": {},
        "pairs on validation": {}, "from scratch": {},
    }

    def adapter_run(n, lr, hard, seed):
        os.environ["CLAB_SEED"] = str(seed)
        adapter = LinearAdapter(384)
        history = train_adapter(adapter, every_q[:n], every_d[:n], ft.replace(lr=lr),
                                hard_negatives=hard_negatives(n) if hard else None, validation=validation,
                                progress=False, device="cpu")
        with torch.no_grad():
            scored = {name: metrics(adapter(q) @ adapter(d).T, rel[name]) for name, (q, d) in zs.items()}
        return scored, int(history.metrics["kept epoch"][0][1]), [round(v, 4) for _, v in history.metrics["val nDCG@10"]]

    for seed in SEEDS:
        for key, hard in (("fine-tuned", True), ("fine-tuned without hard negatives", False)):
            scored, kept, curve = adapter_run(ft.pairs, ft.lr, hard, seed)
            result[key][str(seed)] = {**scored, "kept epoch": kept, "val nDCG@10 by epoch": curve}
        for lr in LRS:
            result["lr on validation"].setdefault(str(lr), {})[str(seed)] = adapter_run(ft.pairs, lr, True, seed)[0]["val"]["nDCG@10"]
        for n in (600, ft.pairs, len(train)):
            result["pairs on validation"].setdefault(str(n), {})[str(seed)] = adapter_run(n, ft.lr, True, seed)[0]["val"]["nDCG@10"]
        print(f"seed {seed}: fine-tuned test {result['fine-tuned'][str(seed)]['test']}", flush=True)

    # the from-scratch bi-encoder, as notebook 09 trains it
    extra = build_training_extra()
    tok = SubwordTokenizer.train(train.queries + documents(train) + [e.short_name for e in train], settings.vocab_size)

    def pairs(part):
        return part.queries + [e.short_name for e in part], documents(part) * 2

    def dense(model, part):
        return encode_texts(model, tok, part.queries, settings.query_len) @ encode_texts(
            model, tok, documents(part), settings.doc_len).T

    q1, d1 = pairs(train)
    q2, d2 = pairs(extra)
    for seed in SEEDS:
        os.environ["CLAB_SEED"] = str(seed)
        seed_everything(0)
        model = BiEncoder(tok.vocab_size, settings.width, settings.layers, settings.heads, settings.doc_len,
                          settings.dropout)
        best = {"value": -1.0}

        def validate_scratch(m=model):
            value = retrieval_metrics(dense(m, val), rel["val"])["nDCG@10"]
            if value > best["value"]:
                best.update(value=value, state=copy.deepcopy(m.state_dict()))
            return {"val nDCG@10": value}
        train_biencoder(model, tok, q1 + q2, d1 + d2, settings, device="cpu", evaluate=validate_scratch, progress=False)
        model.load_state_dict(best["state"])
        result["from scratch"][str(seed)] = {name: metrics(dense(model, parts[name]), rel[name]) for name in parts}
        print(f"seed {seed}: from scratch test {result['from scratch'][str(seed)]['test']}", flush=True)
    os.environ.pop("CLAB_SEED", None)
    result["seconds"] = round(time.perf_counter() - start)
    OUT.parent.mkdir(exist_ok=True)
    OUT.write_text(json.dumps(result, indent=1) + "\n")
    print(f"wrote {OUT} in {result['seconds']} s")


if __name__ == "__main__":
    main()
