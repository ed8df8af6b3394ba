"""Train once, load afterwards: a checksummed cache of trained models under data/models/.

A later notebook that needs a model an earlier one trained (notebook 11 and 12
use notebook 05's SimCLR) asks for it by name and settings:

    >>> model, history = train_or_load("simclr", settings, build, train)

- `settings` is everything that makes the run what it is (the profile, the
  method's hyper-parameters, the data, the seed); with the package's code
  version it forms the key. A model trained with other settings, or by other
  code, is never served: it is trained anew, and one line says why.
- The file's SHA-256 is recorded beside it and checked before loading; a
  corrupt or half-copied file is retrained, not loaded.
- Loading is safe (`torch.load(weights_only=True)`: tensors and plain data only).
- Every notebook still runs from an empty cache; it then trains (with its
  progress line) and stores the model for the next one.

`compute_or_load` does the same for tensors that are costly to compute and fixed by
their inputs, such as a frozen encoder's embeddings of a corpus ("embed the corpus once"):

    >>> vectors = compute_or_load("minilm-val", {"model": revision, "texts": digest}, embed)["emb"]
"""
from __future__ import annotations

import dataclasses
import hashlib
import json
import os
from collections.abc import Callable
from pathlib import Path

import torch
import torch.nn as nn

from .atomic import save_atomically, write_atomically
from .data.cache import data_dir
from .device import seed_offset
from .train import History

PACKAGE = Path(__file__).resolve().parent


def code_version() -> str:
    """A hash of the package's source (exercises aside): any change to the code that trains
    a model makes earlier cached models stale."""
    h = hashlib.sha256()
    for path in sorted(PACKAGE.rglob("*.py")):
        if "exercises" not in path.parts:
            h.update(str(path.relative_to(PACKAGE)).encode())
            h.update(path.read_bytes())
    return h.hexdigest()[:16]


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


def cache_key(name: str, settings: dict, seeded: bool = True) -> str:
    """The key of a run: its name, its settings, the seed offset ($CLAB_SEED, unless the result
    does not depend on any seed: seeded=False) and the code version, hashed."""
    text = json.dumps({"name": name, "settings": _jsonable(settings), "code": code_version(),
                       "seed_offset": seed_offset() if seeded else None}, sort_keys=True)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def train_or_load(name: str, settings: dict, build: Callable[[], nn.Module],
                  train: Callable[[nn.Module], History], *, folder: str | os.PathLike | None = None,
                  device=None, quiet: bool = False) -> tuple[nn.Module, History]:
    """Return (model, history): loaded from the cache when this exact run is there, else trained.

    Args:
        name: the run's name ("simclr", "supervised", …); part of the file name.
        settings: what makes the run what it is (plain data; dataclasses allowed).
        build: () → a fresh, untrained model of the right architecture.
        train: model → History; trains the model in place (with its progress line).
        folder: the cache folder (default: data/models under `data_dir()`).
        device: where a loaded model is moved (a trained one stays where `train` put it).
        quiet: no line saying whether it trained or loaded.
    """
    folder = Path(folder) if folder is not None else data_dir() / "models"
    folder.mkdir(parents=True, exist_ok=True)
    key = cache_key(name, settings)
    weights, manifest = folder / f"{name}-{key}.pt", folder / f"{name}-{key}.json"
    reason = "no cached model with these settings and this code"
    if weights.exists() and manifest.exists():
        try:
            recorded = json.loads(manifest.read_text())
            if recorded["sha256"] != _sha256(weights):
                raise ValueError("its checksum does not match (a corrupt or partial file)")
            state = torch.load(weights, map_location="cpu", weights_only=True)
            model = build()
            model.load_state_dict(state["model"])
            if device is not None:
                model.to(device)
            if not quiet:
                print(f"{name}: loaded the trained model from the cache ({weights.name})")
            return model, History.from_dict(state["history"])
        except Exception as exc:                     # any fault: retrain rather than serve it
            reason = f"the cached copy was unusable: {str(exc).splitlines()[0] if str(exc) else type(exc).__name__}"
            weights.unlink(missing_ok=True)
            manifest.unlink(missing_ok=True)
    if not quiet:
        print(f"{name}: training ({reason}); it is cached for later notebooks")
    model = build()
    history = train(model)
    state = {"model": {k: v.detach().cpu() for k, v in model.state_dict().items()}, "history": history.as_dict()}
    save_atomically(state, weights)
    record = {"name": name, "key": key, "code": code_version(), "sha256": _sha256(weights),
              "settings": _jsonable(settings)}
    write_atomically(manifest, lambda tmp: Path(tmp).write_text(json.dumps(record, indent=1, sort_keys=True)))
    return model, history


def compute_or_load(name: str, settings: dict, compute: Callable[[], dict[str, torch.Tensor]], *,
                    folder: str | os.PathLike | None = None, seeded: bool = False,
                    quiet: bool = False) -> dict[str, torch.Tensor]:
    """Return {name: tensor}: loaded from the cache when computed before with these settings and
    this code, else computed by `compute()` and stored (checksummed, written atomically).

    settings must describe everything the tensors depend on (for embeddings: the model's
    revision and a digest of the texts). seeded: whether they depend on the seed offset
    ($CLAB_SEED); a frozen encoder's embeddings do not.
    """
    folder = Path(folder) if folder is not None else data_dir() / "models"
    folder.mkdir(parents=True, exist_ok=True)
    key = cache_key(name, settings, seeded)
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
    record = {"name": name, "key": key, "code": code_version(), "sha256": _sha256(path),
              "settings": _jsonable(settings)}
    write_atomically(manifest, lambda tmp: Path(tmp).write_text(json.dumps(record, indent=1, sort_keys=True)))
    if not quiet:
        print(f"{name}: computed and cached ({path.name})")
    return tensors
