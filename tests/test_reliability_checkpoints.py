"""Checkpoints, and every file this package writes and reads back: a SHA-256 of the payload, one clear
error per fault naming the file, a checkpoint of another run named as such, the run's experiment recorded.

Each test is a case of the reliability probe (shared/reviews/reliability.md, row numbers in the names)."""
import os
import time

import pytest
import torch
import torch.nn as nn

from contrastive_lab.integrity import CorruptFileError, UnsafeFileError, load_checked, payload_sha256, save_checked
from contrastive_lab.train import (CheckpointMismatchError, History, checkpoint_experiment, experiment_differences,
                                   fit, load_checkpoint, read_checkpoint, save_checkpoint)


# ---------------------------------------------------------------- checksums
def test_checksum_covers_values_dtypes_shapes_and_structure():
    base = {"w": torch.arange(4.0), "n": 3, "tags": ["a"]}
    digest = payload_sha256(base)
    assert payload_sha256({"w": torch.arange(4.0), "n": 3, "tags": ["a"]}) == digest
    for changed in ({**base, "w": torch.tensor([0.0, 1.0, 2.0, 3.5])}, {**base, "w": torch.arange(4)},
                    {**base, "w": torch.arange(4.0).view(2, 2)}, {**base, "n": 4}, {**base, "tags": ("a",)}):
        assert payload_sha256(changed) != digest


def test_pickle_refusal_does_not_advise_an_unsafe_load(tmp_path):
    class Planted:
        def __reduce__(self):
            return (os.system, ("echo planted",))

    torch.save({"format": "x", "payload": Planted()}, tmp_path / "planted.pt")
    with pytest.raises(UnsafeFileError, match="planted.pt was not loaded: it holds Python objects") as caught:
        load_checked(tmp_path / "planted.pt", what="checkpoint")
    assert "weights_only" not in str(caught.value)
    assert caught.value.__cause__ is None and caught.value.__suppress_context__   # torch's advice is not chained


# ---------------------------------------------------------------- checkpoints
def _checkpoint(tmp_path, model=None, **kwargs):
    path = tmp_path / "checkpoint.pt"
    save_checkpoint(path, {"model": model or nn.Linear(4, 3)}, None, 1, History(loss=[1.0], epoch_loss=[1.0]),
                    **kwargs)
    return path


def _flip_a_weight_bit(path):
    data = bytearray(path.read_bytes())
    stored = torch.load(path, weights_only=True)["modules"]["model"]["weight"]
    offset = bytes(data).find(stored.numpy().tobytes()[:8])       # where the first weight's bytes are
    assert offset > 0
    data[offset + 3] ^= 0x40                                     # an exponent bit: a weight of ~1e38
    path.write_bytes(bytes(data))


def test_row_120_a_bit_flipped_checkpoint_is_refused_naming_the_file(tmp_path):
    path = _checkpoint(tmp_path)
    _flip_a_weight_bit(path)
    with pytest.raises(CorruptFileError, match=r"checkpoint.pt is damaged: its SHA-256 checksum does not match"):
        load_checkpoint(path, {"model": nn.Linear(4, 3)})


