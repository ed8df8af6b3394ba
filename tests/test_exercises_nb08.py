"""Notebook 08's exercise 3 check: the best starting bias of SigLIP's loss, against a numerical minimum."""
import math

import pytest

from contrastive_lab.exercises.nb08 import check_best_bias


def test_the_derived_bias_passes_and_prints_the_papers_value(capsys):
    check_best_bias(lambda n: -math.log(n - 1))
    assert "-10.40" in capsys.readouterr().out


@pytest.mark.parametrize("wrong", [lambda n: -math.log(n), lambda n: -10.0, lambda n: math.log(n - 1)])
def test_a_wrong_bias_fails_with_the_hint(wrong):
    with pytest.raises(AssertionError, match="set its derivative in b to 0"):
        check_best_bias(wrong)


def test_an_open_exercise_is_reported_not_failed(capsys):
    check_best_bias(...)
    assert "not done yet" in capsys.readouterr().out
    with pytest.raises(AssertionError, match="must return a number"):
        check_best_bias(lambda n: "−10")
