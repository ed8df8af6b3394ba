"""The notebook-04 self-checks accept the right answers and reject the wrong ones."""
import pytest

from contrastive_lab.exercises.nb04 import (check_expected_false_negatives, check_expected_homophily,
                                            check_safe_augmentations)


def test_expected_false_negatives_accepts_the_derivation_and_rejects_common_slips(capsys):
    right = lambda m, k: (m / k - 1) / (m - 1)
    check_expected_false_negatives(right, 0.1, 2000, 10)
    assert "✓" in capsys.readouterr().out
    with pytest.raises(AssertionError, match="OTHER images"):
        check_expected_false_negatives(lambda m, k: 1 / k, 0.1, 2000, 10)        # counts the anchor itself
    with pytest.raises(AssertionError, match="measure"):
        check_expected_false_negatives(right, 0.2, 2000, 10)                   # a measurement far off


def test_placeholder_is_not_done(capsys):
    check_expected_false_negatives(None, 0.1, 2000, 10)
    assert "not done yet" in capsys.readouterr().out


def test_homophily_and_augmentations_checks_still_judge():
    check_expected_homophily(lambda p, k: p + (1 - p) / k, 0.823)
    with pytest.raises(AssertionError):
        check_expected_homophily(lambda p, k: p, 0.823)
    with pytest.raises(AssertionError):
        check_safe_augmentations({name: True for name in ("horizontal_flip", "rotate_15_degrees",
                                  "rotate_180_degrees", "colour_jitter", "crop_5_percent_area", "gaussian_blur")})
