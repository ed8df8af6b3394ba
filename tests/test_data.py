"""Datasets: offline generators, real-format readers on tiny files, download fallback."""
import gzip
import pickle
import struct
from pathlib import Path

import numpy as np
import pytest
import torch

import contrastive_lab.data as data
from contrastive_lab.data import (DatasetUnavailable, load_digits, load_image_dataset, load_real_dataset,
                                  make_cluttered_digits, minibatches, pk_batches,
                                  positive_pairs_from_labels, random_triplets_from_labels)
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
def write_fake_cifar(folder: Path, per_batch=3):
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    for name in [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]:
        batch = {"data": rng.integers(0, 256, (per_batch, 3072), dtype=np.uint8),
                 "labels": rng.integers(0, 10, per_batch).tolist()}
        with open(folder / name, "wb") as f:
            pickle.dump(batch, f)


def write_idx(path: Path, array: np.ndarray):
    header = struct.pack(">I", 0x0800 | array.ndim) + b"".join(struct.pack(">I", s) for s in array.shape)
    with gzip.open(path, "wb") as f:
        f.write(header + array.astype(np.uint8).tobytes())


def write_fake_mnist(folder: Path, n=5):
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    for prefix in ("train", "t10k"):
        write_idx(folder / f"{prefix}-images-idx3-ubyte.gz", rng.integers(0, 256, (n, 28, 28)))
        write_idx(folder / f"{prefix}-labels-idx1-ubyte.gz", np.arange(n) % 10)


def test_reads_cifar10_python_batches(tmp_path):
    write_fake_cifar(tmp_path / "cifar-10-batches-py")
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
    write_fake_cifar(tmp_path / "cifar-10-batches-py")
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


def test_pairs_and_triplets_respect_labels():
    labels = torch.arange(30) % 3
    g = torch.Generator().manual_seed(0)
    i, j = positive_pairs_from_labels(labels, 50, g)
    assert torch.all(labels[i] == labels[j]) and torch.all(i != j)
    a, p, n = random_triplets_from_labels(labels, 50, g)
    assert torch.all(labels[a] == labels[p]) and torch.all(labels[a] != labels[n]) and torch.all(a != p)
