"""Train once, load afterwards: a checksummed cache of trained models under data/models/.

A later notebook that needs a model an earlier one trained (notebook 11 and 12
use notebook 05's SimCLR) asks for it by name and settings:

    >>> model, history = train_or_load("simclr", settings, build, train)

- `settings` is everything that makes the run what it is (the profile, the
  method's hyper-parameters, the data, the seed); with the version of the code
  that trains it (`code_version`: the source of the package modules `build` and
  `train` import, directly or not) it forms the key. A model trained with other
  settings, or by other code, is never served: it is trained anew, and one line
  says why. Editing a module the training does not import (viz, the pre-flight,
  the timings, an exercise, a maintainer tool) retrains nothing.
- The file's SHA-256 is recorded beside it and checked before loading; a
  corrupt or half-copied file is retrained, not loaded. A cached model is deleted
  only for that: a caller's mistake (a device this machine lacks, a `build()` of
  another architecture) is a clear error and the file is kept.
- Each weights file is named by its own checksum and the manifest, written last,
  names it: two processes that train the same run at once can never pair one's
  manifest with the other's weights.
- Loading is safe (`torch.load(weights_only=True)`: tensors and plain data only).
- The data belongs in `settings`: pass `data_fingerprint(train_x, …)` so a model
  trained on other images (another seed, another download) is not served.
- Every notebook still runs from an empty cache; it then trains (with its
  progress line) and stores the model for the next one.
"""
from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import re
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import torch
import torch.nn as nn

from .atomic import write_atomically
from .code_version import code_version
from .data.cache import data_dir
from .data.download import file_hash
from .device import seed_offset
from .train import History

NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]*")
ORPHAN_AFTER_S = 3600           # a weights file no manifest names, this old, is a leftover of a lost race


class CachedModelMismatch(ValueError):
    """The cached model is sound, but the caller's build() or device does not fit it."""


def _jsonable(value):
    """Settings as plain JSON: dataclasses (a Profile, an AugmentConfig) become dicts."""
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {f.name: _jsonable(getattr(value, f.name)) for f in dataclasses.fields(value)}
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    if isinstance(value, (str, int, float, bool)) or value is None:
        return value
    raise TypeError(f"settings must be plain data (numbers, strings, lists, dicts, dataclasses); "
                    f"got {type(value).__name__}: describe it by its parameters instead")


def cache_key(name: str, settings: dict, code=()) -> str:
    """The key of a run: its name, its settings, the seed offset ($CLAB_SEED) and the version
    of its code (`code_version(*code)`: `code` lists the modules, functions or objects whose
    package source trains the model), hashed."""
    text = json.dumps({"name": name, "settings": _jsonable(settings), "code": code_version(*code)[0],
                       "seed_offset": seed_offset()}, sort_keys=True)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def data_fingerprint(*tensors) -> str:
    """A short SHA-256 of tensors' shapes, dtypes and values: put it in `settings` so a
    model trained on other data is never served for this data."""
    h = hashlib.sha256()
    for t in tensors:
        t = t.detach().cpu().contiguous()
        h.update(f"{tuple(t.shape)} {t.dtype};".encode())
        h.update(t.view(-1).view(torch.uint8).numpy().tobytes() if t.numel() else b"")
    return h.hexdigest()[:16]


def _sha256(path: Path) -> str:
    return file_hash(path, "sha256")


def _check_name(name: str) -> None:
    if not isinstance(name, str) or not NAME.fullmatch(name) or ".." in name:
        raise ValueError(f"the model's name must be letters, digits, '_', '-' or '.' (a file name, no folders), "
                         f"got {name!r}")


def _cache_folder(folder) -> Path:
    folder = Path(folder) if folder is not None else data_dir() / "models"
    if folder.exists() and not folder.is_dir():
        raise ValueError(f"the model cache {folder} is a file, not a folder; move it away, or pass another folder")
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except (FileExistsError, NotADirectoryError):
        raise ValueError(f"cannot make the model cache folder {folder}: a part of its path is a file") from None
    return folder


