"""Real image datasets (CIFAR-10, MNIST, Fashion-MNIST), downloaded on first use.

Downloads go through `download.download_file` (a timeout on every network
call, a progress bar, an MD5 check with one retry) into a temporary folder
inside the cache; only a complete, verified download is moved into place, so an
interrupted download never leaves a half-written dataset. A cached copy that
cannot be read is deleted and downloaded once more.
Reading is our own small code for the datasets' on-disk formats (CIFAR's
pickled batches, MNIST's IDX files), so tests can exercise it on tiny files.

Without network, `load_real_dataset` raises DatasetUnavailable with one clear
line; `load_image_dataset` (in `contrastive_lab.data`) then falls back to the
offline cluttered digits.
"""
from __future__ import annotations

import gzip
import pickle
import shutil
import tarfile
import tempfile
from pathlib import Path

import numpy as np
import torch

from .cache import data_dir
from .download import DEFAULT_TIMEOUT_S, download_file

CIFAR10_URL = "https://www.cs.toronto.edu/~kriz/cifar-10-python.tar.gz"
CIFAR10_MD5 = "c58f30108f718f92721af3b95e74349a"
CIFAR10_FOLDER = "cifar-10-batches-py"

MNIST_MIRRORS = {
    "mnist": ["https://ossci-datasets.s3.amazonaws.com/mnist/", "http://yann.lecun.com/exdb/mnist/"],
    "fashion_mnist": ["http://fashion-mnist.s3-website.eu-central-1.amazonaws.com/"],
}
MNIST_FILES = {
    "mnist": {
        "train-images-idx3-ubyte.gz": "f68b3c2dcbeaaa9fbdd348bbdeb94873",
        "train-labels-idx1-ubyte.gz": "d53e105ee54ea40749a09fcbcd1e9432",
        "t10k-images-idx3-ubyte.gz": "9fb629c4189551a2d022fa330f9573f3",
        "t10k-labels-idx1-ubyte.gz": "ec29112dd5afa0611ce80d1b7f02629c",
    },
    "fashion_mnist": {
        "train-images-idx3-ubyte.gz": "8d4fb7e6c68d591d4c3dfef9ec88bf0d",
        "train-labels-idx1-ubyte.gz": "25c81989df183df01b3e8a0aad5dffbe",
        "t10k-images-idx3-ubyte.gz": "bef4ecab320f06d8554ea6380940ec79",
        "t10k-labels-idx1-ubyte.gz": "bb300cfdad3c16e7a12a480ee83cd310",
    },
}
REAL_DATASETS = ("cifar10", "mnist", "fashion_mnist")


class DatasetUnavailable(RuntimeError):
    """A real dataset is not cached and cannot be downloaded (no network, or a bad file)."""


# ---------------------------------------------------------------- reading
def read_cifar10_folder(folder: Path, train: bool) -> tuple[torch.Tensor, torch.Tensor]:
    """Read CIFAR-10's python batches from `folder` (the cifar-10-batches-py folder).

    Returns images (N, 3, 32, 32) uint8 and labels (N,) int64.
    """
    names = [f"data_batch_{i}" for i in range(1, 6)] if train else ["test_batch"]
    images, labels = [], []
    for name in names:
        with open(Path(folder) / name, "rb") as f:
            batch = pickle.load(f, encoding="latin1")
        images.append(np.asarray(batch["data"], dtype=np.uint8).reshape(-1, 3, 32, 32))
        labels.extend(batch["labels"])
    return torch.from_numpy(np.concatenate(images)), torch.tensor(labels, dtype=torch.int64)


def read_idx(path: Path) -> np.ndarray:
    """Read an IDX file (MNIST's format), gzipped or not, into a uint8 array."""
    opener = gzip.open if str(path).endswith(".gz") else open
    with opener(path, "rb") as f:
        data = f.read()
    magic = int.from_bytes(data[0:4], "big")
    if magic >> 8 != 0x08:                      # 0x08 = unsigned byte
        raise ValueError(f"{path} is not an unsigned-byte IDX file (magic {magic:#x})")
    ndim = magic & 0xFF
    shape = [int.from_bytes(data[4 + 4 * i: 8 + 4 * i], "big") for i in range(ndim)]
    array = np.frombuffer(data, dtype=np.uint8, offset=4 + 4 * ndim)
    if array.size != int(np.prod(shape)):
        raise ValueError(f"{path} is truncated: expected {int(np.prod(shape))} values, found {array.size}")
    return array.reshape(shape)


def read_mnist_folder(folder: Path, train: bool) -> tuple[torch.Tensor, torch.Tensor]:
    """Read MNIST-format IDX files from `folder`. Returns (N, 1, 28, 28) uint8, (N,) int64."""
    prefix = "train" if train else "t10k"
    images = read_idx(Path(folder) / f"{prefix}-images-idx3-ubyte.gz")
    labels = read_idx(Path(folder) / f"{prefix}-labels-idx1-ubyte.gz")
    return torch.from_numpy(images.copy()).unsqueeze(1), torch.from_numpy(labels.astype(np.int64))


