"""The notebook-07 (temperature and collapse) self-checks accept right answers and reject wrong ones with a hint."""
import pytest

from contrastive_lab.exercises.nb07 import check_collapsed_vicreg_loss, check_max_effective_rank, check_which_failure


def right_reading(std_ratio, rank, dim, knn, best_baseline):
    if std_ratio < 0.1:
        return "complete collapse"
    if rank < 0.15 * dim:
        return "dimensional collapse"
    if knn < best_baseline + 0.10:
        return "not learned"
    return "healthy"


def test_check_which_failure():
    check_which_failure(right_reading)

    def rank_first(std_ratio, rank, dim, knn, best_baseline):      # the trap of collapsed SimSiam
        if rank < 0.15 * dim:
            return "dimensional collapse"
        return right_reading(std_ratio, rank, dim, knn, best_baseline)
    with pytest.raises(AssertionError, match="whatever the rank says"):
        check_which_failure(rank_first)

    def knn_first(std_ratio, rank, dim, knn, best_baseline):
        if knn < best_baseline + 0.10:
            return "not learned"
        return right_reading(std_ratio, rank, dim, knn, best_baseline)
    with pytest.raises(AssertionError, match="Check the std ratio FIRST"):
        check_which_failure(knn_first)

    def no_rank(std_ratio, rank, dim, knn, best_baseline):
        return right_reading(std_ratio, dim, dim, knn, best_baseline)
    with pytest.raises(AssertionError, match="Check the rank before the k-NN"):
        check_which_failure(no_rank)
    with pytest.raises(AssertionError, match="return one of"):
        check_which_failure(lambda *args: "collapsed")


def test_check_collapsed_vicreg_loss():
    check_collapsed_vicreg_loss(lambda wi, wv, wc, gamma, eps: wv * 2 * max(0.0, gamma - eps ** 0.5))
    with pytest.raises(AssertionError, match="in BOTH branches"):
        check_collapsed_vicreg_loss(lambda wi, wv, wc, gamma, eps: wv * max(0.0, gamma - eps ** 0.5))
    with pytest.raises(AssertionError, match="sqrt\\(0 \\+ eps\\)"):
        check_collapsed_vicreg_loss(lambda wi, wv, wc, gamma, eps: wv * 2 * gamma)


def test_check_max_effective_rank():
    check_max_effective_rank(lambda n, d: min(n - 1, d))
    with pytest.raises(AssertionError, match="n − 1 directions"):
        check_max_effective_rank(lambda n, d: min(n, d))
    with pytest.raises(AssertionError, match="number of points"):
        check_max_effective_rank(lambda n, d: d)


def test_checks_want_the_function_itself():
    for check in (check_which_failure, check_collapsed_vicreg_loss, check_max_effective_rank):
        with pytest.raises(AssertionError, match="pass the function itself"):
            check(0.5)
