"""Self-checks for notebook 12 (serving embeddings)."""
from __future__ import annotations

from . import passed, self_check


def _reference_pick(rows, min_recall):
    ok = [r for r in rows if r["recall"] >= min_recall]
    return min(ok, key=lambda r: r["latency_ms"]) if ok else None


@self_check
def check_pick_setting(fn, rows: list[dict]) -> None:
    """Exercise 1: fn(rows, min_recall) → the row (a dict of the sweep table) with the lowest
    single-query latency among the rows whose recall is at least min_recall; None if no row
    reaches it. rows: dicts with "index", "setting", "recall", "latency_ms", "qps"."""
    if not callable(fn):
        raise AssertionError("pass your function itself, e.g. check_pick_setting(pick_setting, rows)")
    toy = [
        {"index": "Flat", "setting": "-", "recall": 1.0, "latency_ms": 5.0, "qps": 2000.0},
        {"index": "HNSW", "setting": "efSearch=16", "recall": 0.90, "latency_ms": 0.05, "qps": 30000.0},
        {"index": "HNSW", "setting": "efSearch=32", "recall": 0.97, "latency_ms": 0.09, "qps": 15000.0},
        {"index": "IVF", "setting": "nprobe=8", "recall": 0.96, "latency_ms": 0.12, "qps": 40000.0},
        {"index": "IVF", "setting": "nprobe=32", "recall": 0.999, "latency_ms": 0.30, "qps": 5000.0},
    ]
    got = fn(toy, 0.95)
    if got is toy[1]:
        raise AssertionError("efSearch=16 is the fastest row, but its recall (0.90) is below 0.95: "
                             "keep only the rows that reach min_recall first")
    if got is toy[3]:
        raise AssertionError("you picked the highest batched throughput (qps); the question is the latency "
                             "one user waits for one query: the smallest latency_ms")
    if got is toy[0] or got is toy[4]:
        raise AssertionError("you picked the highest recall; any row with recall ≥ min_recall will do, "
                             "and among those the fastest one wins")
    if got is not toy[2]:
        raise AssertionError(f"on the worked example the answer is the HNSW efSearch=32 row, got {got}")
    if fn(toy, 1.5) is not None:
        raise AssertionError("when no row reaches min_recall, return None (no setting qualifies)")
    for target in (0.95, 0.99):
        want = _reference_pick(rows, target)
        if fn(rows, target) is not want:
            raise AssertionError(f"on the notebook's table with min_recall={target} the answer is "
                                 f"{want['index'] + ' ' + want['setting'] if want else None}")
    best = _reference_pick(rows, 0.95)
    passed(f"at recall ≥ 0.95 the fastest single query is {best['index']} {best['setting']} "
           f"({best['latency_ms']:.3f} ms, recall {best['recall']:.3f})")


def _usual_slips(kind: str, dim: int, hnsw_m: int) -> dict[float, str]:
    """Wrong bytes-per-vector answers a learner often gives for `kind`, with what each forgot."""
    four_bytes = "a float32 coordinate takes 4 bytes (only SQ8 stores one byte per coordinate)"
    ids = ("IVF keeps each vector's id (an int64, 8 bytes) beside its code in its cell's list; Flat needs "
           "none, a vector's id is its position")
    if kind == "Flat":
        return {dim: four_bytes}
    if kind.startswith("HNSW"):
        links = (f"HNSW stores, beside each vector, the ids of its 2M = {2 * hnsw_m} neighbours on the bottom "
                 "layer of its graph, each an int32 (4 bytes)")
        return {4 * dim: links, 4 * dim + 4 * hnsw_m: links, dim + 8 * hnsw_m: four_bytes}
    if kind.endswith(",Flat"):
        return {4 * dim: ids, dim + 8: four_bytes}
    return {dim: ids, 4 * dim + 8: "SQ8 stores one byte per coordinate instead of four"}


@self_check
def check_index_memory(per_vector: dict, fits: list, rows: list[dict], corpus_shape: tuple, hnsw_m: int,
                       n_planned: int = 100_000_000, ram_gb: float = 32.0) -> None:
    """Exercise 2: per_vector {index kind: bytes per stored vector} for every kind of the sweep
    ("Flat", "HNSW<M>", "IVF<n>,Flat", "IVF<n>,SQ8"), predicted from the dimension; the
    prediction × N must match the table's measured memory ("mb") within 4 %, for a corpus of
    corpus_shape (N, D). fits: the kinds whose n_planned vectors fit in ram_gb GB (10⁹ bytes)
    by those predictions."""
    n_vectors, dim = corpus_shape
    if not isinstance(per_vector, dict):
        raise AssertionError("per_vector must be a dict {index kind, as in the table: bytes per vector}")
    kinds = list(dict.fromkeys(r["index"] for r in rows))
    missing = [kind for kind in kinds if kind not in per_vector]
    if missing:
        raise AssertionError(f"per_vector has no entry for {missing}: give every index kind of the table")
    for kind in kinds:
        predicted = per_vector[kind] * n_vectors / 1e6
        measured = next(r["mb"] for r in rows if r["index"] == kind)
        if abs(predicted - measured) > 0.04 * measured:
            hint = _usual_slips(kind, dim, hnsw_m).get(per_vector[kind], "count what the index stores per vector")
            raise AssertionError(f"{kind}: {per_vector[kind]:g} bytes per vector × {n_vectors:,} vectors = "
                                 f"{predicted:.1f} MB, the table measured {measured:.1f} MB: {hint}")
    want = sorted(kind for kind in kinds if per_vector[kind] * n_planned <= ram_gb * 1e9)
    if not isinstance(fits, (list, tuple, set)) or sorted(fits) != want:
        raise AssertionError(f"by your own bytes per vector, {n_planned:,} vectors fit in {ram_gb:g} GB for "
                             f"{want}, not {fits}: bytes per vector × {n_planned:,} ≤ {ram_gb:g} × 10⁹")
    sizes = ", ".join(f"{kind} {per_vector[kind] * n_planned / 1e9:.1f} GB" for kind in kinds)
    passed(f"every index's memory explained within 4 %; {n_planned:,} vectors take {sizes}")