# ---------------------------------------------------------------- downloading
def _download_into(folder: Path, fetch) -> None:
    """Run fetch(tmp_folder) in a temporary folder beside `folder`; move it into place on success."""
    folder.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".tmp-{folder.name}-", dir=folder.parent))
    try:
        fetch(tmp)
        if folder.exists():                      # another process finished first
            shutil.rmtree(tmp)
        else:
            tmp.rename(folder)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


def _fetch_cifar10(tmp: Path, timeout: float = DEFAULT_TIMEOUT_S) -> None:
    archive = download_file(CIFAR10_URL, tmp / "cifar-10-python.tar.gz", CIFAR10_MD5, timeout=timeout)
    with tarfile.open(archive) as tar:
        tar.extractall(tmp, filter="data")       # "data": no absolute paths, links out or devices
    archive.unlink()
    extracted = tmp / CIFAR10_FOLDER
    for item in extracted.iterdir():           # flatten: tmp/ holds the batches
        item.rename(tmp / item.name)
    extracted.rmdir()


def _fetch_mnist(name: str, timeout: float = DEFAULT_TIMEOUT_S):
    def fetch(tmp: Path) -> None:
        for filename, md5 in MNIST_FILES[name].items():
            errors = []
            for mirror in MNIST_MIRRORS[name]:
                try:
                    download_file(mirror + filename, tmp / filename, md5, timeout=timeout)
                    break
                except OSError as exc:          # try the next mirror
                    errors.append(exc)
            else:
                raise errors[-1]
    return fetch


def dataset_folder(name: str, root: Path | None = None) -> Path:
    """Where dataset `name` lives in the cache."""
    root = Path(root) if root is not None else data_dir()
    return root / (CIFAR10_FOLDER if name == "cifar10" else name)


def load_real_dataset(name: str, train: bool = True, root: Path | None = None,
                      download: bool = True, fetch=None) -> tuple[torch.Tensor, torch.Tensor]:
    """Load a real dataset from the cache, downloading it first if needed.

    Args:
        name: "cifar10", "mnist" or "fashion_mnist".
        train: training split (True) or test split.
        root: cache folder (default: `data_dir()`).
        download: allow a download when the dataset is not cached.
        fetch: replaces the downloader (tests use it); fetch(tmp_folder) must fill the folder.

    Returns images as uint8 tensors, (N, 3, 32, 32) for CIFAR-10 and
    (N, 1, 28, 28) for the MNISTs, and labels (N,) int64.
    Raises DatasetUnavailable, with the reason in one line, when the data
    cannot be had.
    """
    if name not in REAL_DATASETS:
        raise ValueError(f"unknown dataset {name!r}; choose one of {REAL_DATASETS}")
    folder = dataset_folder(name, root)
    fetch = fetch or (_fetch_cifar10 if name == "cifar10" else _fetch_mnist(name))
    reader = read_cifar10_folder if name == "cifar10" else read_mnist_folder
    if folder.exists():
        try:
            return reader(folder, train)
        except (OSError, ValueError, EOFError, pickle.UnpicklingError, KeyError) as exc:
            if not download:
                raise DatasetUnavailable(f"{name} in {folder} is unreadable ({_first_line(exc)}); "
                                         "delete that folder to download it again") from exc
            print(f"{name} in {folder} is unreadable ({_first_line(exc)}); downloading it again")
            shutil.rmtree(folder)
    if not download:
        raise DatasetUnavailable(f"{name} is not in {folder.parent} and download=False")
    try:
        _download_into(folder, fetch)
    except Exception as exc:
        raise DatasetUnavailable(f"could not download {name} (no network?): {_first_line(exc)}. "
                                 f"To fetch it by hand: {_by_hand(name, folder)}") from exc
    try:
        return reader(folder, train)
    except (OSError, ValueError, EOFError, pickle.UnpicklingError, KeyError) as exc:
        raise DatasetUnavailable(f"{name} in {folder} is unreadable even after a fresh download "
                                 f"({_first_line(exc)}); delete that folder and fetch it by hand") from exc


def _by_hand(name: str, folder: Path) -> str:
    if name == "cifar10":
        return f"download {CIFAR10_URL} and unpack its {CIFAR10_FOLDER} folder into {folder.parent}"
    return f"download {', '.join(MNIST_FILES[name])} from {MNIST_MIRRORS[name][0]} into {folder}"


def _first_line(exc: BaseException) -> str:
    return str(exc).splitlines()[0] if str(exc) else type(exc).__name__
