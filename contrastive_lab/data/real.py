"""Real image datasets (CIFAR-10, MNIST, Fashion-MNIST), downloaded on first use.

Downloads go through `download.download_file` (a timeout on every network
call, an overall deadline, a progress bar, an MD5 check with one retry) into a
temporary folder inside the cache; only a complete download that reads back is
moved into place, so an interrupted download never leaves a half-written
dataset. A folder already there that cannot be read (copied by hand, a batch
missing) is never deleted: a fresh copy is downloaded beside it, and only when
that copy reads is the old folder renamed aside ("<folder>.unreadable-<time>")
and the new one moved into place. Temporary download folders left by a killed
run are removed at the next download, once no live process can be writing them.

Reading is our own small code for the datasets' on-disk formats (CIFAR's
pickled batches, MNIST's IDX files), so tests can exercise it on tiny files.
Nothing read from disk runs code: each CIFAR-10 batch must have the MD5 of the
published file before it is read, and it is read with an unpickler that builds
only what a batch holds (a dict of strings, lists, numbers and numpy arrays).

Without network, `load_real_dataset` raises DatasetUnavailable with one clear
line; `load_image_dataset` (in `contrastive_lab.data`) then falls back to the
offline cluttered digits.
"""
from __future__ import annotations

import codecs
import gzip
import pickle
import shutil
import tarfile
import time
from pathlib import Path

import numpy as np
import torch

from ..atomic import make_temp, remove_stale_temp_files
from .cache import data_dir
from .download import DEFAULT_TIMEOUT_S, download_file, file_hash

CIFAR10_URL = "https://www.cs.toronto.edu/~kriz/cifar-10-python.tar.gz"
CIFAR10_MD5 = "c58f30108f718f92721af3b95e74349a"
CIFAR10_FOLDER = "cifar-10-batches-py"
# the MD5 of each published batch file (the same list as torchvision's datasets/cifar.py)
CIFAR10_BATCH_MD5 = {
    "data_batch_1": "c99cafc152244af753f735de768cd75f",
    "data_batch_2": "d4bba439e000b95fd0a9bffe97cbabec",
    "data_batch_3": "54ebc095f3ab1f0389bbae665268c751",
    "data_batch_4": "634d18415352ddfa80567beed471001a",
    "data_batch_5": "482c414d41f54cd18b22e5b47cb7c3cb",
    "test_batch": "40351d587109b95175f43aff81a1287e",
}
READ_ERRORS = (OSError, ValueError, EOFError, KeyError)     # what an unreadable dataset folder raises
STALE_DOWNLOAD_S = 24 * 3600        # a temporary download folder this old is left over from a killed run

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
class UnsafeFile(ValueError):
    """A file in the data folder is not what it should be (wrong checksum, or a pickle that
    asks to build something a dataset file never holds)."""


def _latin1_encode(text, encoding="latin1", errors="strict"):
    """`_codecs.encode` as Python 3 pickles bytes at protocol 2: latin-1 only."""
    if not isinstance(text, str) or codecs.lookup(encoding).name != "iso8859-1":
        raise pickle.UnpicklingError(f"refusing _codecs.encode with encoding {encoding!r}")
    return text.encode("latin1", errors)


def _frombuffer(buf, dtype, shape, order):
    """numpy's _frombuffer (how protocol 5 pickles an array), as a copy that owns its memory."""
    return np.frombuffer(buf, dtype=dtype).reshape(shape, order=order).copy()


_RECONSTRUCT = np.ndarray((0,)).__reduce__()[0]           # numpy's own array rebuilder


class _BatchUnpickler(pickle.Unpickler):
    """Builds only what a CIFAR batch holds: dicts, lists, strings, bytes, numbers and numpy
    arrays. Any other global (os.system, builtins.eval, …) is refused before it is called."""

    ALLOWED = {
        ("numpy", "ndarray"): np.ndarray,
        ("numpy", "dtype"): np.dtype,
        ("numpy.core.multiarray", "_reconstruct"): _RECONSTRUCT,     # numpy 1.x and Python 2 wrote this
        ("numpy._core.multiarray", "_reconstruct"): _RECONSTRUCT,    # numpy 2.x writes this
        ("numpy.core.numeric", "_frombuffer"): _frombuffer,
        ("numpy._core.numeric", "_frombuffer"): _frombuffer,
        ("_codecs", "encode"): _latin1_encode,                       # bytes at pickle protocol 2
    }

    def find_class(self, module: str, name: str):
        if (module, name) not in self.ALLOWED:
            raise pickle.UnpicklingError(f"it asks to run {module}.{name}, which a CIFAR-10 batch never does")
        return self.ALLOWED[(module, name)]


