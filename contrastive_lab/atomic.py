"""Files written whole or not at all.

A checkpoint, a cached model, an exported encoder or a saved index is written to a
temporary file beside its destination and renamed over it only when complete
(`os.replace` is atomic on one file system). An interrupted write — a crash, a
Ctrl-C, a full disk — leaves the previous file as it was and no half-written one.

    >>> write_atomically("run.json", lambda tmp: Path(tmp).write_text(text))
    >>> save_atomically(state_dict, "model.pt")          # torch.save, atomically
"""
from __future__ import annotations

import os
import tempfile
from collections.abc import Callable
from pathlib import Path

import torch


def write_atomically(path: str | os.PathLike, write: Callable[[str], None]) -> None:
    """Call write(tmp_path) on a temporary file beside `path`, then rename it over `path`.

    The folder is created if needed; on any failure the temporary file is removed.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".tmp-", suffix=path.suffix)
    os.close(fd)
    try:
        write(tmp)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def save_atomically(obj, path: str | os.PathLike) -> None:
    """torch.save(obj) to `path`, atomically."""
    write_atomically(path, lambda tmp: torch.save(obj, tmp))
