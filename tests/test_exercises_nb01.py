"""The notebook-01 self-checks accept right answers and reject wrong ones with a hint."""
import pytest
import torch

from contrastive_lab.exercises.nb01 import (check_cos_from_distance, check_normalize,
                                            check_two_point_uniformity)


def test_check_normalize():
    check_normalize(lambda x: x / x.norm(dim=1, keepdim=True))
    with pytest.raises(AssertionError, match="length 1"):
        check_normalize(lambda x: x / x.norm())              # one norm for the whole matrix


def test_check_cos_from_distance():
    check_cos_from_distance(lambda d: 1 - d ** 2 / 2)
    with pytest.raises(AssertionError, match="2 − 2·cos"):
        check_cos_from_distance(lambda d: 1 - d)


def test_check_two_point_uniformity():
    import torch.nn.functional as F

    from contrastive_lab.evaluate import uniformity

    u = F.normalize(torch.ones(1, 8), dim=1)
    points = torch.cat([u.repeat(25, 1), -u.repeat(25, 1)])
    check_two_point_uniformity(uniformity(points))           # the package's value passes
    with pytest.raises(AssertionError, match="ONE point"):
        check_two_point_uniformity(0.0)
    with pytest.raises(AssertionError, match="expected"):
        check_two_point_uniformity(-2.0)
