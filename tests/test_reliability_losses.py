"""Losses refuse input that would give a silent NaN, a silent 0 or a wrong weighting.

Each test is a case of the reliability probe (shared/reviews/reliability.md, row numbers in the names)."""
import math

import pytest
import torch

from contrastive_lab.device import count_host_syncs
from contrastive_lab.losses import (arcface_loss, clip_loss, contrastive_loss, info_nce,
                                    multiple_negatives_ranking_loss, nt_xent, paired_distance, supcon_loss,
                                    vicreg_loss, vicreg_terms)
from contrastive_lab.validate import value_checks


def z(n=4, d=8, seed=0):
    return torch.randn(n, d, generator=torch.Generator().manual_seed(seed))


@pytest.mark.parametrize("loss", [lambda t: nt_xent(z(), z(seed=1), t), lambda t: info_nce(z(), z(seed=1), None, t),
                                  lambda t: supcon_loss(z(), torch.tensor([0, 0, 1, 1]), t)])
def test_row_7_a_temperature_that_is_not_a_number_names_the_temperature(loss):
    with pytest.raises(TypeError, match=r"temperature must be a number, got '0.2' \(str\)"):
        loss("0.2")


@pytest.mark.parametrize("loss", [lambda t: nt_xent(z(), z(seed=1), t), lambda t: info_nce(z(), z(seed=1), None, t),
                                  lambda t: supcon_loss(z(), torch.tensor([0, 0, 1, 1]), t)])
def test_row_8_a_temperature_whose_inverse_overflows_float32_is_refused(loss):
    with pytest.raises(ValueError, match="temperature = 1e-45 is too small: cos / temperature overflows float32"):
        loss(1e-45)
    assert math.isfinite(loss(1e-30).item())                     # tiny but representable: the mathematical limit


@pytest.mark.parametrize("scaled", [lambda s: clip_loss(z(), z(seed=1), s),
                                    lambda s: multiple_negatives_ranking_loss(z(), z(seed=1), scale=s),
                                    lambda s: arcface_loss(z(), z(3), torch.tensor([0, 1, 2, 0]), scale=s)])
def test_row_22_a_scale_beyond_float32_is_refused(scaled):
    with pytest.raises(ValueError, match="= 1e\\+39 does not fit in float32"):
        scaled(1e39)
    assert math.isfinite(scaled(1e30).item())


@pytest.mark.parametrize("name, loss", [
    ("info_nce", lambda: info_nce(z(1), z(1, seed=1))),
    ("clip_loss", lambda: clip_loss(z(1), z(1, seed=1), 14.3)),
    ("multiple_negatives_ranking_loss", lambda: multiple_negatives_ranking_loss(z(1), z(1, seed=1))),
])
def test_row_12_a_batch_of_one_without_negatives_raises_like_nt_xent(name, loss):
    with pytest.raises(ValueError, match=rf"{name}.* needs at least 2 .*\(N ≥ 2\) so that negatives exist"):
        loss()
    with pytest.raises(ValueError, match=r"needs at least 2 images \(N ≥ 2\) so that negatives exist"):
        nt_xent(z(1), z(1, seed=1))


def test_row_12_a_single_query_with_negatives_is_fine():
    assert info_nce(z(1), z(1, seed=1), negative_keys=z(5, seed=2)).item() > 0
    assert multiple_negatives_ranking_loss(z(1), z(1, seed=1), hard_negative=z(1, seed=2)).item() > 0


def test_row_12_the_batch_size_check_reads_no_value():
    # a shape check: free inside fit too
    with value_checks(False), pytest.raises(ValueError, match="N ≥ 2"):
        clip_loss(z(1), z(1, seed=1), torch.tensor(14.3))


def test_row_17_float_labels_are_refused_so_a_nan_label_cannot_drop_anchors():
    labels = torch.tensor([0.0, 0.0, float("nan"), 1.0])
    with pytest.raises(ValueError, match="labels must be integer class ids, got dtype torch.float32"):
        supcon_loss(z(), labels)


