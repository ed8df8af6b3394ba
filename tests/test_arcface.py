"""arcface_loss against values worked out by hand on the unit circle.

Embeddings and class centres are points of the unit circle at known angles, so
every cosine, every θ + m and every logit can be redone on paper.
"""
import math

import pytest
import torch
import torch.nn.functional as F

from contrastive_lab.losses import arcface_loss
from conftest import circle


def ce(logits, target):
    """−log softmax(logits)[target] for one row of plain floats."""
    return -(logits[target] - math.log(sum(math.exp(v) for v in logits)))


def test_by_hand_one_sample_two_classes():
    # sample at 0°, its class centre at 60° (θ = π/3), the other centre at 180°
    loss = arcface_loss(circle(0), circle(60, 180), torch.tensor([0]), margin=0.5, scale=2.0)
    expected = ce([2 * math.cos(math.pi / 3 + 0.5), 2 * math.cos(math.pi)], 0)
    assert loss.item() == pytest.approx(expected, abs=1e-5)


def test_by_hand_mean_over_a_batch():
    # two samples, three centres at 0°, 90°, 180°; labels 1 and 2
    z, w = circle(30, 150), circle(0, 90, 180)
    loss = arcface_loss(z, w, torch.tensor([1, 2]), margin=0.3, scale=4.0)
    c = lambda deg: math.cos(math.radians(deg))
    first = ce([4 * c(30), 4 * math.cos(math.radians(60) + 0.3), 4 * c(150)], 1)
    second = ce([4 * c(150), 4 * c(60), 4 * math.cos(math.radians(30) + 0.3)], 2)
    assert loss.item() == pytest.approx((first + second) / 2, abs=1e-5)


def test_margin_zero_is_scaled_softmax_cross_entropy_on_cosines():
    g = torch.Generator().manual_seed(0)
    z, w = torch.randn(16, 8, generator=g), torch.randn(5, 8, generator=g)
    y = torch.randint(5, (16,), generator=g)
    cos = F.normalize(z, dim=1) @ F.normalize(w, dim=1).T
    torch.testing.assert_close(arcface_loss(z, w, y, margin=0.0, scale=16.0), F.cross_entropy(16.0 * cos, y),
                               atol=1e-4, rtol=0)


def test_margin_raises_the_loss_of_a_correct_sample():
    z, w, y = circle(0), circle(20, 120), torch.tensor([0])
    assert arcface_loss(z, w, y, margin=0.5, scale=2.0).item() > arcface_loss(z, w, y, margin=0.0, scale=2.0).item()


def test_beyond_pi_minus_m_the_target_logit_is_cos_theta_minus_one_minus_cos_m():
    # θ = 170°, m = 0.5: θ + m = 3.467 > π, so the target logit is s·(cos θ − (1 − cos m))
    theta, m, s = math.radians(170), 0.5, 2.0
    loss = arcface_loss(circle(0), circle(170, 90), torch.tensor([0]), margin=m, scale=s)
    expected = ce([s * (math.cos(theta) - (1 - math.cos(m))), s * math.cos(math.radians(90))], 0)
    assert loss.item() == pytest.approx(expected, abs=1e-5)


def test_target_logit_is_continuous_and_keeps_falling_past_pi_minus_m():
    # the loss of a sample must grow as it moves away from its centre, on both sides of π − m
    m = 0.5
    edge = math.degrees(math.pi - m)                          # 151.35°: where θ + m = π
    angles = [edge - 10, edge - 0.01, edge + 0.01, edge + 10, 179.0]
    losses = [arcface_loss(circle(0), circle(a, 90), torch.tensor([0]), margin=m, scale=2.0).item()
              for a in angles]
    assert all(a < b for a, b in zip(losses, losses[1:])), losses
    assert losses[2] - losses[1] < 1e-3                       # no jump at π − m


def test_gradient_pulls_the_sample_towards_its_centre_past_pi_minus_m():
    # in 3-D, the sample turns in the x–y plane at angle φ; its centre is at 170° in that plane
    # and the other centre on the z axis, so the other logit stays cos 90° = 0 whatever φ.
    # At φ = 0, θ = 170° > π − m: the loss must fall as φ grows towards the centre.
    phi = torch.tensor(0.0, requires_grad=True)
    z = torch.stack([phi.cos(), phi.sin(), torch.tensor(0.0)])[None]
    w = torch.tensor([[math.cos(math.radians(170)), math.sin(math.radians(170)), 0.0], [0.0, 0.0, 1.0]])
    arcface_loss(z, w, torch.tensor([0]), margin=0.5, scale=2.0).backward()
    assert phi.grad.item() < 0


def test_float32_under_bf16_autocast():
    g = torch.Generator().manual_seed(1)
    z, w = torch.randn(32, 16, generator=g), torch.randn(10, 16, generator=g)
    y = torch.randint(10, (32,), generator=g)
    exact = arcface_loss(z, w, y)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        under = arcface_loss(z.bfloat16(), w, y)
    assert under.dtype == torch.float32
    torch.testing.assert_close(under, arcface_loss(z.bfloat16().float(), w, y))
    assert abs(under.item() - exact.item()) < 0.05 * exact.item()


@pytest.mark.parametrize("kwargs, match", [
    (dict(labels=torch.tensor([0, 3])), r"labels must lie in \[0, C\) with C = class_weights.shape\[0\] = 3"),
    (dict(labels=torch.tensor([0, -1])), r"labels must lie in \[0, C\)"),
    (dict(labels=torch.tensor([0, 1, 2])), r"expected labels of shape \(2,\)"),
    (dict(labels=torch.tensor([0.0, 1.0])), "integer class indices"),
    (dict(margin=-0.1), "margin must be >= 0"),
    (dict(scale=0.0), "scale must be > 0"),
    (dict(scale=-1.0), "scale must be > 0"),
    (dict(class_weights=torch.randn(3, 5)), r"need the same D, got \(2, 4\) and \(3, 5\)"),
    (dict(embeddings=torch.randn(4)), r"expected embeddings of shape \(N, D\)"),
])
def test_bad_input_gives_a_clear_error(kwargs, match):
    args = dict(embeddings=torch.randn(2, 4), class_weights=torch.randn(3, 4), labels=torch.tensor([0, 1]))
    args.update(kwargs)
    with pytest.raises(ValueError, match=match):
        arcface_loss(**args)


def test_no_tensor_value_is_read_when_value_checks_are_off():
    # inside fit (validate.value_checks(False)) the loss must not make the device wait for the host
    from contrastive_lab.device import count_host_syncs
    from contrastive_lab.validate import value_checks

    z = torch.randn(8, 4, requires_grad=True)
    w = torch.nn.Parameter(torch.randn(5, 4))
    y = torch.randint(5, (8,))
    with value_checks(False), count_host_syncs() as syncs:
        arcface_loss(z, w, y).backward()
    assert syncs.total == 0, dict(syncs.by_op)
    with count_host_syncs() as syncs:
        arcface_loss(z, w, y)
    assert syncs.total > 0                            # outside fit the checks do read values
