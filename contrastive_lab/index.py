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

import numbers
import os
import time
from dataclasses import asdict, dataclass, field, fields

import faiss
import numpy as np
import torch

from .integrity import CorruptFileError, load_checked, save_checked

FORMAT = "contrastive-lab/index"
FORMAT_VERSION = 1
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


def _check_whole(value, name: str, low: int = 1, high: int | None = None) -> int:
    """value must be a whole number in [low, high]; returns it as an int."""
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < low \
            or (high is not None and value > high):
        span = f"between {low} and {high}" if high is not None else f"at least {low}"
        raise ValueError(f"{name} must be a whole number {span}, got {value!r}")
    return int(value)


# search-time knobs that faiss reads as a count; 0, negative or fractional values break searches
_COUNT_PARAMS = ("efSearch", "nprobe")


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
            if name in _COUNT_PARAMS:
                value = _check_whole(value, name)
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
        count = int(self.faiss.ntotal)
        if count == 0:
            raise ValueError("the index is empty: add vectors (index.add(vectors)) before searching it")
        if isinstance(k, bool) or not isinstance(k, numbers.Integral) or not 1 <= k <= count:
            raise ValueError(f"k must be a whole number between 1 and the number of stored vectors ({count}), "
                             f"got {k!r}")
        return self.faiss.search(self._queries(queries), int(k))

    def range_search(self, queries, threshold: float) -> list[tuple[np.ndarray, np.ndarray]]:
        """Every stored vector scoring above `threshold` for each query (inner product > threshold,
        or squared L2 distance < threshold). Returns one (ids, scores) pair per query, best first.

        The strict `>` is faiss's; the course's decisions are score >= t (`evaluate.accepts`). They
        differ only for a score exactly at t, which a calibrated threshold (halfway between two
        scores, `production.threshold_for_precision`) does not have."""
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
        inner.hnsw.efConstruction = _check_whole(ef_construction, "ef_construction")
    if train_size is not None:
        train_size = _check_whole(train_size, "train_size")
    start = time.perf_counter()
    if not index.is_trained:
        sample = x
        if train_size is not None and train_size < len(x):
            pick = np.random.default_rng(seed).choice(len(x), train_size, replace=False)
            sample = x[np.sort(pick)]
        try:
            index.train(sample)
        except RuntimeError as exc:
            reason = str(exc).split("failed: ")[-1].strip()
            raise ValueError(
                f"faiss could not train {factory!r} on {len(sample)} vectors: {reason}. An IVF index with C cells "
                "needs at least C training vectors (faiss advises 39·C), and PQ/SQ codebooks need 256 per "
                "sub-quantizer: use fewer cells (e.g. 'IVF{n},Flat' with n ≈ √N) or more vectors") from None
    index.add(x)
    seconds = time.perf_counter() - start
    meta = IndexMeta(factory, int(x.shape[1]), metric, bool(normalized), model_version, int(index.ntotal))
    return VectorIndex(index, meta, {}, seconds)


def save_index(index: VectorIndex, path) -> None:
    """Write the index, its metadata and their SHA-256 to one file, atomically.

    The file holds tensors and plain values only (safe to load with weights_only); what
    faiss serializes is checked on load against the metadata written beside it.
    """
    data = torch.from_numpy(faiss.serialize_index(index.faiss).copy())
    meta = asdict(index.meta)
    meta["count"] = int(index.faiss.ntotal)
    save_checked({"format": FORMAT, "format_version": FORMAT_VERSION, "meta": meta,
                  "params": dict(index.params), "faiss": data}, path)


def _refuse(path, problem: str) -> CorruptFileError:
    return CorruptFileError(f"{os.fspath(path)} is not a valid saved index: {problem}; "
                            "build the index again and write it with save_index")


