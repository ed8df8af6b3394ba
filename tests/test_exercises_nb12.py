"""The notebook-12 (production) self-checks accept right answers and reject wrong ones with a hint."""
import math

import pytest

from contrastive_lab.exercises.nb12 import check_alarm_budget, check_pick_setting, check_threshold
from contrastive_lab.production import threshold_for_precision

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


def test_check_threshold():
    check_threshold(threshold_for_precision)

    def stops_at_first_non_match(scores, is_match, target):     # misses the deeper cut that still pays
        s = scores.sort(descending=True).values
        m = is_match[scores.argsort(descending=True)]
        i = 0
        while i + 1 < len(s) and m[i + 1]:
            i += 1
        return float((s[i] + s[i + 1]) / 2) if i + 1 < len(s) else float(s[i] - 1e-6)

    with pytest.raises(AssertionError, match="finds more matches"):
        check_threshold(stops_at_first_non_match)
    with pytest.raises(AssertionError, match="precision"):
        check_threshold(lambda scores, is_match, target: float(scores.min() - 1))     # flags everything
    with pytest.raises(AssertionError, match="inf"):
        check_threshold(lambda s, m, t: threshold_for_precision(s, m, t) if math.isfinite(
            threshold_for_precision(s, m, t)) else 2.0)


def test_check_alarm_budget():
    week = 7 * 24 * 6
    check_alarm_budget(1 / week, week - 1, week)
    with pytest.raises(AssertionError, match="false alarms a week"):
        check_alarm_budget(0.05, 999, week)
    with pytest.raises(AssertionError, match="never raise"):
        check_alarm_budget(1 / week, 99, week)
    with pytest.raises(AssertionError, match="stricter than needed"):
        check_alarm_budget(1 / (10 * week), 20 * week, week)