@pytest.mark.parametrize("cut", ["half", "last 50 bytes", "empty"])
def test_row_119_a_truncated_or_empty_checkpoint_gives_one_clear_error(tmp_path, cut):
    path = _checkpoint(tmp_path)
    data = path.read_bytes()
    path.write_bytes({"half": data[:len(data) // 2], "last 50 bytes": data[:-50], "empty": b""}[cut])
    with pytest.raises(CorruptFileError, match=r"checkpoint.pt is (damaged|empty)") as caught:
        load_checkpoint(path, {"model": nn.Linear(4, 3)})
    assert "Delete it" in str(caught.value)


@pytest.mark.parametrize("content", [{"epoch": 1}, torch.zeros(3)])
def test_row_125_a_file_that_is_not_a_checkpoint_is_named_so(tmp_path, content):
    torch.save(content, tmp_path / "other.pt")
    with pytest.raises(CorruptFileError, match="other.pt is not a checkpoint written by this"):
        load_checkpoint(tmp_path / "other.pt", {"model": nn.Linear(4, 3)})


class Wide(nn.Module):
    def __init__(self, width=3):
        super().__init__()
        self.layer = nn.Linear(4, width)


def test_row_121_a_checkpoint_of_another_architecture_belongs_to_another_run(tmp_path):
    path = _checkpoint(tmp_path, model=Wide(3))
    with pytest.raises(CheckpointMismatchError, match=r"belongs to another run: the weights of 'model' do not fit "
                                                      r"this Wide \(other shapes"):
        load_checkpoint(path, {"model": Wide(5)})
    with pytest.raises(CheckpointMismatchError, match="belongs to another run: its 'model' is a Wide, this run's "
                                                      "is a Linear"):
        load_checkpoint(path, {"model": nn.Linear(4, 3)})


def test_experiment_is_recorded_and_its_differences_named(tmp_path):
    experiment = {"method": "simclr", "lr": 0.002, "batch_size": 16, "crop": (0.2, 1.0)}
    path = _checkpoint(tmp_path, experiment=experiment)
    assert checkpoint_experiment(path) == {**experiment, "crop": [0.2, 1.0]}
    assert experiment_differences(checkpoint_experiment(path), experiment) == {}
    changed = {**experiment, "lr": 0.5, "seed": 1}
    assert experiment_differences(checkpoint_experiment(path), changed) == {"lr": (0.002, 0.5), "seed": (None, 1)}
    with pytest.raises(CheckpointMismatchError, match=r"settings differ \(lr: 0.002 in the checkpoint, 0.5 now") \
            as caught:
        load_checkpoint(path, {"model": nn.Linear(4, 3)}, experiment={**experiment, "lr": 0.5})
    assert caught.value.differences == {"lr": (0.002, 0.5)}
    with pytest.raises(TypeError, match="plain JSON data"):
        save_checkpoint(path, {"model": nn.Linear(4, 3)}, None, 1, History(), experiment={"x": torch.ones(1)})


def _tiny_run(tmp_path, checkpoint, epochs=1, experiment=None):
    torch.manual_seed(0)
    model = nn.Linear(4, 1)
    x = torch.randn(16, 4)
    return fit(lambda b: model(b).pow(2).mean(), model.parameters(), lambda e: [x[:8], x[8:]], epochs,
               progress=False, checkpoint=checkpoint, modules={"model": model}, experiment=experiment)


def test_rows_122_124_167_fit_refuses_a_bad_checkpoint_path_before_training(tmp_path, monkeypatch):
    (tmp_path / "run").write_text("a file")
    calls = []
    monkeypatch.setattr(nn.Linear, "forward", lambda self, x: calls.append(1) or x.sum(1, keepdim=True))
    with pytest.raises(NotADirectoryError, match="is a file, not a folder"):
        _tiny_run(tmp_path, tmp_path / "run" / "ckpt")
    with pytest.raises(IsADirectoryError, match="it is a folder"):
        _tiny_run(tmp_path, tmp_path)
    assert calls == []                                              # nothing trained


def test_fit_resumes_from_a_checkpoint_without_extension_and_refuses_another_experiment(tmp_path):
    history = _tiny_run(tmp_path, tmp_path / "ckpt", epochs=1, experiment={"lr": 0.001})
    assert len(read_checkpoint(tmp_path / "ckpt")["history"]["loss"]) == len(history.loss) == 2
    assert len(_tiny_run(tmp_path, tmp_path / "ckpt", epochs=2, experiment={"lr": 0.001}).epoch_loss) == 2
    with pytest.raises(CheckpointMismatchError, match="lr: 0.001 in the checkpoint, 0.5 now"):
        _tiny_run(tmp_path, tmp_path / "ckpt", epochs=3, experiment={"lr": 0.5})


def test_fit_removes_a_killed_saves_temporary_at_the_next_start(tmp_path):
    leftover = tmp_path / ".tmp-abcd1234.pt"                        # today's name, no pid: stale by age
    leftover.write_bytes(b"x" * 100)
    os.utime(leftover, (time.time() - 7200,) * 2)
    _tiny_run(tmp_path, tmp_path / "checkpoint.pt")
    assert sorted(os.listdir(tmp_path)) == ["checkpoint.pt"]


def test_save_checked_round_trip_and_refuses_a_sha_key(tmp_path):
    save_checked({"format": "f", "w": torch.ones(2, dtype=torch.bfloat16)}, tmp_path / "f.pt")
    payload = load_checked(tmp_path / "f.pt", what="file", fmt="f")
    assert payload["w"].dtype == torch.bfloat16 and "sha256" not in payload
    with pytest.raises(ValueError, match="without a 'sha256' key"):
        save_checked({"sha256": "x"}, tmp_path / "g.pt")
    with pytest.raises(FileNotFoundError, match="no file at"):
        load_checked(tmp_path / "missing.pt", what="file")
