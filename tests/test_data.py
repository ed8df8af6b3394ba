"""Datasets: offline generators, real-format readers on tiny files, download fallback."""
import gzip
import hashlib
import pickle
import re
from pathlib import Path

import numpy as np
import pytest
import torch

from conftest import write_fake_mnist
import contrastive_lab.data as data
from contrastive_lab.data import (DatasetUnavailable, load_digits, load_image_dataset, load_real_dataset,
                                  make_cluttered_digits, minibatches, pk_batches)
from contrastive_lab.data.digits import split_indices


def test_digits_shapes_and_range():
    x, y = load_digits()
    assert x.shape == (1797, 8, 8) and y.shape == (1797,)
    assert 0 <= x.min() and x.max() <= 1 and set(y.tolist()) == set(range(10))


def test_digit_split_is_disjoint_and_stratified():
    _, y = load_digits()
    tr, te = split_indices(y)
    assert set(tr.tolist()).isdisjoint(te.tolist())
    assert len(tr) + len(te) == len(y)
    assert set(y[te].tolist()) == set(range(10))


def test_cluttered_digits_are_deterministic_and_in_range():
    a, ya = make_cluttered_digits(64, "train", seed=3)
    b, yb = make_cluttered_digits(64, "train", seed=3)
    c, _ = make_cluttered_digits(64, "train", seed=4)
    assert a.shape == (64, 3, 32, 32) and a.dtype == torch.float32
    assert torch.equal(a, b) and torch.equal(ya, yb)
    assert not torch.equal(a, c)
    assert a.min() >= 0 and a.max() <= 1


def test_cluttered_train_and_test_differ():
    tr, _ = make_cluttered_digits(32, "train", seed=0)
    te, _ = make_cluttered_digits(32, "test", seed=0)
    assert not torch.equal(tr, te)
    with pytest.raises(ValueError, match="split must be"):
        make_cluttered_digits(4, "val")


# ---------------------------------------------------------------- real formats, written tiny
def write_fake_cifar(folder: Path, per_batch=3, monkeypatch=None) -> dict:
    """Six tiny CIFAR-10 batches; returns their MD5s. With `monkeypatch`, the reader is told
    to accept them as the published files."""
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    md5s = {}
    for name in [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]:
        batch = {"data": rng.integers(0, 256, (per_batch, 3072), dtype=np.uint8),
                 "labels": rng.integers(0, 10, per_batch).tolist(), "batch_label": name,
                 "filenames": [f"{name}_{i}.png" for i in range(per_batch)]}
        with open(folder / name, "wb") as f:
            pickle.dump(batch, f)
        md5s[name] = hashlib.md5((folder / name).read_bytes()).hexdigest()
    if monkeypatch is not None:
        monkeypatch.setattr(data.real, "CIFAR10_BATCH_MD5", md5s, raising=False)
    return md5s


def test_reads_cifar10_python_batches(tmp_path, monkeypatch):
    write_fake_cifar(tmp_path / "cifar-10-batches-py", monkeypatch=monkeypatch)
    x, y = load_real_dataset("cifar10", train=True, root=tmp_path, download=False)
    assert x.shape == (15, 3, 32, 32) and x.dtype == torch.uint8 and y.shape == (15,)
    xt, _ = load_real_dataset("cifar10", train=False, root=tmp_path, download=False)
    assert xt.shape == (3, 3, 32, 32)


def test_reads_mnist_idx_files(tmp_path):
    write_fake_mnist(tmp_path / "fashion_mnist")
    x, y = load_real_dataset("fashion_mnist", train=True, root=tmp_path, download=False)
    assert x.shape == (5, 1, 28, 28) and y.tolist() == [0, 1, 2, 3, 4]


def test_truncated_idx_file_is_reported(tmp_path):
    folder = tmp_path / "mnist"
    write_fake_mnist(folder)
    with gzip.open(folder / "train-images-idx3-ubyte.gz", "rb") as f:
        raw = f.read()
    with gzip.open(folder / "train-images-idx3-ubyte.gz", "wb") as f:
        f.write(raw[:-10])
    with pytest.raises(DatasetUnavailable, match="truncated"):
        load_real_dataset("mnist", root=tmp_path, download=False)


def test_successful_download_moves_complete_folder_into_place(tmp_path):
    calls = []

    def fetch(tmp):
        calls.append(tmp)
        write_fake_mnist(Path(tmp))

    x, _ = load_real_dataset("mnist", root=tmp_path, fetch=fetch)
    assert x.shape[0] == 5 and len(calls) == 1
    load_real_dataset("mnist", root=tmp_path, fetch=fetch)       # cached: no second fetch
    assert len(calls) == 1
    assert [p.name for p in tmp_path.iterdir()] == ["mnist"]


