"""Tensors computed once and cached, like trained models: a frozen encoder's embeddings of a corpus.

A search service embeds its documents ahead of time; notebook 09 does the same, so a second run
reloads the vectors instead of running the encoder again:

    >>> vectors = compute_or_load("minilm-val", {"revision": revision, "texts": digest}, embed)["emb"]

The key is the name, the settings (everything the tensors depend on: for embeddings the model's
revision and a digest of the texts), the version of the package code `compute` uses and, only for
tensors that depend on a seed (seeded=True), the seed offset $CLAB_SEED. The file is written
atomically with its SHA-256 beside it; a corrupt or half-written copy is computed again, never served.
The files sit beside the trained models (data/models under `data_dir()`).
"""
from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Callable
from pathlib import Path

import torch

from .atomic import save_atomically, write_atomically
from .code_version import code_version
from .device import seed_offset
from .model_cache import _cache_folder, _check_name, _jsonable, _sha256


def tensor_key(name: str, settings: dict, code=(), seeded: bool = False) -> str:
    """The key of a computation: its name, its settings, the version of its code and, when
    seeded, the seed offset ($CLAB_SEED), hashed to 16 hex digits."""
    text = json.dumps({"name": name, "settings": _jsonable(settings), "code": code_version(*code)[0],
                       "seed_offset": seed_offset() if seeded else None}, sort_keys=True)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def compute_or_load(name: str, settings: dict, compute: Callable[[], dict[str, torch.Tensor]], *,
                    code=None, folder: str | os.PathLike | None = None, seeded: bool = False,
                    quiet: bool = False) -> dict[str, torch.Tensor]:
    """Return {name: tensor}: loaded from the cache when computed before with these settings and
    this code, else computed by `compute()` and stored (checksummed, written atomically).

    settings: everything the tensors depend on (plain data). seeded: whether they depend on the
    seed offset ($CLAB_SEED); a frozen encoder's embeddings do not. code: the modules, functions
    or objects whose package source computes them (default: the package code `compute` uses).
    """
    _check_name(name)
    folder = _cache_folder(folder)
    code = (compute,) if code is None else tuple(code)
    key = tensor_key(name, settings, code, seeded)
    path, manifest = folder / f"{name}-{key}.pt", folder / f"{name}-{key}.json"
    if path.exists() and manifest.exists():
        try:
            if json.loads(manifest.read_text())["sha256"] != _sha256(path):
                raise ValueError("checksum mismatch")
            tensors = torch.load(path, map_location="cpu", weights_only=True)
            if not quiet:
                print(f"{name}: loaded from the cache ({path.name})")
            return tensors
        except Exception:                            # any fault: compute again rather than serve it
            path.unlink(missing_ok=True)
            manifest.unlink(missing_ok=True)
    tensors = compute()
    if not isinstance(tensors, dict) or not all(isinstance(t, torch.Tensor) for t in tensors.values()):
        raise TypeError("compute() must return a dict {name: tensor}")
    save_atomically({k: t.detach().cpu() for k, t in tensors.items()}, path)
    version, modules = code_version(*code)
    record = {"name": name, "key": key, "code": version, "code_modules": modules, "sha256": _sha256(path),
              "settings": _jsonable(settings)}
    write_atomically(manifest, lambda tmp: Path(tmp).write_text(json.dumps(record, indent=1, sort_keys=True)))
    if not quiet:
        print(f"{name}: computed and cached ({path.name})")
    return tensors