def _read_cached(folder: Path, stem: str) -> tuple[dict | None, str]:
    """(state, "") for a sound cached copy; (None, why not) otherwise. Files that fail their
    own checks (manifest unreadable, checksum wrong, not a torch file) are deleted here."""
    manifest = folder / f"{stem}.json"
    if not manifest.exists():
        return None, "no cached model with these settings and this code"
    weights = None
    try:
        recorded = json.loads(manifest.read_text())
        weights = folder / recorded["weights"]
        if weights.parent != folder or not weights.name.startswith(stem):
            raise ValueError(f"the manifest names {recorded['weights']!r}, not a file of this run")
        if recorded["sha256"] != _sha256(weights):
            raise ValueError("its checksum does not match (a corrupt or partial file)")
        state = torch.load(weights, map_location="cpu", weights_only=True)
        History.from_dict(state["history"])
        if not isinstance(state["model"], dict):
            raise ValueError("it holds no state dict")
        return state, ""
    except Exception as exc:                         # the cached copy itself is unusable: drop it
        for path in (weights, manifest):
            if path is not None and path.parent == folder:
                path.unlink(missing_ok=True)
        return None, f"the cached copy was unusable: {str(exc).splitlines()[0] if str(exc) else type(exc).__name__}"


def _remove_orphans(folder: Path, stem: str, keep: str) -> None:
    """Weights of this run no manifest names (a writer that lost a race); only old ones, so a
    writer about to write its manifest keeps its file."""
    now = time.time()
    for path in folder.glob(f"{stem}-*.pt"):
        try:
            if path.name != keep and now - path.stat().st_mtime > ORPHAN_AFTER_S:
                path.unlink()
        except OSError:
            pass


def train_or_load(name: str, settings: dict, build: Callable[[], nn.Module],
                  train: Callable[[nn.Module], History], *, code=None, folder: str | os.PathLike | None = None,
                  device=None, quiet: bool = False) -> tuple[nn.Module, History]:
    """Return (model, history): loaded from the cache when this exact run is there, else trained.

    Args:
        name: the run's name ("simclr", "supervised", …); part of the file name.
        settings: what makes the run what it is (plain data; dataclasses allowed), the data
            included (`data_fingerprint`).
        build: () → a fresh, untrained model of the right architecture.
        train: model → History; trains the model in place (with its progress line).
        code: what the run's code is, for the key: modules, functions or objects whose package
            modules (and everything those import) train the model. Default: (build, train),
            so a `train` that calls `train_simclr` is keyed by the source train_simclr imports.
        folder: the cache folder (default: data/models under `data_dir()`).
        device: where a loaded model is moved (a trained one stays where `train` put it).
        quiet: no line saying whether it trained or loaded.

    Raises CachedModelMismatch (a ValueError) when a sound cached model does not fit
    `build()` or cannot go to `device`; the cached file is kept.
    """
    _check_name(name)
    folder = _cache_folder(folder)
    code = (build, train) if code is None else tuple(code)
    key = cache_key(name, settings, code)
    stem = f"{name}-{key}"
    state, reason = _read_cached(folder, stem)
    if state is not None:
        model = build()
        try:
            model.load_state_dict(state["model"])
        except RuntimeError as exc:
            raise CachedModelMismatch(
                f"the cached model {stem} does not fit the module build() returns "
                f"({str(exc).splitlines()[0]}): build() makes another architecture than the one trained with "
                "these settings; describe the architecture in the settings (the cached file is kept)") from None
        if device is not None:
            try:
                model.to(device)
            except (RuntimeError, AssertionError, ValueError) as exc:
                raise CachedModelMismatch(f"{name}: cannot move the cached model to device {device!r} "
                                          f"({str(exc).splitlines()[0]}); pick a device this machine has "
                                          "(the cached file is kept)") from None
        if not quiet:
            print(f"{name}: loaded the trained model from the cache ({stem})")
        return model, History.from_dict(state["history"])
    if not quiet:
        print(f"{name}: training ({reason}); it is cached for later notebooks")
    model = build()
    history = train(model)
    state = {"model": {k: v.detach().cpu() for k, v in model.state_dict().items()}, "history": history.as_dict()}
    fd, tmp = tempfile.mkstemp(dir=folder, prefix=f".tmp-{stem}-", suffix=".pt")
    os.close(fd)
    try:
        torch.save(state, tmp)
        sha = _sha256(Path(tmp))
        weights = folder / f"{stem}-{sha[:16]}.pt"
        os.replace(tmp, weights)                     # named by its content: a rival writer's file is another name
    finally:
        Path(tmp).unlink(missing_ok=True)
    version, modules = code_version(*code)
    record = {"name": name, "key": key, "code": version, "code_modules": modules, "weights": weights.name,
              "sha256": sha, "settings": _jsonable(settings)}
    write_atomically(folder / f"{stem}.json",
                     lambda tmp: Path(tmp).write_text(json.dumps(record, indent=1, sort_keys=True)))
    _remove_orphans(folder, stem, weights.name)
    return model, history
