"""The notebook-13 (monitoring) self-checks accept right answers and reject wrong ones with a hint."""
import math

import pytest

from contrastive_lab.exercises.nb13 import check_alarm_budget, check_threshold
from contrastive_lab.production import threshold_for_precision


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
