"""DINO: the loss by hand, no gradient into the teacher, the centre left alone by the
loss and kept as an EMA by the trainer, precision under bf16 autocast, no host syncs in the steps,
and the two collapses (no centring, no sharpening) in short runs, each named by `diagnose`."""
import math

import pytest
import torch
import torch.nn.functional as F

from contrastive_lab.device import count_host_syncs
from contrastive_lab.diagnose import diagnose
from contrastive_lab.losses import dino_loss
from contrastive_lab.methods.dino import DINO, DINOHead, dino_views_loss, forward_views, output_entropies, train_dino
from contrastive_lab.models import embed, make_encoder
from conftest import TOY


def cross_entropy(p, q):
    """−Σ_k p_k log q_k for two lists of probabilities."""
    return -sum(pk * math.log(qk) for pk, qk in zip(p, q))


def softmax(xs, t):
    e = [math.exp(x / t) for x in xs]
    return [v / sum(e) for v in e]


def test_dino_loss_by_hand_two_views_one_image():
    # K = 2 outputs, one image, two views. The teacher's view a teaches the student's view b ≠ a.
    student = torch.tensor([[[0.2, -0.1]], [[0.0, 0.3]]])          # (V_s=2, N=1, K=2)
    teacher = torch.tensor([[[0.5, 0.1]], [[-0.2, 0.2]]])          # (V_t=2, N=1, K=2)
    center = torch.tensor([0.1, 0.0])
    p = [softmax([t - c for t, c in zip(teacher[a, 0].tolist(), center.tolist())], 0.04) for a in range(2)]
    q = [softmax(student[b, 0].tolist(), 0.1) for b in range(2)]
    want = (cross_entropy(p[0], q[1]) + cross_entropy(p[1], q[0])) / 2
    assert dino_loss(student, teacher, center).item() == pytest.approx(want, rel=1e-5)


def test_dino_loss_with_more_student_views_averages_every_pair_but_the_views_own():
    # multi-crop: 2 global views (teacher and student) + 2 local views (student only): 2·4 − 2 = 6 pairs
    g = torch.Generator().manual_seed(0)
    student, teacher = torch.randn(4, 5, 7, generator=g), torch.randn(2, 5, 7, generator=g)
    center = torch.randn(7, generator=g)
    pairs = [(a, b) for a in range(2) for b in range(4) if a != b]
    assert len(pairs) == 6
    want = sum(-(F.softmax((teacher[a] - center) / 0.04, -1) * F.log_softmax(student[b] / 0.1, -1)).sum(-1).mean()
               for a, b in pairs) / len(pairs)
    torch.testing.assert_close(dino_loss(student, teacher, center), want)
    # other temperatures, the same pairs
    want = sum(-(F.softmax((teacher[a] - center) / 0.07, -1) * F.log_softmax(student[b] / 0.2, -1)).sum(-1).mean()
               for a, b in pairs) / len(pairs)
    torch.testing.assert_close(dino_loss(student, teacher, center, 0.2, 0.07), want)


def test_a_flat_teacher_costs_at_least_log_k():
    # a uniform target: the cross-entropy is ln K plus the KL to the student's distribution
    k = 16
    student = torch.randn(2, 3, k, generator=torch.Generator().manual_seed(1))
    assert dino_loss(student, torch.zeros(2, 3, k), torch.zeros(k)).item() >= math.log(k)
    assert dino_loss(torch.zeros(2, 3, k), torch.zeros(2, 3, k), torch.zeros(k)).item() == pytest.approx(math.log(k))


def test_no_gradient_reaches_the_teacher_or_the_center_and_the_center_is_not_changed():
    g = torch.Generator().manual_seed(0)
    student = torch.randn(2, 4, 8, generator=g, requires_grad=True)
    teacher = torch.randn(2, 4, 8, generator=g, requires_grad=True)
    center = torch.randn(8, generator=g, requires_grad=True)
    before = center.detach().clone()
    dino_loss(student, teacher, center).backward()
    assert student.grad is not None and student.grad.abs().sum() > 0
    assert teacher.grad is None and center.grad is None
    assert torch.equal(center.detach(), before)


