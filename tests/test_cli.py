"""The command-line trainer: torchrun with 2 processes, resumed by 1; your own images; clear errors."""
import json
import os
import re
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
    assert re.fullmatch(r"byol-quick-seed0-[0-9a-f]{12}", served.version)              # the run's own tag
    assert served.meta["dropped"]                                                      # head, predictor, target
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


def test_two_processes_train_moco_with_global_batchnorm_shuffle_bn_and_symmetric_views(tmp_path):
    """--sync-bn is GlobalBatchNorm (it runs on gloo too); MoCo shuffles its keys across the
    processes and takes --symmetric: both views' keys are queued."""
    out = tmp_path / "moco"
    done = run_torchrun(["train", "moco", *TINY, "--batch-size", "8", "--epochs", "1", "--queue-size", "64",
                         "--sync-bn", "--symmetric", "--out", str(out)])
    assert done.returncode == 0, done.stderr[-3000:]
    record = json.loads((out / "history.json").read_text())
    assert record["status"] == "done" and record["experiment"]["model"]["symmetric"] is True
    assert len(record["loss"]) == 64 // 16
    state = torch.load(out / "checkpoint.pt", weights_only=True)
    assert "key_shuffle" in state["random"][1]["generators"] and len(state["random"]) == 2


def test_symmetric_is_moco_only(tmp_path, capsys):
    assert cli.main(["train", "simclr", *TINY, "--symmetric", "--out", str(tmp_path)]) == 2
    assert "--symmetric is MoCo's option" in capsys.readouterr().err


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


# ---------------------------------------------------------------- nonsense is refused in one line, exit status 2
def one_error_line_of(err: str) -> str:
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), lines
    return lines[0]


def one_error_line(capsys) -> str:
    return one_error_line_of(capsys.readouterr().err)


QUICK = ["--profile", "quick", "--device", "cpu", "--no-progress", "--epochs", "1"]


@pytest.mark.parametrize("extra, message", [
    (["--lr", "0"], "--lr must be a number > 0, got 0.0"),
    (["--lr", "inf"], "--lr must be a number > 0, got inf"),
    (["--lr", "nan"], "--lr must be a number > 0, got nan"),
    (["--batch-size", "0"], "--batch-size must be at least 1, got 0"),
    (["--global-batch-size", "0"], "--global-batch-size must be at least 1, got 0"),
    (["--n-train", "0"], "--n-train must be at least 1, got 0"),
    (["--version", ""], "--version must not be empty"),
    (["--device", "tpu9"], "--device 'tpu9' is not a device name"),
    (["--n-train", "8", "--batch-size", "16"], "global batch of 16 images .* but there are only 8"),
])
def test_nonsense_settings_are_refused_in_one_line(tmp_path, capsys, extra, message):
    out = tmp_path / "run"
    assert cli.main(["train", "simclr", *QUICK, "--n-train", "32", *extra, "--out", str(out)]) == 2
    assert re.search(message, one_error_line(capsys))
    assert not out.exists()                                   # nothing trained, nothing written


def test_an_out_that_is_a_file_is_refused_and_kept(tmp_path, capsys):
    (tmp_path / "notes.txt").write_text("mine")
    assert cli.main(["train", "simclr", *TINY, "--out", str(tmp_path / "notes.txt")]) == 2
    assert "--out " in one_error_line(capsys) and (tmp_path / "notes.txt").read_text() == "mine"
    assert cli.main(["train", "simclr", *TINY, "--out", str(tmp_path / "notes.txt" / "run")]) == 2
    assert "is a file, so the folder cannot be made there" in one_error_line(capsys)
    (tmp_path / "ckpt").mkdir()
    assert cli.main(["train", "simclr", *TINY, "--checkpoint", str(tmp_path / "ckpt"), "--out", str(tmp_path / "o")]) == 2
    assert "--checkpoint " in one_error_line(capsys)


def test_a_learning_rate_far_above_the_profiles_is_warned_about(tmp_path, capsys):
    code = cli.main(["train", "simclr", *QUICK, "--n-train", "32", "--batch-size", "16", "--lr", "5",
                     "--out", str(tmp_path / "o")])
    captured = capsys.readouterr()
    assert "warning: lr 5 is 2500× the profile's 0.002" in captured.out
    assert code == 0 or (code == 1 and one_error_line_of(captured.err).startswith("error: loss became"))


@pytest.mark.skipif(torch.cuda.is_available(), reason="needs a machine without a CUDA GPU")
def test_a_cuda_device_on_a_machine_without_one_is_one_line(tmp_path, capsys):
    assert cli.main(["train", "simclr", *TINY, "--device", "cuda", "--out", str(tmp_path / "o")]) == 2
    assert "no CUDA GPU is visible" in one_error_line(capsys)


def test_a_decompression_bomb_in_the_data_folder_is_one_line(tmp_path, capsys, monkeypatch):
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 100)             # a 20×12 image is then "too large"
    for i in range(4):
        save(tmp_path / "data" / "all" / f"{i}.png")
    assert cli.main(["train", "simclr", *QUICK, "--batch-size", "2", "--data", str(tmp_path / "data"),
                     "--out", str(tmp_path / "o")]) == 2
    assert "0.png: it is too large to decode safely" in one_error_line(capsys)