def read_cifar10_batch(path: Path, md5: str | None) -> tuple[np.ndarray, list[int]]:
    """One CIFAR-10 batch file: images (N, 3, 32, 32) uint8 and labels (N,).

    The file's MD5 must equal `md5` (the published file's) before a byte of it is
    unpickled; then it is read with an unpickler that builds nothing but data.
    Raises UnsafeFile (a ValueError) naming the file and what to do.
    """
    path = Path(path)
    if md5 is not None:
        got = file_hash(path, "md5")
        if got != md5:
            raise UnsafeFile(f"{path} is not the published CIFAR-10 file (MD5 {got}, expected {md5}); "
                             "it was not read")
    try:
        with open(path, "rb") as f:
            batch = _BatchUnpickler(f, encoding="latin1").load()
    except (pickle.UnpicklingError, EOFError, TypeError, ValueError, AttributeError) as exc:
        raise UnsafeFile(f"{path} is not a CIFAR-10 batch: {_first_line(exc)}") from None
    data = batch.get("data") if isinstance(batch, dict) else None
    labels = batch.get("labels") if isinstance(batch, dict) else None
    if (not isinstance(data, np.ndarray) or data.dtype != np.uint8 or data.ndim != 2 or data.shape[1] != 3072
            or not isinstance(labels, list) or len(labels) != len(data)
            or not all(isinstance(v, int) and 0 <= v < 10 for v in labels)):
        raise UnsafeFile(f"{path} does not hold CIFAR-10 images (a dict of 'data' (N, 3072) uint8 and N "
                         "'labels' in 0-9)")
    return data.reshape(-1, 3, 32, 32), labels


def read_cifar10_folder(folder: Path, train: bool) -> tuple[torch.Tensor, torch.Tensor]:
    """Read CIFAR-10's python batches from `folder` (the cifar-10-batches-py folder),
    each checked against its published MD5 first (`CIFAR10_BATCH_MD5`).

    Returns images (N, 3, 32, 32) uint8 and labels (N,) int64.
    """
    names = [f"data_batch_{i}" for i in range(1, 6)] if train else ["test_batch"]
    images, labels = [], []
    for name in names:
        x, y = read_cifar10_batch(Path(folder) / name, CIFAR10_BATCH_MD5[name])
        images.append(x)
        labels.extend(y)
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
def remove_stale_downloads(folder: Path) -> list[Path]:
    """Remove the temporary download folders (".tmp-…") beside `folder` that a killed run left
    behind: their writer is dead, or nothing in them changed for STALE_DOWNLOAD_S. A folder a
    live process may still be writing is kept. Returns the folders removed."""
    return remove_stale_temp_files(folder.parent, max_age_s=STALE_DOWNLOAD_S)


def _download_into(folder: Path, fetch, verify) -> Path | None:
    """Run fetch(tmp_folder) in a temporary folder beside `folder`, check it with verify(tmp),
    then move it into place. A folder already at `folder` is never deleted: when it reads
    (another process finished first) the new copy is dropped; when it does not, it is
    renamed aside. Returns where the old folder was put, or None."""
    folder.parent.mkdir(parents=True, exist_ok=True)
    remove_stale_downloads(folder)
    tmp = make_temp(folder, directory=True, tag=f"{folder.name}-")
    try:
        fetch(tmp)
        verify(tmp)
        if not folder.exists():
            tmp.rename(folder)
            return None
        try:
            verify(folder)                       # another process finished first
            shutil.rmtree(tmp)
            return None
        except READ_ERRORS:
            aside = folder.with_name(f"{folder.name}.unreadable-{time.strftime('%Y%m%d-%H%M%S')}")
            folder.rename(aside)
            tmp.rename(folder)
            return aside
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
    unreadable = None
    if folder.exists():
        try:
            return reader(folder, train)
        except READ_ERRORS as exc:
            unreadable = _first_line(exc)
            if not download:
                raise DatasetUnavailable(f"{name} in {folder} is unreadable ({unreadable}); move that folder "
                                         f"away and let the course download it, or {_by_hand(name, folder)}") from exc
            print(f"{name} in {folder} is unreadable ({unreadable}); downloading a fresh copy beside it "
                  "(your folder is kept)")
    if not download:
        raise DatasetUnavailable(f"{name} is not in {folder.parent} and download=False")

    def verify(candidate: Path) -> None:
        reader(candidate, True)
        reader(candidate, False)

    try:
        aside = _download_into(folder, fetch, verify)
    except Exception as exc:
        kept = f"; your unreadable copy in {folder} is left as it was" if unreadable else ""
        raise DatasetUnavailable(f"could not download {name} (no network?): {_first_line(exc)}{kept}. "
                                 f"To fetch it by hand: {_by_hand(name, folder)}") from exc
    if aside is not None:
        print(f"{name}: the fresh copy is in {folder}; your unreadable copy was moved to {aside}")
    return reader(folder, train)


def _by_hand(name: str, folder: Path) -> str:
    if name == "cifar10":
        return f"download {CIFAR10_URL} and unpack its {CIFAR10_FOLDER} folder into {folder.parent}"
    return f"download {', '.join(MNIST_FILES[name])} from {MNIST_MIRRORS[name][0]} into {folder}"


def _first_line(exc: BaseException) -> str:
    return str(exc).splitlines()[0] if str(exc) else type(exc).__name__