@pytest.mark.parametrize("student, teacher, center, message", [
    ((2, 4, 8), (3, 4, 8), (8,), "the teacher has 3 views but the student 2"),
    ((1, 4, 8), (1, 4, 8), (8,), "at least 2 student views"),
    ((2, 4, 8), (2, 5, 8), (8,), "need the same N images and K"),
    ((2, 4, 8), (2, 4, 8), (7,), r"center of shape \(K,\) = \(8,\)"),
    ((4, 8), (2, 4, 8), (8,), r"student_logits of shape \(views, N, K\)"),
    ((2, 4, 8), (4, 8), (8,), r"teacher_logits of shape \(views, N, K\)"),
    ((2, 4, 8), (2, 4, 8), (5,), r"center of shape \(K,\) = \(8,\), got \(5,\)$"),
    ((2, 4, 8), (2, 4, 8), [0.0] * 8, r"center of shape \(K,\) = \(8,\), got list$"),
])
def test_bad_shapes_get_an_error_that_names_them(student, teacher, center, message):
    center = torch.zeros(*center) if isinstance(center, tuple) else center
    with pytest.raises(ValueError, match=message):
        dino_loss(torch.randn(*student), torch.randn(*teacher), center)


def test_bad_temperatures_and_values_are_refused():
    s, t, c = torch.randn(2, 3, 4), torch.randn(2, 3, 4), torch.zeros(4)
    with pytest.raises(ValueError, match="teacher_temperature must be > 0"):
        dino_loss(s, t, c, teacher_temperature=0.0)
    with pytest.raises(ValueError, match="student_temperature must be > 0"):
        dino_loss(s, t, c, student_temperature=-0.1)
    with pytest.raises(ValueError, match="^center contains NaN"):
        dino_loss(s, t, torch.full((4,), float("nan")))
    nan = torch.full((2, 3, 4), float("nan"))
    with pytest.raises(ValueError, match="^student_logits contains NaN"):
        dino_loss(nan, t, c)
    with pytest.raises(ValueError, match="^teacher_logits contains NaN"):
        dino_loss(s, nan, c)


def test_under_bf16_autocast_the_loss_and_gradient_equal_float32_on_aligned_outputs():
    g = torch.Generator().manual_seed(0)
    teacher = torch.randn(2, 256, 128, generator=g)
    student = teacher.flip(0) + 0.3 * torch.randn(2, 256, 128, generator=g)    # each view near the other's teacher
    center = teacher.mean((0, 1))
    s32 = student.clone().requires_grad_()
    want = dino_loss(s32, teacher, center)
    want.backward()
    s16 = student.clone().requires_grad_()
    with torch.autocast("cpu", dtype=torch.bfloat16):
        got = dino_loss(s16, teacher, center)
    got.backward()
    assert got.dtype == torch.float32
    assert abs(got.item() - want.item()) <= 1e-5 * abs(want.item()), (got.item(), want.item())
    torch.testing.assert_close(s16.grad, s32.grad, rtol=1e-4, atol=1e-9)


# ---------------------------------------------------------------- the model and its trainer
def toy_dino(teacher_temperature=0.04, seed=0):
    torch.manual_seed(seed)
    return DINO(make_encoder(TOY), out_dim=16, hidden_dim=16, bottleneck_dim=8, momentum=0.9,
                teacher_temperature=teacher_temperature)


def toy_images(n=64):
    return torch.rand(n, 3, 16, 16, generator=torch.Generator().manual_seed(0))


def test_the_head_gives_cosines_and_the_teacher_starts_as_a_frozen_copy():
    head = DINOHead(8, out_dim=5, hidden_dim=6, bottleneck_dim=3)
    out = head(torch.randn(10, 8))
    assert out.shape == (10, 5) and out.abs().max() <= 1 + 1e-6
    model = toy_dino()
    assert all(not p.requires_grad for p in model.teacher.parameters())
    for s, t in zip(model.student.parameters(), model.teacher.parameters()):
        assert torch.equal(s, t)
    assert torch.equal(model.center, torch.zeros(16))


