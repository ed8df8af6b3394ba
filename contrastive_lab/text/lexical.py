"""Lexical retrieval: scores from the words a query and a document share.

    bm25 = BM25Index(documents)              # bm25s, Lucene's BM25 (k1 = 1.5, b = 0.75)
    scores = bm25.scores(queries)            # (Q, D) float32 tensor
    scores = tfidf_scores(queries, documents)   # scikit-learn TF-IDF, cosine

Both read text through `identifier_words`, the same rule the subword tokenizer
uses, so `nan_to_num` is one word for BM25 and also "nan", "to", "num".
Neither needs training: they are the baselines a learned encoder must beat,
and they are hard to beat on rare exact words (function names, constants).
"""
from __future__ import annotations

import numpy as np
import torch

from .identifiers import identifier_words


class BM25Index:
    """BM25 over a fixed list of documents, from the `bm25s` library.

    score(q, d) = Σ_{w ∈ q} idf(w) · tf(w, d)(k1 + 1) / (tf(w, d) + k1 (1 − b + b |d| / avgdl))

    Args:
        documents: the D texts to search.
        k1: how fast repeated words saturate (1.2–2 usual).
        b: how much long documents are penalised (0 = not at all, 1 = fully).
        words: the pre-tokenisation rule (default: identifier_words).
    """

    def __init__(self, documents: list[str], k1: float = 1.5, b: float = 0.75, words=identifier_words):
        import bm25s

        if not documents:
            raise ValueError("BM25Index needs at least one document")
        if k1 < 0 or not 0 <= b <= 1:
            raise ValueError(f"need k1 >= 0 and 0 <= b <= 1, got k1={k1}, b={b}")
        self.words = words
        self.n_documents = len(documents)
        self.retriever = bm25s.BM25(k1=k1, b=b, method="lucene")
        self.retriever.index([words(d) or ["<empty>"] for d in documents], show_progress=False)

    def scores(self, queries: list[str] | str) -> torch.Tensor:
        """BM25 score of every document for every query: (Q, D) float32, 0 for no shared word."""
        if isinstance(queries, str):
            queries = [queries]
        out = np.zeros((len(queries), self.n_documents), dtype=np.float32)
        for i, q in enumerate(queries):
            ids = self.retriever.get_tokens_ids(self.words(q))     # words never indexed are dropped
            if ids:
                out[i] = self.retriever.get_scores_from_ids(ids)
        return torch.from_numpy(out)


def bm25_scores(queries: list[str], documents: list[str], k1: float = 1.5, b: float = 0.75) -> torch.Tensor:
    """(Q, D) BM25 scores of `documents` for `queries` (see BM25Index)."""
    return BM25Index(documents, k1, b).scores(queries)


def tfidf_scores(queries: list[str], documents: list[str], sublinear_tf: bool = True) -> torch.Tensor:
    """(Q, D) cosine similarity of TF-IDF vectors (scikit-learn), idf fitted on `documents`.

    sublinear_tf replaces a word count c by 1 + log c, so a word repeated ten
    times does not outweigh ten different matching words.
    """
    from sklearn.feature_extraction.text import TfidfVectorizer

    if not documents or not queries:
        raise ValueError("tfidf_scores needs at least one query and one document")
    vectorizer = TfidfVectorizer(analyzer=identifier_words, sublinear_tf=sublinear_tf)
    d = vectorizer.fit_transform(documents)
    q = vectorizer.transform(queries)
    return torch.from_numpy((q @ d.T).toarray().astype(np.float32))