def test_a_folder_of_one_image_is_refused_for_simclr(tmp_path, capsys):
    save(tmp_path / "data" / "all" / "only.png")
    assert cli.main(["train", "simclr", *QUICK, "--data", str(tmp_path / "data"), "--out", str(tmp_path / "o")]) == 2
    assert "but there are only 1" in one_error_line(capsys)
    assert not (tmp_path / "o").exists()


def test_an_image_size_the_encoder_cannot_take_is_refused(tmp_path, capsys):
    for i in range(8):
        save(tmp_path / "data" / "all" / f"{i}.png", (30 * i, 0, 0))
    assert cli.main(["train", "simclr", *QUICK, "--batch-size", "4", "--image-size", "9",
                     "--data", str(tmp_path / "data"), "--out", str(tmp_path / "o")]) == 2
    assert re.search("--image-size 9 is too small for the small_cnn encoder; use --image-size \\d+ or more",
                     one_error_line(capsys))


# ---------------------------------------------------------------- resuming, and the run's own version tag
RUN = ["train", "simclr", *QUICK, "--n-train", "32", "--batch-size", "16"]


def test_resuming_another_experiment_is_refused_naming_the_settings(tmp_path, capsys):
    out = tmp_path / "run"
    assert cli.main([*RUN, "--out", str(out)]) == 0
    history = (out / "history.json").read_text()
    capsys.readouterr()
    for extra, difference in [(["--lr", "0.5"], "lr 0.002 → 0.5"),
                              (["--batch-size", "8"], "global_batch 16 → 8"),
                              (["--seed", "1"], "seed 0 → 1"),
                              (["--temperature", "0.5"], "model.temperature 0.2 → 0.5")]:
        assert cli.main([*RUN, *extra, "--out", str(out)]) == 2
        line = one_error_line(capsys)
        assert f"--out {out} holds another experiment" in line and difference in line, line
    assert cli.main(["train", "moco", *QUICK, "--n-train", "32", "--batch-size", "16", "--out", str(out)]) == 2
    assert "method simclr → moco" in one_error_line(capsys)
    assert (out / "history.json").read_text() == history                # the run's files untouched
    assert cli.main([*RUN, "--epochs", "2", "--out", str(out)]) == 0        # training longer resumes it
    assert len(json.loads((out / "history.json").read_text())["epoch_loss"]) == 2


def test_other_data_of_the_same_size_is_another_experiment(tmp_path, capsys):
    for name in ("a", "b"):
        for i in range(16):
            save(tmp_path / name / "all" / f"{i}.png", (16 * i, 100 if name == "a" else 200, 0))
    out = tmp_path / "run"
    base = ["train", "simclr", *QUICK, "--batch-size", "8", "--out", str(out)]
    assert cli.main([*base, "--data", str(tmp_path / "a")]) == 0
    capsys.readouterr()
    assert cli.main([*base, "--data", str(tmp_path / "b")]) == 2
    assert "data.fingerprint" in one_error_line(capsys)


def test_a_checkpoint_without_a_recorded_experiment_is_not_resumed(tmp_path, capsys):
    out = tmp_path / "run"
    assert cli.main([*RUN, "--out", str(out)]) == 0
    (out / "history.json").unlink()
    assert cli.main([*RUN, "--out", str(out)]) == 2
    assert "does not say which experiment wrote it" in one_error_line(capsys)


def test_two_runs_never_share_a_version_tag(tmp_path):
    assert cli.main([*RUN, "--out", str(tmp_path / "a")]) == 0
    assert cli.main(["train", "simclr", *QUICK, "--n-train", "48", "--batch-size", "16", "--out", str(tmp_path / "b")]) == 0
    tags = [cli.load_run_encoder(tmp_path / run / "encoder.pt").version for run in ("a", "b")]
    assert tags[0] != tags[1] and all(t.startswith("simclr-quick-seed0-") for t in tags)
    recorded = [json.loads((tmp_path / run / "history.json").read_text())["version"] for run in ("a", "b")]
    assert recorded == tags


def test_data_comes_before_the_process_group_and_the_export_after_it(tmp_path, monkeypatch):
    """No collective waits while a dataset downloads or while the export's check compiles:
    every process loads its data first, and rank 0 exports after the processes parted."""
    order = []
    for name in ("load_run_data", "setup", "cleanup", "finish"):
        real = getattr(cli, name)
        monkeypatch.setattr(cli, name, lambda *a, _real=real, _name=name, **k: order.append(_name) or _real(*a, **k))
    assert cli.main(["train", "simclr", *TINY, "--batch-size", "16", "--epochs", "1", "--out", str(tmp_path)]) == 0
    assert order == ["load_run_data", "setup", "cleanup", "finish"]
    from contrastive_lab.distributed import DEFAULT_TIMEOUT_S, setup
    import inspect
    assert inspect.signature(setup).parameters["timeout_s"].default == DEFAULT_TIMEOUT_S == 30 * 60


def test_processes_take_turns_at_the_data_folder():
    import threading
    import time as clock

    from contrastive_lab.atomic import locked

    spans = []

    def hold(path):
        with locked(path):
            start = clock.monotonic()
            clock.sleep(0.2)
            spans.append((start, clock.monotonic()))
    import tempfile
    with tempfile.TemporaryDirectory() as folder:
        lock = os.path.join(folder, "sub", ".download.lock")
        threads = [threading.Thread(target=hold, args=(lock,)) for _ in range(2)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
    (a0, a1), (b0, b1) = sorted(spans)
    assert b0 >= a1                                     # the second waited for the first
