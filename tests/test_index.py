"""The vector index: exact search is brute force, bad input is refused, versions are kept apart."""
import math
import os

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from contrastive_lab.index import (IndexVersionError, batched_throughput, build_index, index_bytes, load_index,
                                   recall_vs_exact, save_index, single_query_latency)


def unit(deg):
    r = math.radians(deg)
    return [math.cos(r), math.sin(r)]


def random_unit(n, d=8, seed=0):
    return F.normalize(torch.randn(n, d, generator=torch.Generator().manual_seed(seed)), dim=1)


def test_flat_returns_exactly_the_brute_force_top_k():
    corpus, queries = random_unit(300, seed=0), random_unit(20, seed=1)
    scores, ids = build_index(corpus, "Flat", model_version="v1").search(queries, k=7)
    want_scores, want_ids = (queries @ corpus.T).topk(7, dim=1)
    np.testing.assert_array_equal(ids, want_ids.numpy())
    np.testing.assert_allclose(scores, want_scores.numpy(), rtol=1e-5, atol=1e-6)


def test_inner_product_on_unit_vectors_is_cosine_by_hand():
    corpus = torch.tensor([unit(0), unit(60), unit(90)])
    scores, ids = build_index(corpus, "Flat", model_version="v1").search(torch.tensor([unit(10)]), k=3)
    assert ids.tolist() == [[0, 1, 2]]
    np.testing.assert_allclose(scores[0], [math.cos(math.radians(a)) for a in (10, 50, 80)], rtol=1e-6)


def test_unnormalised_vectors_are_refused_unless_asked_for():
    corpus = random_unit(50) * 3
    with pytest.raises(ValueError, match="unit-length rows"):
        build_index(corpus, "Flat", model_version="v1")
    index = build_index(corpus, "Flat", model_version="v1", normalized=False)
    assert index.meta.normalized is False
    index.search(torch.randn(2, 8), k=3)                   # raw queries accepted too


def test_queries_must_be_unit_length_and_the_right_dimension():
    index = build_index(random_unit(50), "Flat", model_version="v1")
    with pytest.raises(ValueError, match="unit-length rows"):
        index.search(random_unit(2) * 2, k=3)
    with pytest.raises(ValueError, match="8-dimensional"):
        index.search(random_unit(2, d=4), k=3)


def test_range_search_returns_everything_above_the_threshold_best_first():
    corpus = torch.tensor([unit(0), unit(20), unit(40), unit(-15), unit(180)])
    index = build_index(corpus, "Flat", model_version="v1")
    (ids, scores), = index.range_search(torch.tensor([unit(0)]), threshold=math.cos(math.radians(30)))
    assert ids.tolist() == [0, 3, 1]                       # 0°, 15°, 20° away; 40° and 180° are out
    assert np.all(np.diff(scores) <= 0)


def test_ivf_visiting_every_cell_is_exact_and_hnsw_with_a_wide_search_nearly_so():
    corpus, queries = random_unit(1000, seed=2), random_unit(50, seed=3)
    _, exact = build_index(corpus, "Flat", model_version="v1").search(queries, k=10)
    ivf = build_index(corpus, "IVF8,Flat", model_version="v1").set(nprobe=8)
    assert recall_vs_exact(ivf.search(queries, 10)[1], exact) == 1.0
    hnsw = build_index(corpus, "HNSW16", model_version="v1").set(efSearch=256)
    assert recall_vs_exact(hnsw.search(queries, 10)[1], exact) >= 0.98


def test_fewer_cells_visited_can_only_lose_neighbours():
    corpus, queries = random_unit(1000, seed=2), random_unit(50, seed=3)
    _, exact = build_index(corpus, "Flat", model_version="v1").search(queries, k=10)
    ivf = build_index(corpus, "IVF8,Flat", model_version="v1")
    one = recall_vs_exact(ivf.set(nprobe=1).search(queries, 10)[1], exact)
    assert one < recall_vs_exact(ivf.set(nprobe=4).search(queries, 10)[1], exact) <= 1.0


def test_unknown_search_parameter_is_named():
    with pytest.raises(ValueError, match="no search parameter 'efSearch'"):
        build_index(random_unit(50), "Flat", model_version="v1").set(efSearch=8)


def test_recall_vs_exact_by_hand():
    assert recall_vs_exact(np.array([[1, 2, 3], [4, 5, 6]]), np.array([[1, 3, 5], [4, 5, 6]])) == pytest.approx(5 / 6)
    assert recall_vs_exact(np.array([[9, 1]]), np.array([[1, 2]]), k=1) == 0.0


def test_save_and_load_round_trip(tmp_path):
    corpus, queries = random_unit(200), random_unit(5, seed=4)
    index = build_index(corpus, "HNSW8", model_version="v1").set(efSearch=32)
    save_index(index, tmp_path / "catalogue.pt")
    loaded = load_index(tmp_path / "catalogue.pt", model_version="v1")
    assert loaded.meta == index.meta and loaded.params == {"efSearch": 32}
    np.testing.assert_array_equal(loaded.search(queries, 5)[1], index.search(queries, 5)[1])
    assert os.listdir(tmp_path) == ["catalogue.pt"]        # no temporary file left


def test_loading_for_another_model_version_raises(tmp_path):
    save_index(build_index(random_unit(20), "Flat", model_version="simclr-v1"), tmp_path / "i.pt")
    with pytest.raises(IndexVersionError, match="re-embed the corpus with 'simclr-v2'"):
        load_index(tmp_path / "i.pt", model_version="simclr-v2")


def test_timings_read_the_clock_around_each_search_and_flat_memory_is_n_times_d_floats(monkeypatch):
    """A fake clock makes the timings exact: latency is the median of the per-query times,
    throughput the queries over the one batched call, build_seconds the train + add time."""
    import contrastive_lab.index as index_module

    def clock(*readings):
        ticks = iter(readings)
        monkeypatch.setattr(index_module.time, "perf_counter", lambda: next(ticks))

    clock(5.0, 5.25)
    index = build_index(random_unit(500, d=16), "Flat", model_version="v1")
    assert index.build_seconds == pytest.approx(0.25)
    queries = random_unit(3, d=16, seed=5)
    clock(0.0, 0.002, 1.0, 1.004, 2.0, 2.003)                      # 2, 4 and 3 ms
    assert single_query_latency(index, queries, k=5) == pytest.approx(3.0)
    clock(0.0, 0.002, 1.0, 1.004, 2.0, 2.003, 3.0, 3.009, 4.0, 4.010, 5.0, 5.011)
    assert single_query_latency(index, queries, k=5, repeats=2) == pytest.approx(6.5)   # median of 6
    clock(10.0, 10.5)
    assert batched_throughput(index, queries, k=5) == pytest.approx(6.0)             # 3 queries in 0.5 s
    monkeypatch.undo()
    assert 500 * 16 * 4 <= index_bytes(index) < 500 * 16 * 4 + 1000
