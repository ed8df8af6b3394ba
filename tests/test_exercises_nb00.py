"""The notebook-00 self-checks accept the measured answer and name the wrong ones."""
import pytest

from contrastive_lab.exercises.nb00 import _raw_knn, check_nuisance


def test_check_nuisance():
    plain, gray = _raw_knn(0, False), _raw_knn(0, True)
    check_nuisance(plain, gray, "colour")
    with pytest.raises(AssertionError, match="Which of the two was in the way"):
        check_nuisance(plain, gray, "clutter")
    with pytest.raises(AssertionError, match="acc_no_clutter_gray: expected"):
        check_nuisance(plain, plain, "colour")
