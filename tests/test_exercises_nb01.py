"""The notebook-01 self-checks accept right answers and reject wrong ones with a hint."""
import pytest
import torch

from contrastive_lab.exercises.nb01 import (check_cos_from_distance, check_dot_favours_long,
                                            check_two_point_uniformity)


def test_check_dot_favours_long():
    g = torch.Generator().manual_seed(0)
    raw = torch.randn(200, 8, generator=g) * torch.rand(200, 1, generator=g) * 3
    query = torch.randn(1, 8, generator=g)
    lengths = raw.norm(dim=1)
    ratio_dot = (lengths[(query @ raw.T)[0].topk(10).indices].mean() / lengths.mean()).item()
    ratio_cos = (lengths[torch.nn.functional.cosine_similarity(query, raw, dim=1).topk(10).indices].mean()
                 / lengths.mean()).item()
    check_dot_favours_long(ratio_dot, ratio_cos, ratio_dot > ratio_cos, raw, query)
    with pytest.raises(AssertionError, match="decide from these two numbers"):
        check_dot_favours_long(ratio_dot, ratio_cos, not ratio_dot > ratio_cos, raw, query)
    with pytest.raises(AssertionError, match="ratio_dot"):
        check_dot_favours_long(1.0 + ratio_dot, ratio_cos, True, raw, query)


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
