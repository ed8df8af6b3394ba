"""MoCo's queue and momentum, the non-contrastive methods, the collapse meters and diagnose."""
import math

import pytest
import torch

from contrastive_lab.diagnose import (diagnose, effective_rank, embedding_std, report, singular_values,
                                      std_ratio)
from contrastive_lab.losses import negative_cosine, vicreg_loss, vicreg_terms
from contrastive_lab.methods.byol import BYOL, SimSiam, byol_loss, simsiam_loss
from contrastive_lab.methods.momentum import KeyQueue, ema_update, frozen_copy
from contrastive_lab.methods.moco import MoCo, moco_loss
from contrastive_lab.models import SmallCNN
from contrastive_lab.train import History, fit

WIDTHS = (4, 8, 8, 8)


# ---------------------------------------------------------------- queue and momentum
def test_queue_is_fifo_and_keeps_its_size():
    q = KeyQueue(size=4, dim=2)
    q.enqueue(torch.tensor([[1.0, 0], [2, 0], [3, 0]]))
    q.enqueue(torch.tensor([[4.0, 0], [5, 0]]))            # wraps: 5 replaces the oldest (1)
    assert q.keys.shape == (4, 2)
    assert q.keys[:, 0].tolist() == [5.0, 2.0, 3.0, 4.0]
    assert q.ptr.item() == 1
    with pytest.raises(ValueError, match=r"shape \(B, 2\)"):
        q.enqueue(torch.zeros(2, 3))
    with pytest.raises(ValueError, match="cannot enqueue 5 keys"):
        q.enqueue(torch.zeros(5, 2))


def test_queue_is_saved_with_the_model():
    assert set(KeyQueue(3, 2).state_dict()) == {"queue", "ptr"}


def test_ema_update_math():
    """Parameters (the Linear's and BatchNorm's scale and shift) move by the EMA; BatchNorm's
    running statistics and its batch counter are copied from the online network."""
    def net(weight, bn_scale, running_mean, batches):
        m = torch.nn.Sequential(torch.nn.Linear(1, 2), torch.nn.BatchNorm1d(2))
        with torch.no_grad():
            m[0].weight.fill_(weight)
            m[1].weight.fill_(bn_scale)
            m[1].running_mean.fill_(running_mean)
            m[1].running_var.fill_(running_mean + 1)
            m[1].num_batches_tracked.fill_(batches)
        return m
    online, target = net(1.0, 2.0, 0.5, 7), net(3.0, 4.0, -2.0, 1)
    ema_update(target, online, momentum=0.9)
    assert target[0].weight.flatten().tolist() == pytest.approx([0.9 * 3.0 + 0.1 * 1.0] * 2)
    assert target[1].weight.tolist() == pytest.approx([0.9 * 4.0 + 0.1 * 2.0] * 2)
    assert target[1].running_mean.tolist() == [0.5, 0.5] and target[1].running_var.tolist() == [1.5, 1.5]
    assert target[1].num_batches_tracked.item() == 7
    ema_update(target, online, momentum=0.0)                 # m = 0: plain copy
    assert all(torch.equal(a, b) for a, b in zip(target.state_dict().values(), online.state_dict().values()))
    with pytest.raises(ValueError, match="momentum must be in"):
        ema_update(target, online, 1.5)


def test_frozen_copy_takes_no_gradient():
    twin = frozen_copy(torch.nn.Linear(2, 2))
    assert not any(p.requires_grad for p in twin.parameters())


