"""A vector index over embeddings: faiss behind a small, checked interface.

faiss is the library most production vector search is built on. This module adds
what a course (and a service) needs around it: the metric fixed to the one
training used, a refusal to index vectors that are not unit length, the model
version stored with the index, and the measurements a practitioner reads to
choose an index (recall against exact search, latency, throughput, build time, memory).

    index = build_index(vectors, "HNSW32", model_version="simclr-v1")   # vectors (N, D), unit rows
    index.set(efSearch=64)                                              # a search-time knob
    scores, ids = index.search(queries, k=10)                           # (Q, k) each, best first
    save_index(index, "catalogue.index.pt")
    index = load_index("catalogue.index.pt", model_version="simclr-v1") # another version raises

Indexes are named by faiss factory strings, so a sweep over index kinds is data:

    "Flat"          exact search: every stored vector is scored (the ground truth)
    "HNSW32"        a graph with M = 32 links per vector; knob efSearch (candidates kept while walking)
    "IVF256,Flat"   256 k-means cells; knob nprobe (how many cells a query visits)
    "IVF256,PQ16"   the same cells, each vector compressed to 16 bytes (product quantization)

Metric: "inner_product" on L2-normalised vectors is the cosine similarity that
contrastive losses train; "l2" on unit vectors ranks the same way (‖a − b‖² = 2 − 2 cos).
Arrays may be numpy or torch; results are numpy (scores float32, ids int64, -1 = no result).
"""
from __future__ import annotations

import os
import time
from dataclasses import asdict, dataclass, field

import faiss
import numpy as np
import torch

from .atomic import save_atomically

FORMAT = "contrastive-lab/index"
METRICS = {"inner_product": faiss.METRIC_INNER_PRODUCT, "l2": faiss.METRIC_L2}
UNIT_TOLERANCE = 1e-3


class IndexVersionError(ValueError):
    """The index was built from another model version's embeddings than the one asked for."""


@dataclass(frozen=True)
class IndexMeta:
    """What an index holds. Saved with it and checked on load.

    factory: the faiss factory string ("Flat", "HNSW32", "IVF256,Flat" …).
    dim: vector length D. metric: "inner_product" or "l2".
    normalized: the stored vectors have unit length (queries are checked to have it too).
    model_version: the version tag of the model that made the vectors.
    count: number of stored vectors.
    """

    factory: str
    dim: int
    metric: str
    normalized: bool
    model_version: str
    count: int = 0


def _as_matrix(x, name: str, dim: int | None = None) -> np.ndarray:
    """x (N, D) numpy or torch → C-contiguous float32 numpy, with clear errors."""
    if isinstance(x, torch.Tensor):
        x = x.detach().cpu().numpy()
    if not isinstance(x, np.ndarray):
        raise TypeError(f"{name} must be a numpy array or torch tensor (N, D), got {type(x).__name__}")
    if x.ndim != 2 or x.shape[0] == 0:
        raise ValueError(f"expected {name} of shape (N, D) with N ≥ 1, got {x.shape}")
    if dim is not None and x.shape[1] != dim:
        raise ValueError(f"{name} has {x.shape[1]} dimensions but the index holds {dim}-dimensional vectors; "
                         "embed with the model the index was built from")
    x = np.ascontiguousarray(x, dtype=np.float32)
    if not np.isfinite(x).all():
        raise ValueError(f"{name} contains NaN or Inf")
    return x


def _check_unit(x: np.ndarray, name: str) -> None:
    norms = np.linalg.norm(x, axis=1)
    worst = int(np.abs(norms - 1).argmax())
    if abs(norms[worst] - 1) > UNIT_TOLERANCE:
        raise ValueError(
            f"{name} must have unit-length rows for an index of normalised vectors; row {worst} has "
            f"length {norms[worst]:.3f}. Normalise first (torch.nn.functional.normalize(x, dim=1)): an "
            "inner product of unnormalised vectors ranks by length × cosine, not by the cosine training "
            "used. (To index raw vectors on purpose, build with normalized=False.)")


