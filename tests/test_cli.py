"""The command-line trainer: torchrun with 2 processes, resumed by 1; your own images; clear errors."""
import json
import os
import subprocess
import sys

import pytest
import torch
from PIL import Image

from contrastive_lab import cli
from contrastive_lab.data.folder import load_image_folder

TINY = ["--profile", "quick", "--n-train", "64", "--device", "cpu", "--no-progress"]


def run_torchrun(args, nproc=2, timeout=240):
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", str(nproc),
           "-m", "contrastive_lab.cli", *args]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, env=env)


def test_two_processes_write_a_checkpoint_that_one_process_resumes(tmp_path):
    out = tmp_path / "run"
    done = run_torchrun(["train", "simclr", *TINY, "--batch-size", "8", "--epochs", "1", "--out", str(out)])
    assert done.returncode == 0, done.stderr[-3000:]
    assert done.stdout.count("simclr on 2 process(es) (gloo, cpu)") == 1        # rank 0 alone speaks
    two = json.loads((out / "history.json").read_text())
    assert (two["world_size"], two["global_batch"], two["negatives_per_query"]) == (2, 16, 30)
    assert len(two["loss"]) == 64 // 16 and (out / "checkpoint.pt").exists()

    code = cli.main(["train", "simclr", *TINY, "--batch-size", "16", "--epochs", "2", "--out", str(out)])
    assert code == 0
    one = json.loads((out / "history.json").read_text())
    assert one["world_size"] == 1 and len(one["epoch_loss"]) == 2
    assert one["loss"][:4] == two["loss"] and len(one["loss"]) == 8     # epoch 1 from the checkpoint, epoch 2 new


def test_the_export_is_what_notebook_12_loads(tmp_path):
    assert cli.main(["train", "byol", *TINY, "--batch-size", "16", "--epochs", "1", "--out", str(tmp_path)]) == 0
    served = cli.load_run_encoder(tmp_path / "encoder.pt")
    assert served.version == "byol-quick-seed0" and served.meta["dropped"]            # head, predictor, target
    z = served(torch.rand(5, 3, 32, 32))
    assert z.shape == (5, 128)
    torch.testing.assert_close(z.norm(dim=1), torch.ones(5))


def test_clip_exports_its_image_tower(tmp_path):
    assert cli.main(["train", "clip", *TINY, "--batch-size", "16", "--epochs", "1", "--out", str(tmp_path)]) == 0
    served = cli.load_run_encoder(tmp_path / "encoder.pt")
    assert served.embedding_dim == 64 and served.meta["architecture"]["method"] == "clip"


def test_learning_rate_scaling_rules():
    assert cli.scaled_lr(1e-3, 1024, 256, "none") == 1e-3
    assert cli.scaled_lr(1e-3, 1024, 256, "linear") == pytest.approx(4e-3)
    assert cli.scaled_lr(1e-3, 1024, 256, "sqrt") == pytest.approx(2e-3)


def test_a_half_set_world_is_a_clear_error(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("WORLD_SIZE", "2")
    monkeypatch.delenv("RANK", raising=False)
    assert cli.main(["train", "simclr", *TINY, "--out", str(tmp_path)]) == 2
    assert "WORLD_SIZE is set but RANK is not" in capsys.readouterr().err


def test_sync_batchnorm_on_cpu_is_a_clear_error(tmp_path, capsys):
    assert cli.main(["train", "simclr", *TINY, "--sync-bn", "--out", str(tmp_path)]) == 2
    assert "SyncBatchNorm runs on CUDA GPUs only" in capsys.readouterr().err


def test_the_help_shows_the_multi_node_command_lines(capsys):
    with pytest.raises(SystemExit):
        cli.main(["train", "--help"])
    help_text = capsys.readouterr().out
    assert "--nproc_per_node" in help_text and "#SBATCH --nodes=4" in help_text


def test_clip_refuses_an_image_folder(tmp_path, capsys):
    assert cli.main(["train", "clip", *TINY, "--data", str(tmp_path), "--out", str(tmp_path / "o")]) == 2
    assert "CLIP trains on image–caption pairs" in capsys.readouterr().err


# ---------------------------------------------------------------- your own images (ImageFolder)
def save(path, colour=(200, 30, 30), size=(20, 12)):
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new("RGB", size, colour).save(path)


def test_an_image_folder_loads_as_uint8_images_with_folder_labels(tmp_path):
    save(tmp_path / "cats" / "a.png")
    save(tmp_path / "cats" / "b.jpg", (10, 20, 250))
    save(tmp_path / "dogs" / "c.png", (0, 255, 0), size=(7, 40))
    x, y, classes = load_image_folder(tmp_path, image_size=16)
    assert x.shape == (3, 3, 16, 16) and x.dtype == torch.uint8
    assert y.tolist() == [0, 0, 1] and classes == ["cats", "dogs"]
    assert x[2, 1].float().mean() > 250 and x[2, 0].float().mean() < 5        # the green one, resized


def test_the_cli_trains_on_an_image_folder(tmp_path):
    for i in range(32):
        save(tmp_path / "data" / ("a" if i % 2 else "b") / f"{i}.png", (8 * i, 255 - 8 * i, 100))
    code = cli.main(["train", "simclr", "--profile", "quick", "--device", "cpu", "--no-progress", "--epochs", "1",
                     "--batch-size", "8", "--image-size", "24", "--data", str(tmp_path / "data"),
                     "--out", str(tmp_path / "run")])
    assert code == 0
    served = cli.load_run_encoder(tmp_path / "run" / "encoder.pt")
    assert served.meta["preprocessing"]["image_size"] == [24, 24]


@pytest.mark.parametrize("layout, message", [
    ("missing", "no such folder"),
    ("file", "not a folder"),
    ("empty", "no images found"),
    ("loose", "the images must be in sub-folders"),
    ("no_images", "no images found"),
    ("corrupt", "cannot read image"),
])
def test_a_folder_that_cannot_be_used_is_named_with_the_fix(tmp_path, layout, message):
    folder = tmp_path / "data"
    if layout == "file":
        folder.write_text("not a folder")
    elif layout == "empty":
        folder.mkdir()
    elif layout == "loose":
        save(folder / "x.png")
    elif layout == "no_images":
        (folder / "cats").mkdir(parents=True)
        (folder / "cats" / "notes.txt").write_text("hello")
    elif layout == "corrupt":
        save(folder / "cats" / "good.png")
        (folder / "cats" / "bad.png").write_bytes(b"not a png")
    with pytest.raises(ValueError, match=message):
        load_image_folder(folder)


def test_the_cli_reports_a_bad_folder_and_exits_2(tmp_path, capsys):
    (tmp_path / "data").mkdir()
    code = cli.main(["train", "simclr", *TINY, "--data", str(tmp_path / "data"), "--out", str(tmp_path / "o")])
    assert code == 2 and "no images found" in capsys.readouterr().err
