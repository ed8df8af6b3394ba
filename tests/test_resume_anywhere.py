"""Resuming anywhere: on a CPU after a GPU, on fewer or more processes, inside an epoch.

- A checkpoint holds the random state of every process, for the device it trained on
  (not one state per visible GPU). Resumed where a state cannot be used (a CUDA
  generator on a CPU, a process that did not exist), it is re-seeded and ONE line says so.
  The GPU checkpoints are simulated: states of the size CUDA's Philox generator has.
- `checkpoint_every_s`: a save inside an epoch resumes at that step, and the resumed run
  repeats the uninterrupted one to the bit (CPU), as the per-epoch saves do.
- Two real processes on gloo (tests/test_resume_gloo.py has the spawn): 2 → 1 and 1 → 2.
"""
import pytest
import torch

from contrastive_lab import train
from contrastive_lab.integrity import save_checked
from contrastive_lab.methods.simclr import SimCLR, train_simclr
from contrastive_lab.models import make_encoder
from contrastive_lab.profiles import QUICK
from contrastive_lab.train import random_state, read_checkpoint, set_random_state

TOY = QUICK.replace(cnn_widths=(4, 8, 8, 8), proj_dim=8, batch_size=8, channels_last=False, log_every=2)
CUDA_STATE = torch.zeros(16, dtype=torch.uint8)          # a CUDA (Philox) generator's state: seed + offset


def images(n=48):
    return torch.rand(n, 3, 16, 16, generator=torch.Generator().manual_seed(0))


def simclr_run(tmp_path=None, **kw):
    torch.manual_seed(0)
    model = SimCLR(make_encoder(TOY), 8)
    if tmp_path is not None:
        kw["checkpoint"] = tmp_path / "run.pt"
    return train_simclr(model, images(), TOY, device="cpu", progress=False, epochs=kw.pop("epochs", 3), **kw)


def as_if_saved_on_gpus(path, n_gpus):
    """Rewrite a CPU checkpoint as n_gpus processes on cuda:0 … cuda:n−1 would have written it."""
    state = read_checkpoint(path)
    state["random"] = [{"device": f"cuda:{r}", "cpu": state["random"][0]["cpu"], "device_rng": CUDA_STATE,
                        "generators": {name: {"device": "cuda", "state": CUDA_STATE}
                                       for name in state["random"][0]["generators"]}} for r in range(n_gpus)]
    save_checked(state, path)


def test_a_checkpoint_of_eight_gpus_resumes_on_the_cpu_and_says_what_it_reseeded(tmp_path, capsys):
    simclr_run(tmp_path, epochs=1)
    as_if_saved_on_gpus(tmp_path / "run.pt", 8)
    capsys.readouterr()
    history = simclr_run(tmp_path, epochs=2)
    lines = [line for line in capsys.readouterr().out.splitlines() if line.startswith("resuming")]
    assert len(lines) == 1, lines
    line = lines[0]
    assert "saved by 8 process(es) on cuda, resumed by cpu" in line
    assert "generator 'order'" in line and "generator 'views'" in line and "processes 1–7" in line
    assert "differ from an uninterrupted run's" in line
    assert len(history.loss) == 2 * 6 and len(history.epoch_loss) == 2


def test_an_old_checkpoint_with_every_visible_gpus_state_resumes_on_the_cpu(tmp_path, capsys):
    """The previous format: torch_rng, one cuda_rng per visible GPU, generator states without
    their device. Restoring a CUDA generator's state into a CPU generator used to raise."""
    simclr_run(tmp_path, epochs=1)
    state = read_checkpoint(tmp_path / "run.pt")
    rank0 = state.pop("random")[0]
    state.pop("in_epoch")
    state.update(torch_rng=rank0["cpu"], cuda_rng=[CUDA_STATE] * 8,
                 generators={name: CUDA_STATE for name in rank0["generators"]})
    save_checked(state, tmp_path / "run.pt")
    history = simclr_run(tmp_path, epochs=2)
    assert len(history.epoch_loss) == 2
    assert "re-seeded" in capsys.readouterr().out


def test_resuming_on_the_same_device_restores_everything_silently(tmp_path, capsys):
    simclr_run(tmp_path, epochs=1)
    capsys.readouterr()
    simclr_run(tmp_path, epochs=2)
    assert "resuming" not in capsys.readouterr().out


class FakeCuda:
    """torch.cuda's random-state functions, recorded instead of run (there is no GPU here)."""

    def __init__(self, monkeypatch):
        self.calls = []
        monkeypatch.setattr(torch.cuda, "set_rng_state", lambda state, device=None: self.calls.append(("set", state)))
        monkeypatch.setattr(torch.cuda, "manual_seed", lambda seed: self.calls.append(("seed", seed)))


