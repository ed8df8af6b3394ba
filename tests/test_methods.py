"""SimCLR and the supervised baseline: what flows where, and that a few steps learn."""
import pytest
import torch

from contrastive_lab.augment import AugmentConfig
from contrastive_lab.data import make_cluttered_digits
from contrastive_lab.evaluate import knn_monitor
from contrastive_lab.methods.simclr import SimCLR, simclr_step, train_simclr
from contrastive_lab.methods.supervised import accuracy, train_supervised
from contrastive_lab.models import SmallCNN
from contrastive_lab.profiles import QUICK

TINY = QUICK.replace(cnn_widths=(4, 8, 8, 8), batch_size=16, epochs=2, eval_every=1, channels_last=False)


def test_simclr_step_gives_gradient_to_encoder_and_head():
    model = SimCLR(SmallCNN((4, 8, 8, 8)), proj_dim=8)
    x, _ = make_cluttered_digits(8, seed=0)
    loss = simclr_step(model, AugmentConfig(), 0.5, torch.Generator().manual_seed(0))(x)
    loss.backward()
    assert model.encoder.features[0].weight.grad.abs().sum() > 0
    assert model.head.net[-1].weight.grad.abs().sum() > 0
    assert model(x).shape == (8, 8)


def test_train_simclr_runs_and_logs(tmp_path):
    torch.manual_seed(0)
    x, y = make_cluttered_digits(64, seed=0)
    x = x[:, :, ::2, ::2]
    model = SimCLR(SmallCNN(TINY.cnn_widths), proj_dim=8)
    before = [p.clone() for p in model.parameters()]
    monitor = knn_monitor(model.encoder, x, y, x[:16], y[:16], k=3)
    h = train_simclr(model, x, TINY, device="cpu", progress=False, evaluate=monitor)
    assert len(h.loss) == 2 * (64 // 16) and [e for e, _ in h.metrics["knn"]] == [1, 2]
    assert all(torch.isfinite(torch.tensor(h.loss)))
    assert all(not torch.equal(b, p) for b, p in zip(before, model.parameters()))   # every tensor trained
    assert h.metrics["knn"][-1][1] == monitor()["knn"]          # the last score is the final encoder's


def test_supervised_baseline_fits_a_small_set():
    torch.manual_seed(0)
    x, y = make_cluttered_digits(64, seed=0)
    x = x[:, :, ::2, ::2]                       # 16×16 keeps the test fast
    clf, h = train_supervised(SmallCNN((8, 16, 32, 32)), x, y, TINY.replace(epochs=30), augment=None,
                              device="cpu", progress=False, lr=1e-2)
    assert h.epoch_loss[-1] < h.epoch_loss[0]
    assert accuracy(clf, x, y) > 0.5           # 10 classes: chance is 0.1


def test_accuracy_by_hand_in_batches_and_mode_restored():
    """A classifier that predicts the brighter of two pixels: 3 of 5 labels agree. Batches of 2
    (the last one short) must add up; uint8 images are read as 0–255 → [0, 1]."""
    clf = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(2, 2, bias=False))
    with torch.no_grad():
        clf[1].weight.copy_(torch.eye(2))
    x = torch.tensor([[0.9, 0.1], [0.2, 0.8], [0.6, 0.4], [0.3, 0.7], [0.55, 0.45]]).view(5, 1, 1, 2)
    y = torch.tensor([0, 1, 1, 0, 0])                    # predictions 0, 1, 0, 1, 0 → 3 right
    clf.train()
    assert accuracy(clf, x, y, batch_size=2) == pytest.approx(3 / 5)
    assert clf.training
    assert accuracy(clf.eval(), (x * 255).round().to(torch.uint8), y, batch_size=4) == pytest.approx(3 / 5)
    assert not clf.training
    assert accuracy(clf, x, 1 - y) == pytest.approx(2 / 5)


def test_full_profile_path_runs_on_cpu_at_toy_size():
    """The GPU recipe (ResNet-18 CIFAR stem, bf16 flag, channels_last) stays runnable anywhere:
    on CPU autocast is a no-op, so only the sizes differ."""
    from contrastive_lab.models import make_encoder
    from contrastive_lab.profiles import FULL

    toy = FULL.replace(batch_size=8, epochs=1, compile=False)   # compiling ResNet-18 on a CPU takes minutes
    torch.manual_seed(0)
    x, _ = make_cluttered_digits(16, seed=0)
    model = SimCLR(make_encoder(toy), toy.proj_dim)
    before = model.encoder.state_dict()["conv1.weight"].clone()
    x = x[:, :, ::2, ::2]
    h = train_simclr(model, x, toy, device="cpu", progress=False)
    assert len(h.loss) == 2 and all(torch.isfinite(torch.tensor(h.loss)))
    assert not torch.equal(before, model.encoder.state_dict()["conv1.weight"])   # the stem trained


def test_notebook_07_methods_run_on_the_full_profile_recipe_at_toy_size():
    """BYOL, SimSiam and VICReg as notebook 07 builds them (pred_hidden = 4 · proj_dim) on the
    full profile's ResNet-18: one toy epoch each on CPU, finite losses, the target network moved."""
    from contrastive_lab.methods.byol import BYOL, SimSiam, train_byol, train_simsiam
    from contrastive_lab.methods.vicreg import train_vicreg
    from contrastive_lab.models import make_encoder
    from contrastive_lab.profiles import FULL

    toy = FULL.replace(batch_size=8, epochs=1, compile=False)   # compiling ResNet-18 on a CPU takes minutes
    torch.manual_seed(0)
    x = make_cluttered_digits(16, seed=0)[0][:, :, ::2, ::2]
    byol = BYOL(make_encoder(toy), toy.proj_dim, pred_hidden=4 * toy.proj_dim)
    simsiam = SimSiam(make_encoder(toy), toy.proj_dim, pred_hidden=4 * toy.proj_dim)
    vicreg = SimCLR(make_encoder(toy), toy.proj_dim)
    stems = [m.encoder.conv1.weight.clone() for m in (byol, simsiam, vicreg)]
    before = [p.clone() for p in byol.target.parameters()]
    runs = [train_byol(byol, x, toy, device="cpu", progress=False),
            train_simsiam(simsiam, x, toy, device="cpu", progress=False),
            train_vicreg(vicreg, x, toy, device="cpu", progress=False)]
    for h, model, stem in zip(runs, (byol, simsiam, vicreg), stems):
        assert len(h.loss) == 2 and all(torch.isfinite(torch.tensor(h.loss)))
        assert not torch.equal(stem, model.encoder.conv1.weight)             # each encoder trained
    # BYOL's target moved by the EMA, yet is not a copy of the online network
    assert any(not torch.equal(b, p) for b, p in zip(before, byol.target.parameters()))
    assert not torch.equal(byol.target.encoder.conv1.weight, byol.online.encoder.conv1.weight)