def test_failed_download_leaves_nothing_half_written(tmp_path):
    def fetch(tmp):
        (Path(tmp) / "train-images-idx3-ubyte.gz").write_bytes(b"partial")
        raise OSError("[Errno -3] Temporary failure in name resolution")

    with pytest.raises(DatasetUnavailable, match="could not download mnist \\(no network\\?\\)"):
        load_real_dataset("mnist", root=tmp_path, fetch=fetch)
    assert list(tmp_path.iterdir()) == []


def test_image_dataset_falls_back_offline_with_one_line(tmp_path, monkeypatch, capsys):
    def no_network(tmp):
        raise OSError("no route to host")

    monkeypatch.setenv("CLAB_DATA_DIR", str(tmp_path))
    monkeypatch.setattr(data.real, "_fetch_cifar10", no_network)
    ds = load_image_dataset("cifar10", n_train=20, n_test=10)
    out = capsys.readouterr().out.strip().splitlines()
    assert ds.name == "cluttered_digits" and ds.train_x.shape == (20, 3, 32, 32)
    assert len(out) == 1 and "could not download cifar10" in out[0] and "offline" in out[0]


def test_image_dataset_from_cached_cifar(tmp_path, monkeypatch):
    monkeypatch.setenv("CLAB_DATA_DIR", str(tmp_path))
    write_fake_cifar(tmp_path / "cifar-10-batches-py", monkeypatch=monkeypatch)
    ds = load_image_dataset("cifar10", n_train=10, n_test=2)
    assert ds.name == "cifar10" and ds.train_x.shape == (10, 3, 32, 32)
    assert ds.train_x.dtype == torch.float32 and ds.train_x.max() <= 1


def test_unknown_dataset_is_named():
    with pytest.raises(ValueError, match="unknown dataset 'imagenet'"):
        load_real_dataset("imagenet")


# ---------------------------------------------------------------- batches and pairs
def test_minibatches_cover_each_index_once():
    seen = torch.cat(list(minibatches(10, 3, torch.Generator().manual_seed(0), drop_last=False)))
    assert sorted(seen.tolist()) == list(range(10))
    with pytest.raises(ValueError, match="larger than the dataset"):
        list(minibatches(2, 5))


def test_pk_batches_hold_p_classes_of_k():
    labels = torch.arange(40) % 8
    batch = next(pk_batches(labels, p=4, k=3, generator=torch.Generator().manual_seed(0)))
    counts = torch.bincount(labels[batch])
    assert len(batch) == 12 and sorted(counts[counts > 0].tolist()) == [3, 3, 3, 3]
    with pytest.raises(ValueError, match="k must be ≥ 2"):
        next(pk_batches(labels, 2, 1))


# ---------------------------------------------------------------- nothing from data/ runs code or is deleted
class _Planted:
    """A pickle that, when loaded by plain pickle.load, runs a shell command."""

    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        import os
        return os.system, (f"touch {self.marker}",)


def test_a_planted_pickle_in_a_cifar_batch_runs_nothing(tmp_path, monkeypatch):
    folder = tmp_path / "cifar-10-batches-py"
    md5s = write_fake_cifar(folder, monkeypatch=monkeypatch)
    marker = tmp_path / "code-ran"
    with open(folder / "data_batch_1", "wb") as f:
        pickle.dump({"data": _Planted(marker), "labels": [0]}, f)
    with pytest.raises(DatasetUnavailable) as refused:
        load_real_dataset("cifar10", root=tmp_path, download=False)
    assert not marker.exists(), "the planted pickle ran its command"
    assert "data_batch_1 is not the published CIFAR-10 file" in str(refused.value)
    # even a file whose checksum is trusted is read with an unpickler that builds only data
    monkeypatch.setitem(data.real.CIFAR10_BATCH_MD5, "data_batch_1",
                        hashlib.md5((folder / "data_batch_1").read_bytes()).hexdigest())
    with pytest.raises(DatasetUnavailable, match="data_batch_1 is not a CIFAR-10 batch: it asks to run .*system"):
        load_real_dataset("cifar10", root=tmp_path, download=False)
    assert not marker.exists() and md5s


