"""Files written whole or not at all.

A checkpoint, a cached model, an exported encoder or a saved index is written to a
temporary file beside its destination and renamed over it only when complete
(`os.replace` is atomic on one file system). An interrupted write — a crash, a
Ctrl-C, a full disk — leaves the previous file as it was and no half-written one.

    >>> write_atomically("run.json", lambda tmp: Path(tmp).write_text(text))
    >>> save_atomically(state_dict, "model.pt")          # torch.save, atomically

A process killed outright (SIGKILL, a kernel restart, a job scheduler's time limit)
cannot remove its temporary file. Every temporary file or folder is therefore named
`.tmp-p<pid>-h<host>-…`, after the process writing it, and the next write into that
folder removes the ones whose writer is gone (`remove_stale_temp_files`).

    >>> check_writable("runs/ckpt")      # before training: a clear error now, not after an epoch
    >>> with locked(data_dir() / ".download.lock"):   # one process at a time (torchrun's 8 on a node)
    ...     load_image_dataset("cifar10")
"""
from __future__ import annotations

import contextlib
import hashlib
import os
import re
import shutil
import socket
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import torch

TEMP_PREFIX = ".tmp-"
STALE_AFTER_S = 3600.0          # a temporary file nobody wrote to for an hour is abandoned
_OURS = re.compile(r"^\.tmp-p(\d+)-h([0-9a-f]{6})-")


def _host_tag() -> str:
    return hashlib.sha256(socket.gethostname().encode()).hexdigest()[:6]


def check_writable(path: str | os.PathLike, what: str = "file") -> Path:
    """Raise a clear error now if `path` cannot be written as a file; return it as a Path.

    Refused: a path that is a folder, and a path under a file ("enc.pt/sub.pt").
    Call it before a long computation whose result goes to `path`, so that a bad
    path fails at once instead of after the work. Creates no file or folder.
    """
    path = Path(path)
    if path.is_dir():
        raise IsADirectoryError(f"cannot write the {what} to {path}: it is a folder; give a file name "
                                f"inside it, e.g. {path / 'checkpoint.pt'}")
    for parent in path.parents:
        if parent.exists():
            if not parent.is_dir():
                raise NotADirectoryError(f"cannot write the {what} to {path}: {parent} is a file, not a folder; "
                                         "choose another path")
            if not os.access(parent, os.W_OK | os.X_OK):
                raise PermissionError(f"cannot write the {what} to {path}: no permission to write in {parent}")
            break
    return path


def _umask() -> int:
    """The process's umask (read without changing it where Linux allows)."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("Umask:"):
                return int(line.split()[1], 8)
    except OSError:
        pass
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def make_temp(beside: str | os.PathLike, *, directory: bool = False, tag: str = "") -> Path:
    """Create an empty temporary file (or folder) in the folder of `beside` and return its path.

    Its name, `.tmp-p<pid>-h<host>-<tag><random><suffix>`, records the writing process so that
    `remove_stale_temp_files` can tell an abandoned one from one being written. A file keeps
    the suffix of `beside` (".tmp" when it has none: torch.save refuses a name that is only
    a suffix). The folder of `beside` must exist. The file gets the permissions a plain
    open() would give it (tempfile's are private to the owner, 0600).
    """
    beside = Path(beside)
    prefix = f"{TEMP_PREFIX}p{os.getpid()}-h{_host_tag()}-{tag}"
    if directory:
        return Path(tempfile.mkdtemp(prefix=prefix, dir=beside.parent))
    fd, tmp = tempfile.mkstemp(prefix=prefix, suffix=beside.suffix or ".tmp", dir=beside.parent)
    os.close(fd)
    os.chmod(tmp, 0o666 & ~_umask())
    return Path(tmp)


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except OSError:            # exists, but belongs to someone else
        return True
    return True


def _last_write(path: Path) -> float:
    """Newest modification time of a file, or of a folder and everything in it."""
    newest = path.lstat().st_mtime
    if path.is_dir() and not path.is_symlink():
        for root, dirs, files in os.walk(path):
            for name in dirs + files:
                try:
                    newest = max(newest, os.lstat(os.path.join(root, name)).st_mtime)
                except OSError:
                    pass
    return newest


def remove_stale_temp_files(folder: str | os.PathLike, max_age_s: float = STALE_AFTER_S) -> list[Path]:
    """Delete the abandoned temporary files and folders (`.tmp-*`) directly inside `folder`.

    A temporary entry is abandoned when the process named in it (`make_temp`'s
    `.tmp-p<pid>-h<host>-…`) no longer runs on this machine, or when nothing was written
    to it for `max_age_s` seconds (the only test for entries of another machine and for
    older names without a pid). An entry still being written is never touched. Nothing
    but `.tmp-*` entries is looked at. Returns the paths removed; errors are ignored
    (another process may remove the same entry at the same time).

    Call it when a run starts, before writing into a folder: `write_atomically` does it
    for its destination folder, `fit` for its checkpoint's folder.
    """
    folder = Path(folder)
    removed = []
    try:
        entries = [e for e in folder.iterdir() if e.name.startswith(TEMP_PREFIX)]
    except OSError:
        return removed
    now, host = time.time(), _host_tag()
    for entry in entries:
        try:
            ours = _OURS.match(entry.name)
            dead = ours is not None and ours.group(2) == host and not _pid_alive(int(ours.group(1)))
            if not dead and now - _last_write(entry) < max_age_s:
                continue
            if entry.is_dir() and not entry.is_symlink():
                shutil.rmtree(entry)
            else:
                entry.unlink()
            removed.append(entry)
        except OSError:
            continue
    return removed


def write_atomically(path: str | os.PathLike, write: Callable[[str], None]) -> None:
    """Call write(tmp_path) on a temporary file beside `path`, then rename it over `path`.

    The folder is created if needed (a clear error when `path` is a folder or lies under
    a file); abandoned temporary files of earlier, killed writers in that folder are
    removed first; on any failure the temporary file is removed.
    """
    path = check_writable(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    remove_stale_temp_files(path.parent)
    tmp = make_temp(path)
    try:
        write(os.fspath(tmp))
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def save_atomically(obj, path: str | os.PathLike) -> None:
    """torch.save(obj) to `path`, atomically."""
    write_atomically(path, lambda tmp: torch.save(obj, tmp))


@contextlib.contextmanager
def locked(path: str | os.PathLike):
    """Hold an exclusive lock on the file `path` (created if missing) for the `with` block.

    Processes that share a folder (torchrun's processes on one node, or jobs on one
    shared file system that supports locks) take turns: the first downloads a dataset,
    the others wait here, not in a collective with a timeout, and then read the cache.
    The lock goes with the process: a killed holder releases it. Where the platform
    has no `fcntl` (Windows), the block runs without a lock.
    """
    try:
        import fcntl
    except ImportError:                                  # Windows: no advisory locks here
        yield
        return
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)