@dataclass
class VectorIndex:
    """A faiss index with its metadata. Build with `build_index`, load with `load_index`.

    faiss: the faiss index object (for anything this wrapper does not cover).
    meta: IndexMeta. params: search parameters set so far. build_seconds: train + add time.
    """

    faiss: faiss.Index
    meta: IndexMeta
    params: dict = field(default_factory=dict)
    build_seconds: float = 0.0

    def __repr__(self) -> str:
        m = self.meta
        knobs = "".join(f", {k}={v}" for k, v in self.params.items())
        return (f"VectorIndex({m.factory!r}, {m.count} × {m.dim}, {m.metric}"
                f"{', unit vectors' if m.normalized else ', UNNORMALISED'}, model {m.model_version!r}{knobs})")

    def _queries(self, queries) -> np.ndarray:
        q = _as_matrix(queries, "queries", self.meta.dim)
        if self.meta.normalized:
            _check_unit(q, "queries")
        return q

    def add(self, vectors) -> None:
        """Add vectors (N, D); their ids continue from the current count."""
        x = _as_matrix(vectors, "vectors", self.meta.dim)
        if self.meta.normalized:
            _check_unit(x, "vectors")
        self.faiss.add(x)
        self.meta = IndexMeta(**{**asdict(self.meta), "count": int(self.faiss.ntotal)})

    def set(self, **params) -> "VectorIndex":
        """Set search-time knobs by faiss name: efSearch (HNSW), nprobe (IVF). Returns self."""
        space = faiss.ParameterSpace()
        for name, value in params.items():
            try:
                space.set_index_parameter(self.faiss, name, value)
            except RuntimeError as exc:
                raise ValueError(f"{self.meta.factory!r} has no search parameter {name!r} "
                                 "(HNSW: efSearch; IVF: nprobe)") from exc
            self.params[name] = value
        return self

    def search(self, queries, k: int = 10) -> tuple[np.ndarray, np.ndarray]:
        """The k best stored vectors for each query (Q, D): (scores (Q, k), ids (Q, k)), best first.

        Scores are inner products (cosines on unit vectors) or squared L2 distances.
        """
        if not 1 <= k <= max(self.meta.count, 1):
            raise ValueError(f"k must be between 1 and the number of stored vectors ({self.meta.count}), got {k}")
        return self.faiss.search(self._queries(queries), k)

    def range_search(self, queries, threshold: float) -> list[tuple[np.ndarray, np.ndarray]]:
        """Every stored vector scoring above `threshold` for each query (inner product > threshold,
        or squared L2 distance < threshold). Returns one (ids, scores) pair per query, best first."""
        lims, scores, ids = self.faiss.range_search(self._queries(queries), float(threshold))
        out = []
        for i in range(len(lims) - 1):
            s, j = scores[lims[i]:lims[i + 1]], ids[lims[i]:lims[i + 1]]
            order = np.argsort(-s if self.meta.metric == "inner_product" else s, kind="stable")
            out.append((j[order], s[order]))
        return out


def build_index(vectors, factory: str = "Flat", *, model_version: str, metric: str = "inner_product",
                normalized: bool = True, train_size: int | None = None, ef_construction: int | None = None,
                seed: int = 0) -> VectorIndex:
    """Build a faiss index over vectors (N, D) and return it with its metadata.

    Args:
        factory: a faiss factory string ("Flat", "HNSW32", "IVF256,Flat", "IVF256,PQ16" …).
        model_version: the version tag of the model that embedded the vectors (required).
        metric: "inner_product" (cosine on unit vectors; the default) or "l2".
        normalized: True (default) refuses vectors or queries that are not unit length.
        train_size: indexes that must be trained (IVF, PQ) train on this many vectors drawn
            at random (default: all). k-means on a sample is the usual way to keep builds short.
        ef_construction: HNSW only, candidates kept while linking (faiss default 40;
            lower builds faster, with a sparser graph).
    build_seconds on the result is the wall time of training and adding.
    """
    if metric not in METRICS:
        raise ValueError(f"metric must be one of {sorted(METRICS)}, got {metric!r}")
    if not isinstance(model_version, str) or not model_version:
        raise ValueError("model_version must name the model that made the vectors, e.g. 'simclr-v1'")
    x = _as_matrix(vectors, "vectors")
    if normalized:
        _check_unit(x, "vectors")
    try:
        index = faiss.index_factory(x.shape[1], factory, METRICS[metric])
    except RuntimeError as exc:
        raise ValueError(f"faiss does not understand the factory string {factory!r} "
                         "(examples: 'Flat', 'HNSW32', 'IVF256,Flat', 'IVF256,PQ16')") from exc
    if ef_construction is not None:
        inner = faiss.downcast_index(index)
        if not hasattr(inner, "hnsw"):
            raise ValueError(f"ef_construction applies to HNSW indexes, not {factory!r}")
        inner.hnsw.efConstruction = int(ef_construction)
    start = time.perf_counter()
    if not index.is_trained:
        sample = x
        if train_size is not None and train_size < len(x):
            pick = np.random.default_rng(seed).choice(len(x), train_size, replace=False)
            sample = x[np.sort(pick)]
        index.train(sample)
    index.add(x)
    seconds = time.perf_counter() - start
    meta = IndexMeta(factory, int(x.shape[1]), metric, bool(normalized), model_version, int(index.ntotal))
    return VectorIndex(index, meta, {}, seconds)