def _read_meta(path, payload: dict) -> IndexMeta:
    """The metadata of a loaded payload, each field of the type IndexMeta says."""
    if payload.get("format_version") != FORMAT_VERSION:
        raise _refuse(path, f"it has format_version {payload.get('format_version')!r}, this package reads "
                            f"{FORMAT_VERSION}")
    raw, params = payload.get("meta"), payload.get("params")
    if not isinstance(raw, dict) or not isinstance(params, dict) or not isinstance(payload.get("faiss"), torch.Tensor) \
            or payload["faiss"].dtype != torch.uint8 or payload["faiss"].ndim != 1:
        raise _refuse(path, "'meta', 'params' or 'faiss' is missing or of the wrong type")
    kinds = {f.name: f.type for f in fields(IndexMeta)}
    if set(raw) != set(kinds):
        raise _refuse(path, f"its metadata has the keys {sorted(raw)}, expected {sorted(kinds)}")
    types = {"str": str, "int": int, "bool": bool}
    for name, kind in kinds.items():
        value = raw[name]
        if not isinstance(value, types[kind]) or (kind == "int" and isinstance(value, bool)):
            raise _refuse(path, f"meta[{name!r}] must be a {kind}, got {value!r}")
    if raw["metric"] not in METRICS:
        raise _refuse(path, f"unknown metric {raw['metric']!r}")
    return IndexMeta(**raw)


def _check_against_faiss(path, meta: IndexMeta, index: faiss.Index) -> None:
    """The metadata must describe the faiss object: dimension, count, metric, kind, unit vectors."""
    found = {"dim": int(index.d), "count": int(index.ntotal), "metric": index.metric_type}
    wanted = {"dim": meta.dim, "count": meta.count, "metric": METRICS[meta.metric]}
    for name in found:
        if found[name] != wanted[name]:
            raise _refuse(path, f"its metadata says {name} = {getattr(meta, name)!r} but the faiss index holds "
                                f"{name} = {found[name]!r}")
    try:            # built empty and read back, as faiss names the kinds it reads (IndexFlat → IndexFlatIP)
        expected = faiss.deserialize_index(faiss.serialize_index(
            faiss.index_factory(meta.dim, meta.factory, METRICS[meta.metric])))
    except RuntimeError:
        raise _refuse(path, f"faiss does not understand its factory string {meta.factory!r}") from None
    inner = faiss.downcast_index(index)
    if type(faiss.downcast_index(expected)) is not type(inner):
        raise _refuse(path, f"its metadata says {meta.factory!r} but the faiss index is an {type(inner).__name__}")
    if meta.normalized and meta.count and type(inner).__name__ in _EXACT_STORAGE:
        rows = np.unique(np.linspace(0, meta.count - 1, min(meta.count, 64)).astype(np.int64))
        try:
            norms = np.linalg.norm(np.stack([index.reconstruct(int(i)) for i in rows]), axis=1)
        except RuntimeError:                 # this index cannot give its vectors back: nothing to check
            return
        if np.abs(norms - 1).max() > 10 * UNIT_TOLERANCE:
            raise _refuse(path, "its metadata says the vectors have unit length, but stored vectors do not")


# index kinds that store the vectors exactly (so their lengths can be checked on load)
_EXACT_STORAGE = ("IndexFlat", "IndexFlatIP", "IndexFlatL2", "IndexHNSWFlat", "IndexIVFFlat")


def load_index(path, model_version: str) -> VectorIndex:
    """Load an index saved by `save_index` for the model version you will query it with.

    Raises IndexVersionError when the index holds another model version's vectors:
    queries from one model compared with vectors from another are meaningless.
    A file that is damaged (its SHA-256 does not match), truncated, not a saved index,
    or whose metadata does not describe its faiss index (dimension, count, metric, kind,
    unit-length vectors) raises CorruptFileError naming the file; one holding Python
    objects raises UnsafeFileError (nothing in it is run).
    """
    payload = load_checked(path, what="saved index", fmt=FORMAT, fix="write one with save_index")
    meta = _read_meta(path, payload)
    if meta.model_version != model_version:
        raise IndexVersionError(
            f"the index in {os.path.basename(os.fspath(path))} holds vectors of model {meta.model_version!r}, "
            f"but you asked for model {model_version!r}. Vectors of different models live in different "
            f"spaces: re-embed the corpus with {model_version!r} and build a new index.")
    try:
        raw = faiss.deserialize_index(payload["faiss"].numpy())
    except RuntimeError as exc:
        raise _refuse(path, f"faiss cannot read it ({str(exc).splitlines()[0][-120:]})") from None
    _check_against_faiss(path, meta, raw)
    index = VectorIndex(raw, meta, {}, 0.0)
    if payload["params"]:
        try:
            index.set(**payload["params"])
        except ValueError as exc:
            raise _refuse(path, f"its search parameters are invalid ({exc})") from None
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
