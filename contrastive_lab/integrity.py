"""The files this package writes, read back checked.

Checkpoints (`train.save_checkpoint`), exported encoders (`export.export_encoder`) and
saved indexes (`index.save_index`) are dicts of plain values and tensors written with
torch.save. `save_checked` adds the SHA-256 of that dict under "sha256"; `load_checked`
reads the file with `torch.load(weights_only=True)` (tensors and plain data only: loading
never runs code) and recomputes the checksum. torch does not check its own zip CRCs, so
without this a flipped bit loads silently (a weight of −4.9e35, a NaN three epochs later).

Every way such a file can be wrong gives ONE error that names the file:

    missing / a folder                              FileNotFoundError / IsADirectoryError
    empty, truncated, not a torch file, a flipped bit, no checksum   CorruptFileError
    holds Python objects beyond tensors and plain data               UnsafeFileError

    >>> save_checked({"format": "my-format", "weights": w}, "file.pt")
    >>> payload = load_checked("file.pt", what="my file", fmt="my-format", fix="write it with ...")
"""
from __future__ import annotations

import hashlib
import os
import pickle
from pathlib import Path

import torch

from .atomic import save_atomically


class CorruptFileError(ValueError):
    """A file is damaged (truncated, empty, changed after it was written) or not one this package wrote."""


class UnsafeFileError(ValueError):
    """A file holds Python objects that a safe load refuses; nothing in it was run."""


def _feed(h, obj) -> None:
    """Hash obj's structure and values in a fixed order (the order torch.save keeps)."""
    if isinstance(obj, torch.Tensor):
        t = obj.detach().cpu().resolve_conj().resolve_neg().contiguous()
        h.update(f"tensor {t.dtype} {tuple(t.shape)};".encode())
        if t.numel():
            h.update(t.reshape(-1).view(torch.uint8).numpy())
    elif isinstance(obj, dict):
        h.update(f"dict {len(obj)};".encode())
        for key, value in obj.items():
            _feed(h, key)
            _feed(h, value)
    elif isinstance(obj, (list, tuple)):
        h.update(f"{'list' if isinstance(obj, list) else 'tuple'} {len(obj)};".encode())
        for value in obj:
            _feed(h, value)
    elif obj is None or isinstance(obj, (bool, int, float, str, bytes, torch.dtype, torch.device)):
        h.update(f"{type(obj).__name__} {obj!r};".encode())
    else:
        raise TypeError(f"cannot checksum a {type(obj).__name__}: a checked file holds only tensors, "
                        "dicts, lists, tuples, numbers, strings and None")


def payload_sha256(payload) -> str:
    """SHA-256 (hex) of a payload of tensors and plain values: its structure, dtypes, shapes and bytes."""
    h = hashlib.sha256()
    _feed(h, payload)
    return h.hexdigest()


def _to_cpu(obj):
    if isinstance(obj, torch.Tensor):
        return obj.detach().cpu()
    if isinstance(obj, dict):
        return type(obj)((k, _to_cpu(v)) for k, v in obj.items())
    if isinstance(obj, (list, tuple)):
        return type(obj)(_to_cpu(v) for v in obj)
    return obj


def save_checked(payload: dict, path: str | os.PathLike) -> None:
    """torch.save `payload` (a dict; its tensors are moved to the CPU) with its SHA-256 under "sha256",
    atomically (`atomic.save_atomically`)."""
    if not isinstance(payload, dict) or "sha256" in payload:
        raise ValueError("save_checked takes a dict without a 'sha256' key (it adds that key)")
    payload = _to_cpu(payload)
    save_atomically({**payload, "sha256": payload_sha256(payload)}, path)


def _a(what: str) -> str:
    return f"{'an' if what[:1].lower() in 'aeiou' else 'a'} {what}"


def _load(path: Path, what: str):
    """torch.load(weights_only=True) with one clear error per kind of fault."""
    if not path.exists():
        raise FileNotFoundError(f"no {what} at {path}")
    if path.is_dir():
        raise IsADirectoryError(f"{path} is a folder, not {_a(what)} file")
    if path.stat().st_size == 0:
        raise CorruptFileError(f"{path} is empty (0 bytes), not {_a(what)}: an interrupted copy? "
                               "Delete it and write it again")
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except (MemoryError, KeyboardInterrupt):
        raise
    except Exception as exc:
        text = str(exc)
        if isinstance(exc, pickle.UnpicklingError) and "eights only load failed" in text:
            # torch's own message suggests loading unsafely; this file is not ours, so we do not.
            raise UnsafeFileError(
                f"{path} was not loaded: it holds Python objects other than tensors and plain data, so it "
                f"is not {_a(what)} written by this package and loading it could run code. Use a file this "
                "package wrote, from a source you trust") from None
        first = text.strip().splitlines()[0] if text.strip() and "weights_only" not in text else "unreadable"
        raise CorruptFileError(f"{path} is damaged or is not {_a(what)} (truncated, or not a torch file): "
                               f"{type(exc).__name__}: {first}. Delete it and write it again") from None


def load_checked(path: str | os.PathLike, *, what: str, fmt: str | None = None, fix: str = "") -> dict:
    """Load a file written by `save_checked`; verify its SHA-256 and, when `fmt` is given, its "format".

    what: how to call the file in errors ("checkpoint", "exported encoder", "index").
    fix: a sentence telling how to write a good one ("write one with save_index").
    Returns the payload without the "sha256" key. Raises FileNotFoundError, IsADirectoryError,
    CorruptFileError, UnsafeFileError (see the module docstring); every message names the file.
    """
    path = Path(path)
    payload = _load(path, what)
    hint = f"; {fix}" if fix else ""
    if not isinstance(payload, dict):
        raise CorruptFileError(f"{path} is not {_a(what)} written by this package (it holds a "
                               f"{type(payload).__name__}){hint}")
    payload = dict(payload)
    recorded = payload.pop("sha256", None)
    if recorded is not None:
        try:
            actual = payload_sha256(payload)
        except TypeError:
            actual = None
        if actual != recorded:
            raise CorruptFileError(f"{path} is damaged: its SHA-256 checksum does not match its contents (changed "
                                   f"after it was written: a flipped bit, a partial copy, an edit). Do not use it; "
                                   f"write the {what} again{hint}")
    if fmt is not None and payload.get("format") != fmt:
        raise CorruptFileError(f"{path} is not {_a(what)} written by this version of this package (no format "
                               f"{fmt!r}){hint}")
    if recorded is None:
        raise CorruptFileError(f"{path} carries no SHA-256 checksum, so it cannot be verified: it was written by "
                               f"an older version of this package or by other code{hint}")
    return payload


__all__ = ["CorruptFileError", "UnsafeFileError", "payload_sha256", "save_checked", "load_checked"]