def save_index(index: VectorIndex, path) -> None:
    """Write the index and its metadata to one file, atomically (safe to load with weights_only)."""
    data = torch.from_numpy(faiss.serialize_index(index.faiss).copy())
    save_atomically({"format": FORMAT, "format_version": 1, "meta": asdict(index.meta),
                  "params": dict(index.params), "faiss": data}, path)


def load_index(path, model_version: str) -> VectorIndex:
    """Load an index saved by `save_index` for the model version you will query it with.

    Raises IndexVersionError when the index holds another model version's vectors:
    queries from one model compared with vectors from another are meaningless.
    """
    payload = torch.load(path, map_location="cpu", weights_only=True)
    if not isinstance(payload, dict) or payload.get("format") != FORMAT:
        raise ValueError(f"{os.fspath(path)} is not a saved index; write one with save_index")
    meta = IndexMeta(**payload["meta"])
    if meta.model_version != model_version:
        raise IndexVersionError(
            f"the index in {os.path.basename(os.fspath(path))} holds vectors of model {meta.model_version!r}, "
            f"but you asked for model {model_version!r}. Vectors of different models live in different "
            f"spaces: re-embed the corpus with {model_version!r} and build a new index.")
    index = VectorIndex(faiss.deserialize_index(payload["faiss"].numpy()), meta, {}, 0.0)
    if payload["params"]:
        index.set(**payload["params"])
    return index


# --- measuring an index ------------------------------------------------------------

def set_threads(n: int) -> int:
    """Let faiss use n threads; returns the previous number. On a shared 2-core machine one
    thread gives steadier timings (and a server usually answers one query per thread)."""
    previous = faiss.omp_get_max_threads()
    faiss.omp_set_num_threads(int(n))
    return previous


def recall_vs_exact(found_ids, exact_ids, k: int | None = None) -> float:
    """k-recall@k: the mean fraction of each query's true top-k (from exact search) that the
    approximate search returned in its top k. found_ids, exact_ids: (Q, ≥k) integer arrays."""
    found, exact = np.asarray(found_ids), np.asarray(exact_ids)
    k = k or exact.shape[1]
    if found.shape[0] != exact.shape[0] or found.shape[1] < k or exact.shape[1] < k:
        raise ValueError(f"need (Q, ≥{k}) id arrays for the same queries, got {found.shape} and {exact.shape}")
    hits = (found[:, :k, None] == exact[:, None, :k]).any(2).sum(1)
    return float(hits.mean() / k)


def single_query_latency(index: VectorIndex, queries, k: int = 10, repeats: int = 1) -> float:
    """Median milliseconds to answer ONE query at a time (the latency a user waits),
    over the given queries (each searched alone, `repeats` times)."""
    q = index._queries(queries)
    index.faiss.search(q[:1], k)                              # warm-up
    times = []
    for _ in range(repeats):
        for row in q:
            start = time.perf_counter()
            index.faiss.search(row[None], k)
            times.append(time.perf_counter() - start)
    return 1e3 * float(np.median(times))


def batched_throughput(index: VectorIndex, queries, k: int = 10) -> float:
    """Queries per second when all queries are searched in one batched call."""
    q = index._queries(queries)
    start = time.perf_counter()
    index.faiss.search(q, k)
    return len(q) / (time.perf_counter() - start)


def index_bytes(index: VectorIndex) -> int:
    """Size of the index in bytes (its serialized form: vectors, graph links, codes)."""
    return int(faiss.serialize_index(index.faiss).nbytes)


__all__ = ["IndexMeta", "VectorIndex", "IndexVersionError", "build_index", "save_index", "load_index",
           "set_threads", "recall_vs_exact", "single_query_latency", "batched_throughput", "index_bytes"]