def test_moco_step_trains_only_the_query_side_and_fills_the_queue():
    torch.manual_seed(0)
    model = MoCo(SmallCNN(WIDTHS), proj_dim=8, queue_size=16, momentum=0.5)
    with torch.no_grad():                                   # as if the query side had trained a step
        model.query_net.head.net[-1].weight.add_(1.0)
    before_key = model.key_net.head.net[-1].weight.clone()
    v1, v2 = torch.rand(4, 3, 32, 32), torch.rand(4, 3, 32, 32)
    loss = moco_loss(model, 0.2)(v1, v2)
    loss.backward()
    assert all(p.grad is None for p in model.key_net.parameters())
    assert model.query_net.encoder.features[0].weight.grad.abs().sum() > 0
    assert model.queue.ptr.item() == 4
    # the momentum update moved the key side halfway (m = 0.5) towards the query side
    torch.testing.assert_close(model.key_net.head.net[-1].weight, before_key + 0.5)


# ---------------------------------------------------------------- stop-gradient, BYOL
def test_simsiam_stop_gradient_blocks_the_target_branch():
    """A predictor whose output ignores its input (last layer's weight 0) leaves only the target
    branch to carry gradient to the encoder: with stop-gradient none arrives, without it some does."""
    torch.manual_seed(0)
    model = SimSiam(SmallCNN(WIDTHS), proj_dim=8, pred_hidden=4)
    with torch.no_grad():
        model.predictor.net[-1].weight.zero_()
        model.predictor.net[-1].bias.normal_()
    v = torch.rand(4, 3, 32, 32)
    simsiam_loss(model, stop_gradient=True)(v, v.flip(-1)).backward()
    assert model.online.encoder.features[0].weight.grad.abs().max() == 0
    model.zero_grad()
    simsiam_loss(model, stop_gradient=False)(v, v.flip(-1)).backward()
    assert model.online.encoder.features[0].weight.grad.abs().max() > 0


def test_byol_target_gets_no_gradient():
    torch.manual_seed(0)
    model = BYOL(SmallCNN(WIDTHS), proj_dim=8, pred_hidden=4)
    byol_loss(model)(torch.rand(4, 3, 32, 32), torch.rand(4, 3, 32, 32)).backward()
    assert all(p.grad is None for p in model.target.parameters())
    assert model.predictor.net[0].weight.grad.abs().sum() > 0


def test_negative_cosine_by_hand():
    p = torch.tensor([[1.0, 0.0], [0.0, 1.0]])
    t = torch.tensor([[2.0, 0.0], [0.0, -1.0]])
    assert negative_cosine(p, t).item() == pytest.approx((0.0 + 4.0) / 2)


def test_vicreg_terms_by_hand():
    z = torch.tensor([[1.0, 0.0], [-1.0, 0.0]])
    # invariance 0; dim 0 std = √2 ≥ 1 → 0, dim 1 std 0 → relu(1 − √eps) per branch; covariance 0
    terms = vicreg_terms(z, z, eps=0.0)
    assert terms["invariance"].item() == 0.0
    assert terms["variance"].item() == pytest.approx(2 * 0.5)
    assert terms["covariance"].item() == pytest.approx(0.0)
    loss = vicreg_loss(z, z, eps=0.0)
    assert loss.ndim == 0 and loss.item() == pytest.approx(25 * 1.0)


def test_vicreg_terms_by_hand_with_correlated_dimensions():
    # both branches have mean 0 and (unbiased, N − 1 = 3) covariance [[10/3, 2/3], [2/3, 2/3]]
    # and [[2/3, 2/3], [2/3, 10/3]]: one std of √(2/3) < 1 each, one off-diagonal 2/3 each
    z1 = torch.tensor([[1.0, 1.0], [-1.0, -1.0], [2.0, 0.0], [-2.0, 0.0]])
    z2 = torch.tensor([[1.0, 1.0], [-1.0, -1.0], [0.0, 2.0], [0.0, -2.0]])
    terms = vicreg_terms(z1, z2, eps=0.0)
    # rows 3 and 4 differ by (2, −2) and (−2, 2): squared distances 8 + 8 over N·D = 8 entries
    assert terms["invariance"].item() == pytest.approx(2.0)
    # each branch: (0 + (1 − √(2/3))) / 2 dimensions
    assert terms["variance"].item() == pytest.approx(1 - math.sqrt(2 / 3))
    # each branch: 2 off-diagonal entries (2/3)² summed, / D = 2 → 4/9
    assert terms["covariance"].item() == pytest.approx(8 / 9)
    loss = vicreg_loss(z1, z2, eps=0.0, invariance_weight=25, variance_weight=25, covariance_weight=1)
    assert loss.item() == pytest.approx(25 * 2.0 + 25 * (1 - math.sqrt(2 / 3)) + 8 / 9)
    assert vicreg_loss(z1, z2, eps=0.0, invariance_weight=0, variance_weight=0).item() == pytest.approx(8 / 9)