def test_a_gpu_restores_a_gpu_state_and_reseeds_after_a_cpu_one(monkeypatch):
    cuda = FakeCuda(monkeypatch)
    on_gpu = {"device": "cuda:3", "cpu": torch.get_rng_state(), "device_rng": CUDA_STATE, "generators": {}}
    assert set_random_state(on_gpu, "cuda:0") == []
    assert cuda.calls == [("set", CUDA_STATE)]                  # another GPU of the same kind: restored
    on_cpu = random_state("cpu")
    reseeded = set_random_state(on_cpu, "cuda:0", salt="x")
    assert reseeded == ["cuda's generator (saved on cpu)"]
    assert cuda.calls[-1][0] == "seed"
    again = FakeCuda(monkeypatch)
    set_random_state(on_cpu, "cuda:0", salt="x")
    assert again.calls == cuda.calls[-1:]                       # the same resume re-seeds the same way


def test_a_process_without_saved_state_is_reseeded_deterministically():
    g = torch.Generator().manual_seed(5)
    assert set_random_state(None, "cpu", {"g": g}, salt="run/rank3") == [
        "all of it (the checkpoint holds none for this process)"]
    first = (torch.rand(2), torch.rand(2, generator=g))
    set_random_state(None, "cpu", {"g": g}, salt="run/rank3")
    assert all(torch.equal(a, b) for a, b in zip(first, (torch.rand(2), torch.rand(2, generator=g))))


# ---------------------------------------------------------------- saves inside an epoch
class Disconnect(Exception):
    pass


def test_a_save_inside_an_epoch_resumes_at_that_step_and_repeats_the_uninterrupted_run(tmp_path, monkeypatch):
    whole = simclr_run(epochs=2)                                    # 6 steps an epoch, reads every 2
    real_step = train.training_step
    count = {"steps": 0}

    def disconnect_at_step_10():
        count["steps"] += 1
        if count["steps"] == 10:                                  # epoch 2, step 4: saved after step 8
            raise Disconnect
        return real_step()
    monkeypatch.setattr(train, "training_step", disconnect_at_step_10)
    with pytest.raises(Disconnect):
        simclr_run(tmp_path, epochs=2, checkpoint_every_s=1e-9)      # save at every read
    saved = read_checkpoint(tmp_path / "run.pt")
    assert saved["epoch"] == 1 and saved["in_epoch"]["steps"] == 2 and len(saved["history"]["loss"]) == 8
    monkeypatch.setattr(train, "training_step", real_step)
    torch.manual_seed(123)                                         # the global state moved on meanwhile
    resumed = simclr_run(tmp_path, epochs=2, checkpoint_every_s=1e-9)
    assert resumed.loss == whole.loss                              # to the bit
    assert resumed.epoch_loss == whole.epoch_loss


def test_checkpoint_every_s_must_be_positive(tmp_path):
    with pytest.raises(ValueError, match="checkpoint_every_s must be > 0"):
        simclr_run(tmp_path, epochs=1, checkpoint_every_s=0)


def test_the_course_models_checkpoint_to_the_folder_the_learner_names(tmp_path, monkeypatch):
    from contrastive_lab.data import load_image_dataset
    from contrastive_lab.methods import course_models

    monkeypatch.setenv("CLAB_CHECKPOINT_DIR", str(tmp_path / "drive"))
    monkeypatch.setenv("CLAB_DATA_DIR", str(tmp_path / "data"))
    seen = {}
    monkeypatch.setattr(course_models, "train_simclr", lambda *a, **kw: seen.update(kw) or train.History([1.0], [1.0]))
    data = load_image_dataset("cluttered_digits", 64, 16, n_val=16)
    course_models.course_simclr(TOY, data, "cpu", epochs=1)
    assert seen["checkpoint"].parent == tmp_path / "drive" and seen["checkpoint"].name.startswith("simclr-")
    assert seen["checkpoint_every_s"] == train.CHECKPOINT_EVERY_S
    (tmp_path / "file").write_text("")
    monkeypatch.setenv("CLAB_CHECKPOINT_DIR", str(tmp_path / "file"))
    with pytest.raises(ValueError, match="is a file"):
        train.checkpoint_folder()


def test_simclr_has_its_own_epochs_in_the_full_profile_only():
    from contrastive_lab.profiles import FULL
    assert FULL.epochs_of("simclr") == 300 and FULL.epochs_of("moco") == FULL.epochs == 100
    assert QUICK.epochs_of("simclr") == QUICK.epochs == 12 and QUICK.simclr_epochs is None
    short = FULL.replace(epochs=3)                                 # a shortened run stays short
    assert short.epochs_of("simclr") == 3
    assert FULL.replace(epochs=3, simclr_epochs=9).epochs_of("simclr") == 9
    assert FULL.replace(batch_size=8).epochs_of("simclr") == 300