def test_a_batch_as_python2_and_numpy1_wrote_it_reads(tmp_path):
    """The published batches were pickled by Python 2: numpy.core.multiarray._reconstruct,
    the pixels as a byte string (read back as latin-1 text)."""
    from contrastive_lab.data.real import _RECONSTRUCT, read_cifar10_batch

    pixels = np.arange(2 * 3072, dtype=np.int64).astype(np.uint8).reshape(2, 3072)

    class Python2Array:
        def __reduce__(self):
            return (_RECONSTRUCT, (np.ndarray, (0,), b"b"),
                    (1, pixels.shape, np.dtype("uint8"), False, pixels.tobytes().decode("latin1")))

    raw = pickle.dumps({"batch_label": "training batch 1 of 5", "labels": [3, 7], "data": Python2Array(),
                        "filenames": ["a.png", "b.png"]}, protocol=2)
    (tmp_path / "data_batch_1").write_bytes(raw.replace(b"numpy._core.multiarray", b"numpy.core.multiarray"))
    x, y = read_cifar10_batch(tmp_path / "data_batch_1", md5=None)
    assert x.shape == (2, 3, 32, 32) and y == [3, 7]
    assert np.array_equal(x.reshape(2, 3072), pixels)


def test_a_hand_copied_folder_survives_a_failed_download(tmp_path, monkeypatch, capsys):
    folder = tmp_path / "cifar-10-batches-py"
    write_fake_cifar(folder, monkeypatch=monkeypatch)
    (folder / "data_batch_5").unlink()                         # one batch missing
    (folder / "notes.txt").write_text("copied from the lab's USB stick")
    before = sorted(p.name for p in folder.iterdir())

    def offline(tmp):
        raise OSError("[Errno -3] Temporary failure in name resolution")

    with pytest.raises(DatasetUnavailable) as failed:
        load_real_dataset("cifar10", root=tmp_path, fetch=offline)
    assert folder.is_dir() and sorted(p.name for p in folder.iterdir()) == before, "the user's files were deleted"
    assert re.search("could not download cifar10.*your unreadable copy .* is left", str(failed.value))
    assert "your folder is kept" in capsys.readouterr().out
    assert [p.name for p in tmp_path.iterdir()] == ["cifar-10-batches-py"]      # no temporary folder left


def test_a_fresh_download_moves_the_unreadable_copy_aside(tmp_path, monkeypatch, capsys):
    folder = tmp_path / "cifar-10-batches-py"
    write_fake_cifar(folder, monkeypatch=monkeypatch)
    (folder / "data_batch_5").unlink()
    (folder / "notes.txt").write_text("mine")
    x, _ = load_real_dataset("cifar10", root=tmp_path, fetch=lambda tmp: write_fake_cifar(Path(tmp)))
    assert x.shape == (15, 3, 32, 32)
    aside = [p for p in tmp_path.iterdir() if p.name.startswith("cifar-10-batches-py.unreadable-")]
    assert len(aside) == 1 and (aside[0] / "notes.txt").read_text() == "mine"
    assert "your unreadable copy was moved to" in capsys.readouterr().out


def test_temporary_download_folders_of_killed_runs_are_removed_at_the_next_start(tmp_path):
    import os
    import subprocess
    import sys
    import time

    from contrastive_lab.atomic import make_temp

    live = make_temp(tmp_path / "mnist", directory=True, tag="mnist-")     # .tmp-p<pid>-h<host>-mnist-…
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    live.rmdir()
    made = {}
    for key, name in [("dead writer", live.name.replace(f"p{os.getpid()}-", f"p{dead.pid}-", 1)),
                      ("live writer", live.name),
                      ("old, no pid", ".tmp-mnist-ghi"), ("recent, no pid", ".tmp-mnist-jkl")]:
        made[key] = tmp_path / name
        made[key].mkdir()
        (made[key] / "train-images-idx3-ubyte.gz.part").write_bytes(b"half")
    two_days_ago = time.time() - 2 * 24 * 3600
    for path in (made["old, no pid"] / "train-images-idx3-ubyte.gz.part", made["old, no pid"]):
        os.utime(path, (two_days_ago, two_days_ago))
    load_real_dataset("mnist", root=tmp_path, fetch=write_fake_mnist)
    assert not made["dead writer"].exists() and not made["old, no pid"].exists()
    assert made["live writer"].exists() and made["recent, no pid"].exists()


def test_zero_images_asked_for_is_an_error_not_the_default():
    with pytest.raises(ValueError, match="n_train must be at least 1"):
        load_image_dataset("cluttered_digits", n_train=0, n_test=4)
    with pytest.raises(ValueError, match="n_test must be at least 1"):
        load_image_dataset("cifar10", n_train=4, n_test=0, download=False)


def test_a_data_folder_that_is_a_file_is_named(tmp_path, monkeypatch):
    (tmp_path / "data").write_text("oops")
    monkeypatch.setenv("CLAB_DATA_DIR", str(tmp_path / "data"))
    with pytest.raises(ValueError, match="the data folder .*data is a file; set CLAB_DATA_DIR to a folder"):
        data.data_dir()