# ---------------------------------------------------------------- meters
def test_meters_on_all_equal_embeddings_say_collapsed():
    z = torch.ones(100, 16)
    assert embedding_std(z) == pytest.approx(0.0, abs=1e-6)
    assert std_ratio(z) < 0.01
    assert effective_rank(z) == 0.0


def test_meters_on_isotropic_gaussian_say_healthy():
    z = torch.randn(4000, 16, generator=torch.Generator().manual_seed(0))
    assert embedding_std(z) == pytest.approx(1 / math.sqrt(16), rel=0.05)
    assert std_ratio(z) == pytest.approx(1.0, rel=0.05)
    assert effective_rank(z) > 14


def test_effective_rank_of_rank_two_data_is_two():
    g = torch.Generator().manual_seed(0)
    basis = torch.linalg.qr(torch.randn(16, 2, generator=g)).Q.T        # 2 orthonormal directions
    z = torch.randn(2000, 2, generator=g) @ basis
    assert effective_rank(z) == pytest.approx(2.0, abs=0.3)
    assert singular_values(z)[2:].max() < 1e-3 * singular_values(z)[0]


# ---------------------------------------------------------------- diagnose
def test_diagnose_names_each_signature():
    stuck = History(loss=[math.log(2 * 64 - 1)] * 50)
    assert [f.name for f in diagnose(stuck, loss="nt_xent", batch_size=64)] == ["nothing learned"]
    queue = History(loss=[math.log(4097)] * 50)
    assert [f.name for f in diagnose(queue, loss="info_nce", n_negatives=4096)] == ["nothing learned"]
    margin = History(loss=[0.2] * 50)
    assert [f.name for f in diagnose(margin, loss="triplet", margin=0.2)] == ["triplet loss stuck at the margin"]
    nan = History(loss=[3.0, 2.5, float("nan")])
    assert [f.name for f in diagnose(nan, loss="nt_xent", batch_size=64)] == ["NaN loss"]
    assert [f.name for f in diagnose(embeddings=torch.ones(50, 8) + 1e-4 * torch.randn(50, 8))] == \
        ["complete collapse"]
    g = torch.Generator().manual_seed(0)
    thin = torch.randn(500, 1, generator=g) @ torch.randn(1, 64, generator=g) + torch.randn(64, generator=g) * 0
    thin = thin + 0.01 * torch.randn(500, 64, generator=g) + 3 * torch.randn(500, 64, generator=g)[:, :1]
    assert "dimensional collapse" in [f.name for f in diagnose(embeddings=torch.cat([thin, -thin]))]


def test_diagnose_healthy_run_finds_nothing():
    healthy = History(loss=[4.8 - 0.03 * i for i in range(60)])
    z = torch.randn(500, 16, generator=torch.Generator().manual_seed(0))
    assert diagnose(healthy, z, loss="nt_xent", batch_size=64) == []
    assert report([]) == "no known failure signature found"


def test_fit_attaches_history_to_a_nan_error():
    w = torch.nn.Parameter(torch.ones(1))
    with pytest.raises(FloatingPointError) as info:
        fit(lambda b: w * b, [w], lambda e: [torch.tensor(1.0), torch.tensor(float("nan"))], 1, progress=False)
    assert [f.name for f in diagnose(info.value.history)] == ["NaN loss"]