def test_the_head_with_batch_norm_still_gives_cosines_and_centres_the_hidden_layers():
    head = DINOHead(8, out_dim=5, hidden_dim=6, bottleneck_dim=3, batch_norm=True)
    assert sum(isinstance(m, torch.nn.BatchNorm1d) for m in head.mlp) == 2
    x = torch.rand(10, 8, generator=torch.Generator().manual_seed(0)) + 5      # features far from 0, like ReLU outputs
    out = head(x)
    assert out.shape == (10, 5) and out.abs().max() <= 1 + 1e-6
    hidden = head.mlp[:2](x)                                                 # first Linear, then BatchNorm (train mode)
    torch.testing.assert_close(hidden.mean(0), torch.zeros(6), atol=1e-5, rtol=0)
    model = DINO(make_encoder(TOY), out_dim=16, hidden_dim=16, bottleneck_dim=8, head_batch_norm=True)
    assert any(isinstance(m, torch.nn.BatchNorm1d) for m in model.teacher.head.mlp)


def test_the_center_is_an_ema_of_the_teachers_batch_mean():
    model = toy_dino()
    model.center_momentum = 0.75
    logits = torch.randn(2, 5, 16)
    model.update_center(logits)
    torch.testing.assert_close(model.center, 0.25 * logits.reshape(10, 16).mean(0))
    model.update_center(logits)
    torch.testing.assert_close(model.center, (0.75 * 0.25 + 0.25) * logits.reshape(10, 16).mean(0))


def test_forward_views_groups_views_of_one_size():
    net = torch.nn.Sequential(torch.nn.AdaptiveAvgPool2d(1), torch.nn.Flatten())
    views = [torch.rand(4, 3, 16, 16), torch.rand(4, 3, 16, 16), torch.rand(4, 3, 8, 8)]
    out = forward_views(net, views)
    assert out.shape == (3, 4, 3)
    torch.testing.assert_close(out[2], views[2].mean((2, 3)))


def test_one_step_updates_the_center_only_with_centring():
    model = toy_dino()
    v1, v2 = toy_images(8), toy_images(8).flip(3)
    dino_views_loss(model, centering=False)(v1, v2)
    assert torch.equal(model.center, torch.zeros(16))
    loss, extras = dino_views_loss(model)(v1, v2)
    assert model.center.abs().sum() > 0
    assert set(extras) == {"entropy of the mean output", "mean entropy per image"}
    assert 0 <= extras["mean entropy per image"] <= extras["entropy of the mean output"] + 1e-6 <= math.log(16) + 1e-5


def test_train_dino_steps_do_not_synchronise_and_the_teacher_takes_no_gradient():
    model = toy_dino()
    before = [p.clone() for p in model.teacher.parameters()]
    with count_host_syncs() as syncs:
        history = train_dino(model, toy_images(), TOY, epochs=2, device="cpu", progress=False)
    assert len(history.loss) == 8
    assert syncs.total <= len(history.loss) // TOY.log_every, dict(syncs.by_op)
    assert all(p.grad is None for p in model.teacher.parameters())
    assert any(not torch.equal(a, b) for a, b in zip(before, model.teacher.parameters()))   # moved by EMA
    assert len(history.metrics["entropy of the mean output"]) == 8


def teacher_entropies(model):
    logits = embed(model.teacher, toy_images(), normalize=False)
    return {k: v.item() for k, v in output_entropies(logits[None], model.center, model.teacher_temperature).items()}


@pytest.mark.parametrize("seed", [0, 1])
def test_without_centring_one_output_dimension_takes_over(seed):
    model = toy_dino(seed=seed)
    history = train_dino(model, toy_images(), TOY, centering=False, epochs=5, device="cpu", progress=False)
    assert teacher_entropies(model)["entropy of the mean output"] < 0.1          # ln 16 ≈ 2.77 if all were used
    assert [f.name for f in diagnose(history, loss="dino", n_outputs=16)] == ["one output dimension takes over"]


@pytest.mark.parametrize("seed", [0, 1])
def test_without_sharpening_every_output_goes_flat(seed):
    model = toy_dino(teacher_temperature=0.1, seed=seed)                          # the student's temperature
    history = train_dino(model, toy_images(), TOY, epochs=5, device="cpu", progress=False)
    assert teacher_entropies(model)["mean entropy per image"] > 0.85 * math.log(16)
    per_image = [v for _, v in history.metrics["mean entropy per image"]]
    assert per_image[-1] > per_image[0]                                         # it drifted towards uniform
    assert [f.name for f in diagnose(history, loss="dino", n_outputs=16)] == ["uniform output"]
