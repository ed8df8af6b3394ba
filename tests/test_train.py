"""The fit loop: it learns, logs, stops on NaN, and resumes from an atomic checkpoint."""
import os

import pytest
import torch
import torch.nn as nn

from contrastive_lab.train import CheckpointMismatchError, History, fit, load_checkpoint, save_checkpoint


def regression_task(init_seed=0):
    g = torch.Generator().manual_seed(0)
    x = torch.randn(64, 3, generator=g)
    y = x @ torch.tensor([1.0, -2.0, 0.5])
    torch.manual_seed(init_seed)
    model = nn.Linear(3, 1)

    def step(idx):
        return ((model(x[idx]).squeeze(1) - y[idx]) ** 2).mean()

    def batches(epoch):
        return torch.arange(64).split(16)

    return model, step, batches


def test_fit_lowers_the_loss_and_logs_history():
    model, step, batches = regression_task()
    calls = []
    h = fit(step, model.parameters(), batches, epochs=5, lr=0.1, progress=False,
            evaluate=lambda: {"w0": model.weight[0, 0].item()}, eval_every=2,
            after_step=lambda: calls.append(1))
    assert len(h.loss) == 20 and len(h.epoch_loss) == 5 and len(calls) == 20
    assert h.epoch_loss[-1] < 0.2 * h.epoch_loss[0]
    assert [e for e, _ in h.metrics["w0"]] == [2, 4, 5]      # every 2 epochs and the last


def test_fit_names_a_nan_loss():
    model = nn.Linear(2, 1)
    with pytest.raises(FloatingPointError, match="loss became nan at epoch 1, step 1"):
        fit(lambda b: model(b).sum() * float("nan"), model.parameters(),
            lambda e: [torch.ones(1, 2)], 1, progress=False)


def test_resume_continues_to_the_same_result(tmp_path):
    ckpt = tmp_path / "run.pt"
    model_a, step_a, batches = regression_task()
    fit(step_a, model_a.parameters(), batches, 4, lr=0.05, progress=False)

    model_b, step_b, _ = regression_task()
    opt = torch.optim.Adam(model_b.parameters(), lr=0.05)
    fit(step_b, opt, batches, 2, progress=False, checkpoint=ckpt, modules={"model": model_b})
    model_c, step_c, _ = regression_task(init_seed=1)          # fresh weights, then resumed
    opt_c = torch.optim.Adam(model_c.parameters(), lr=0.05)
    h = fit(step_c, opt_c, batches, 4, progress=False, checkpoint=ckpt, modules={"model": model_c})
    assert len(h.epoch_loss) == 4
    torch.testing.assert_close(model_c.weight, model_a.weight)


def test_checkpoint_round_trip_and_weights_only(tmp_path):
    model = nn.Linear(2, 2)
    h = History(loss=[1.0, 0.5], epoch_loss=[0.75], metrics={"knn": [(1, 0.3)]})
    save_checkpoint(tmp_path / "c.pt", {"m": model}, None, 1, h)
    other = nn.Linear(2, 2)
    epoch, h2 = load_checkpoint(tmp_path / "c.pt", {"m": other})
    assert epoch == 1 and h2.metrics == {"knn": [(1, 0.3)]}
    torch.testing.assert_close(other.weight, model.weight)
    with pytest.raises(CheckpointMismatchError, match="belongs to another run: it has no state for"):
        load_checkpoint(tmp_path / "c.pt", {"other": other})


def test_interrupted_save_leaves_old_checkpoint_intact(tmp_path, monkeypatch):
    path = tmp_path / "c.pt"
    model = nn.Linear(2, 2)
    save_checkpoint(path, {"m": model}, None, 1, History())
    good = path.read_bytes()

    def broken_save(obj, f):
        with open(f, "wb") as fh:
            fh.write(b"half")
        raise KeyboardInterrupt

    monkeypatch.setattr(torch, "save", broken_save)
    with pytest.raises(KeyboardInterrupt):
        save_checkpoint(path, {"m": model}, None, 2, History())
    assert path.read_bytes() == good
    assert os.listdir(tmp_path) == ["c.pt"]
