"""The notebook-12 (serving) self-checks accept right answers and reject wrong ones with a hint."""
import pytest

from contrastive_lab.exercises.nb12 import check_index_memory, check_pick_setting

ROWS = [
    {"index": "Flat", "setting": "-", "recall": 1.0, "latency_ms": 7.0, "qps": 1000.0},
    {"index": "HNSW16", "setting": "efSearch=16", "recall": 0.95, "latency_ms": 0.07, "qps": 9000.0},
    {"index": "IVF256,Flat", "setting": "nprobe=16", "recall": 0.99, "latency_ms": 0.2, "qps": 20000.0},
]


def fastest_good(rows, min_recall):
    good = [r for r in rows if r["recall"] >= min_recall]
    return min(good, key=lambda r: r["latency_ms"]) if good else None


def test_check_pick_setting():
    check_pick_setting(fastest_good, ROWS)
    with pytest.raises(AssertionError, match="keep only the rows that reach min_recall"):
        check_pick_setting(lambda rows, m: min(rows, key=lambda r: r["latency_ms"]), ROWS)
    with pytest.raises(AssertionError, match="batched throughput"):
        check_pick_setting(lambda rows, m: max((r for r in rows if r["recall"] >= m), key=lambda r: r["qps"]), ROWS)
    with pytest.raises(AssertionError, match="return None"):
        check_pick_setting(lambda rows, m: fastest_good(rows, m) or rows[0], ROWS)


D, M, N = 128, 16, 100_000
MEASURED = [                      # the memory column of a real sweep (faiss, 100,000 × 128)
    {"index": "Flat", "mb": 51.2}, {"index": "HNSW16", "mb": 65.6},
    {"index": "IVF256,Flat", "mb": 52.1}, {"index": "IVF256,SQ8", "mb": 13.7},
]
RIGHT = {"Flat": 4 * D, "HNSW16": 4 * D + 2 * M * 4, "IVF256,Flat": 4 * D + 8, "IVF256,SQ8": D + 8}


def test_check_index_memory_accepts_the_derivation_and_its_decision(capsys):
    check_index_memory(RIGHT, ["IVF256,SQ8"], MEASURED, (N, D), M)
    assert "13.6 GB" in capsys.readouterr().out          # IVF256,SQ8: 136 bytes × 10⁸


@pytest.mark.parametrize("kind, wrong, hint", [
    ("Flat", D, "4 bytes"),
    ("HNSW16", 4 * D, "neighbours"),
    ("IVF256,SQ8", D, "id"),
    ("IVF256,SQ8", 4 * D + 8, "one byte per coordinate"),
])
def test_check_index_memory_names_what_a_wrong_count_forgot(kind, wrong, hint):
    with pytest.raises(AssertionError, match=hint):
        check_index_memory({**RIGHT, kind: wrong}, ["IVF256,SQ8"], MEASURED, (N, D), M)


def test_check_index_memory_wants_every_kind_and_the_right_decision():
    with pytest.raises(AssertionError, match="no entry"):
        check_index_memory({"Flat": 4 * D}, [], MEASURED, (N, D), M)
    with pytest.raises(AssertionError, match="fit in 32 GB for"):
        check_index_memory(RIGHT, ["IVF256,SQ8", "IVF256,Flat"], MEASURED, (N, D), M)
