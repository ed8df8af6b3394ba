"""Anomaly scores and the drift test: values by hand, and the test's false-alarm rate."""
import math

import pytest
import torch

from contrastive_lab.monitoring import DriftMonitor, false_alarm_rate, knn_anomaly_score, mmd2, mmd_test, roc_auc
from conftest import unit


def test_knn_anomaly_score_by_hand():
    reference = torch.tensor([unit(0), unit(10), unit(20)])
    samples = torch.tensor([unit(5), unit(100)])
    # k = 2: 5° is 5° from 0° and 10°; 100° is 80° and 90° from 20° and 10°
    want = [1 - math.cos(math.radians(5)), 1 - (math.cos(math.radians(80)) + math.cos(math.radians(90))) / 2]
    torch.testing.assert_close(knn_anomaly_score(reference, samples, k=2), torch.tensor(want))


def test_knn_anomaly_score_ignores_vector_length():
    reference, samples = torch.randn(30, 4), torch.randn(5, 4)
    torch.testing.assert_close(knn_anomaly_score(reference, samples, 3), knn_anomaly_score(3 * reference, samples, 3))


def test_roc_auc_by_hand():
    # anomaly 0.3 beats both normals, 0.15 beats one of two: 3 of 4 pairs ordered right
    assert roc_auc([0.1, 0.2], [0.3, 0.15]) == pytest.approx(0.75)
    assert roc_auc([0.1, 0.2], [0.1, 0.2]) == pytest.approx(0.5)


def test_mmd2_by_hand_and_zero_for_equal_samples():
    x, y = torch.tensor([[0.0]]), torch.tensor([[1.0]])
    # k(x,x) + k(y,y) − 2 k(x,y) with k = exp(−d² / 2)
    assert mmd2(x, y, bandwidth=1.0) == pytest.approx(2 - 2 * math.exp(-0.5))
    z = torch.randn(10, 3)
    assert mmd2(z, z, bandwidth=1.0) == pytest.approx(0.0, abs=1e-6)


def test_false_alarm_rate_on_unshifted_data_is_near_its_level():
    g = torch.Generator().manual_seed(0)
    alpha, trials = 0.1, 300
    alarms = 0
    for _ in range(trials):
        x, y = torch.randn(20, 3, generator=g), torch.randn(20, 3, generator=g)
        alarms += mmd_test(x, y, n_permutations=99, generator=g).p_value <= alpha
    # binomial(300, 0.1): mean 30, sd 5.2
    assert 0.05 <= alarms / trials <= 0.16


def test_false_alarm_rate_helper_is_near_its_level():
    g = torch.Generator().manual_seed(4)
    pool = torch.randn(300, 3, generator=g)
    rate = false_alarm_rate(pool, n_reference=40, batch_size=20, trials=300, alpha=0.1, n_permutations=99, generator=g)
    assert 0.05 <= rate <= 0.16
    with pytest.raises(ValueError, match="needs n_reference"):
        false_alarm_rate(pool[:50], n_reference=40, batch_size=20)


def test_a_shifted_mean_is_detected():
    g = torch.Generator().manual_seed(1)
    x, y = torch.randn(50, 3, generator=g), torch.randn(50, 3, generator=g) + 1.0
    assert mmd_test(x, y, generator=g).p_value <= 0.01


def test_drift_monitor_gives_the_same_test_as_mmd_test():
    g = torch.Generator().manual_seed(3)
    reference, batch = torch.randn(40, 3, generator=g), torch.randn(20, 3, generator=g) + 0.3
    monitor = DriftMonitor(reference, model_version="v1", n_permutations=49, seed=7)
    direct = mmd_test(reference, batch, n_permutations=49, bandwidth=monitor.bandwidth,
                      generator=torch.Generator().manual_seed(7))
    result = monitor.check(batch)
    assert result.statistic == pytest.approx(direct.statistic, rel=1e-5)
    assert result.p_value == direct.p_value


def test_drift_monitor_flags_shift_and_checks_alpha():
    g = torch.Generator().manual_seed(2)
    monitor = DriftMonitor(torch.randn(200, 4, generator=g), model_version="v1", alpha=0.05)
    assert monitor.check(torch.randn(60, 4, generator=g) + 1.0).drift
    with pytest.raises(ValueError, match="alpha"):
        DriftMonitor(torch.randn(10, 4), model_version="v1", alpha=0.0)
