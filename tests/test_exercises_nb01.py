"""The notebook-01 self-checks accept right answers and reject wrong ones with a hint."""
import pytest
import torch

from contrastive_lab.exercises.nb01 import (check_collapsed_uniformity, check_cos_from_distance,
                                            check_normalize)


def test_check_normalize():
    check_normalize(lambda x: x / x.norm(dim=1, keepdim=True))
    with pytest.raises(AssertionError, match="length 1"):
        check_normalize(lambda x: x / x.norm())              # one norm for the whole matrix


def test_check_cos_from_distance():
    check_cos_from_distance(lambda d: 1 - d ** 2 / 2)
    with pytest.raises(AssertionError, match="2 − 2·cos"):
        check_cos_from_distance(lambda d: 1 - d)


def test_check_collapsed_uniformity():
    check_collapsed_uniformity(0.0)
    check_collapsed_uniformity(torch.tensor(0.0))
    with pytest.raises(AssertionError, match="high-dimensional"):
        check_collapsed_uniformity(-4.0)
    with pytest.raises(AssertionError):
        check_collapsed_uniformity(1.0)