@pytest.mark.parametrize("dtype", [torch.int8, torch.int32, torch.int64, torch.uint8])
def test_rows_16_26_labels_of_any_integer_dtype_give_the_same_loss(dtype):
    labels = torch.tensor([0, 0, 1, 2])
    assert supcon_loss(z(), labels.to(dtype)).item() == pytest.approx(supcon_loss(z(), labels).item())
    w = z(3, seed=5)
    assert arcface_loss(z(), w, labels.to(dtype)).item() == pytest.approx(arcface_loss(z(), w, labels).item())


def test_row_18_same_must_be_0_1_or_bool():
    with pytest.raises(ValueError, match=r"same must hold only 0/1 or True/False.*got values \[-1, 0, 1, 2\]"):
        contrastive_loss(z(), z(seed=1), torch.tensor([2, -1, 0, 1]))
    bools = torch.tensor([True, False, False, True])
    for same in (bools, bools.long(), bools.float()):
        assert contrastive_loss(z(), z(seed=1), same).item() == pytest.approx(
            contrastive_loss(z(), z(seed=1), bools).item())


def test_row_18_the_same_check_is_a_value_check_skipped_inside_fit():
    same = torch.tensor([1, 0, 0, 1])
    with value_checks(False), count_host_syncs() as syncs:
        contrastive_loss(z(), z(seed=1), same)
    assert syncs.total == 0


@pytest.mark.parametrize("kwargs, match", [({"gamma": -1.0}, "gamma must be >= 0"),
                                           ({"eps": -10.0}, "eps must be >= 0"),
                                           ({"variance_weight": -25.0}, "variance_weight must be >= 0")])
def test_row_24_vicreg_refuses_a_negative_gamma_or_eps(kwargs, match):
    with pytest.raises(ValueError, match=match):
        vicreg_loss(z(), z(seed=1), **kwargs)


def test_row_24_vicreg_terms_refuse_them_too():
    with pytest.raises(ValueError, match="gamma must be >= 0"):
        vicreg_terms(z(), z(seed=1), gamma=-1.0)


def test_row_31_paired_distance_names_mismatched_shapes():
    with pytest.raises(ValueError, match=r"expected a and b of the same shape \(N, D\), got \(8, 16\) and \(4, 16\)"):
        paired_distance(z(8, 16), z(4, 16))
    with pytest.raises(ValueError, match="distance must be one of"):
        paired_distance(z(), z(), "manhattan")


def test_row_32_paired_distance_refuses_nan_rows_outside_fit():
    a = z()
    a[2, 0] = float("nan")
    with pytest.raises(ValueError, match="a contains NaN or Inf"):
        paired_distance(a, z(seed=1))
    with value_checks(False):
        assert paired_distance(a, z(seed=1)).isnan().sum().item() == 1       # inside fit: the loop's guard reads it


@pytest.mark.parametrize("step", [
    lambda: nt_xent(z(), z(seed=1), torch.tensor(0.2)),
    lambda: info_nce(z(), z(seed=1), None, torch.tensor(0.2)),
    lambda: supcon_loss(z(), torch.tensor([0, 0, 1, 1], dtype=torch.int32), torch.tensor(0.2)),
    lambda: clip_loss(z(), z(seed=1), torch.tensor(14.3)),
    lambda: arcface_loss(z(), z(3, seed=5), torch.tensor([0, 1, 2, 0], dtype=torch.int32)),
    lambda: contrastive_loss(z(), z(seed=1), torch.tensor([1.0, 0.0, 0.0, 1.0])),
    lambda: vicreg_loss(z(), z(seed=1)),
])
def test_the_new_checks_read_no_tensor_value_inside_fit(step):
    with value_checks(False), count_host_syncs() as syncs:
        step()
    assert syncs.total == 0, dict(syncs.by_op)
