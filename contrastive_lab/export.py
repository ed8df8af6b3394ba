"""Export a trained encoder for serving: drop the head, normalise, save with a version tag.

What you ship after contrastive training is the ENCODER, not the projection head
(notebook 05), and its outputs L2-normalised so that an inner-product index ranks
by the cosine similarity the loss was trained with (notebook 12). The export file
says which model version made it and how images must be prepared, so a server
(and a vector index) can refuse to mix versions.

    meta = export_encoder(simclr, "encoder-v1.pt", version="simclr-v1",
                          preprocessing=Preprocessing(image_size=(32, 32), channels=3))
    served = load_exported("encoder-v1.pt", build_encoder=lambda meta: make_encoder(profile))
    vectors = embed_corpus(served, images)        # (N, D), rows of length 1

The format: ONE file, written atomically (a temporary file, then renamed), read
with `torch.load(weights_only=True)` so that loading never runs pickled code, and
checked against the SHA-256 it carries (`integrity`: a damaged file is refused, not
served). It holds a dict of plain values and the encoder's tensors:

    format            "contrastive-lab/encoder"
    format_version    1
    version           your model version tag, e.g. "simclr-v1"; an index records it too
    embedding_dim     D, the length of an output vector
    normalize         True: the served model L2-normalises its outputs
    similarity        what training compared ("cosine"); the index metric must match it
    preprocessing     {"image_size": [H, W], "channels": C, "mean": [...], "std": [...],
                       "value_range": [lo, hi]}: pixels are (x - mean) / std of images in value_range
    architecture      free-form dict for `build_encoder` (e.g. {"backbone": "small_cnn"})
    dropped           names of the submodules left out (["head"] for a SimCLR model)
    state_dict        the encoder's weights and buffers
    sha256            the checksum of everything above

The architecture is code, so it is not in the file: `load_exported` asks you for a
`build_encoder(meta)` function that builds the same (untrained) module, then loads
the weights into it (strictly: every key must match). The command-line trainer
writes this same format.

The served model enforces what the file records: images of another size, of an
integer dtype, with NaN/Inf, or with values outside `value_range` (0–255 pixels
for a model that takes [0, 1]) are refused with a message that says what to fix.
"""
from __future__ import annotations

import math
import numbers
import os
from dataclasses import dataclass

import torch
import torch.nn as nn
import torch.nn.functional as F
from tqdm.auto import tqdm

from .atomic import check_writable
from .integrity import CorruptFileError, load_checked, save_checked
from .validate import value_checks_enabled

FORMAT = "contrastive-lab/encoder"
FORMAT_VERSION = 1


@dataclass(frozen=True)
class Preprocessing:
    """How images must be prepared before the encoder sees them.

    image_size: (H, W) in pixels; channels: C.
    value_range: the range raw pixel values come in (the course's images are floats in [0, 1]).
    mean, std: per-channel normalisation applied by the served model, x → (x - mean) / std
        (the default, 0 and 1, leaves pixels as they are: the course trains on [0, 1] images).
    """

    image_size: tuple[int, int]
    channels: int = 3
    value_range: tuple[float, float] = (0.0, 1.0)
    mean: tuple[float, ...] | None = None
    std: tuple[float, ...] | None = None

    def __post_init__(self):
        def whole(v):
            return not isinstance(v, bool) and isinstance(v, numbers.Integral) and v >= 1

        def numbers_(values):
            return all(isinstance(v, numbers.Real) and not isinstance(v, bool) and math.isfinite(v) for v in values)

        size = self.image_size
        if not isinstance(size, (tuple, list)) or len(size) != 2 or not all(whole(v) for v in size):
            raise ValueError(f"image_size must be (H, W), two whole numbers >= 1, got {size!r}")
        if not whole(self.channels):
            raise ValueError(f"channels must be a whole number >= 1, got {self.channels!r}")
        vr = self.value_range
        if not isinstance(vr, (tuple, list)) or len(vr) != 2 or not numbers_(vr) or not vr[0] < vr[1]:
            raise ValueError(f"value_range must be (low, high) with low < high, both finite, got {vr!r}")
        for name in ("mean", "std"):
            values = getattr(self, name)
            if values is None:
                continue
            if not isinstance(values, (tuple, list)) or len(values) != self.channels or not numbers_(values):
                raise ValueError(f"{name} must hold one finite number per channel ({self.channels}), got {values!r}")
            if name == "std" and min(values) <= 0:
                raise ValueError(f"std must be > 0 for every channel (the model divides by it), got {values!r}")

    def as_dict(self) -> dict:
        c = self.channels
        return {"image_size": [int(s) for s in self.image_size], "channels": int(c),
                "value_range": [float(v) for v in self.value_range],
                "mean": [float(v) for v in (self.mean or (0.0,) * c)],
                "std": [float(v) for v in (self.std or (1.0,) * c)]}


class ExportedEncoder(nn.Module):
    """A served encoder: checks the input's shape, normalises pixels, encodes, L2-normalises.

    forward: images (N, C, H, W) as described by `meta["preprocessing"]` → (N, D) embeddings,
    rows of length 1 when `meta["normalize"]` is True. Always in eval mode.
    Attributes: `encoder` (the module), `meta` (the export's dict, without the weights),
    `version`, `embedding_dim`.
    """

    def __init__(self, encoder: nn.Module, meta: dict):
        super().__init__()
        self.encoder = encoder
        self.meta = {k: v for k, v in meta.items() if k != "state_dict"}
        prep = self.meta["preprocessing"]
        Preprocessing(**{**prep, "image_size": tuple(prep["image_size"])})        # valid, or a clear error
        c = prep["channels"]
        self.register_buffer("mean", torch.tensor(prep["mean"], dtype=torch.float32).view(1, c, 1, 1))
        self.register_buffer("std", torch.tensor(prep["std"], dtype=torch.float32).view(1, c, 1, 1))
        self.eval()

    def _check_values(self, x: torch.Tensor) -> None:
        """Float pixels, finite, inside the recorded value_range. The range is a value check
        (one host read per call; `validate.value_checks(False)` skips it)."""
        low, high = self.meta["preprocessing"]["value_range"]
        scale = " (x.float() / 255 for 8-bit pixels)" if (low, high) == (0.0, 1.0) else ""
        if not x.is_floating_point():
            raise ValueError(f"model {self.version!r} expects float images with values in [{low:g}, {high:g}], "
                             f"got dtype {x.dtype}; convert them{scale}")
        if not value_checks_enabled() or x.numel() == 0:
            return
        finite, least, most = torch.stack([torch.isfinite(x).all().float(), x.amin().float(),
                                           x.amax().float()]).tolist()
        if not finite:
            raise ValueError(f"the images given to model {self.version!r} contain NaN or Inf; "
                             "check how they were loaded and preprocessed")
        tolerance = 1e-3 * (high - low)
        if least < low - tolerance or most > high + tolerance:
            hint = f"; they look like 0-255 pixels: scale them to [0, 1]{scale}" if scale and most > 2 else \
                f"; scale them to [{low:g}, {high:g}]{scale}"
            raise ValueError(f"model {self.version!r} expects pixel values in [{low:g}, {high:g}] (its preprocessing's "
                             f"value_range), got values from {least:.4g} to {most:.4g}{hint}")

    @property
    def version(self) -> str:
        return self.meta["version"]

    @property
    def embedding_dim(self) -> int:
        return self.meta["embedding_dim"]

    def train(self, mode: bool = True) -> "ExportedEncoder":
        return super().train(False)          # a served model never leaves eval mode

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        prep = self.meta["preprocessing"]
        want = (prep["channels"], *prep["image_size"])
        if x.ndim != 4 or tuple(x.shape[1:]) != want:
            raise ValueError(f"model {self.version!r} expects images (N, {want[0]}, {want[1]}, {want[2]}), "
                             f"got {tuple(x.shape)}; resize them as its preprocessing says: {prep}")
        self._check_values(x)
        z = self.encoder((x - self.mean) / self.std).float()
        return F.normalize(z, dim=1) if self.meta["normalize"] else z


def export_encoder(model: nn.Module, path, *, version: str, preprocessing: Preprocessing,
                   architecture: dict | None = None, normalize: bool = True, drop_head: bool = True,
                   similarity: str = "cosine") -> dict:
    """Save `model`'s encoder for serving; return the metadata written (without the weights).

    Args:
        model: a trained model. When it has an `encoder` attribute (SimCLR, MoCo, …) and
            drop_head is True, only `model.encoder` is saved and every other child
            (the projection head) is dropped. Otherwise the module is saved as it is.
        path: the file to write (atomically: a half-written export never appears).
        version: a non-empty model version tag; indexes built from this model record it.
        preprocessing: image size, channels and pixel normalisation the model expects.
        architecture: plain values `build_encoder` needs to rebuild the module.
        normalize: L2-normalise outputs (keep True; False reproduces the export bug of notebook 12).
        drop_head: keep True; False exports the projection head too (the other export bug).
        similarity: the similarity training used ("cosine" for every loss in this course).
    """
    if not isinstance(version, str) or not version.strip():
        raise ValueError(f"version must be a non-empty string such as 'simclr-v1', got {version!r}")
    if not isinstance(preprocessing, Preprocessing):
        raise TypeError("preprocessing must be a Preprocessing(image_size=(H, W), channels=C, ...)")
    for name, value in (("normalize", normalize), ("drop_head", drop_head)):
        if not isinstance(value, bool):
            raise TypeError(f"{name} must be True or False, got {value!r}")
    if not isinstance(similarity, str) or not similarity:
        raise ValueError(f"similarity must name what training compared, e.g. 'cosine', got {similarity!r}")
    check_writable(path, "exported encoder")
    if drop_head and hasattr(model, "encoder"):
        encoder = model.encoder
        dropped = [name for name, _ in model.named_children() if name != "encoder"]
    else:
        encoder, dropped = model, []
    prep = preprocessing.as_dict()
    was_training = encoder.training
    encoder.eval()
    try:
        device = next(encoder.parameters()).device
        with torch.no_grad():
            probe = torch.zeros(1, prep["channels"], *prep["image_size"], device=device)
            out = encoder(probe)
    except Exception as exc:
        raise ValueError(f"the encoder cannot take images shaped as the preprocessing says "
                         f"(1, {prep['channels']}, {prep['image_size'][0]}, {prep['image_size'][1]}): {exc}") from exc
    finally:
        encoder.train(was_training)
    if out.ndim != 2:
        raise ValueError(f"the encoder must return (N, D) vectors, got shape {tuple(out.shape)}")
    meta = {"format": FORMAT, "format_version": FORMAT_VERSION, "version": version,
            "embedding_dim": int(out.shape[1]), "normalize": bool(normalize), "similarity": similarity,
            "preprocessing": prep, "architecture": dict(architecture or {}), "dropped": dropped}
    state = {k: v.detach().cpu().clone() for k, v in encoder.state_dict().items()}
    save_checked({**meta, "state_dict": state}, path)
    return meta


# what an export's dict holds, with the type of each value
_META_TYPES = {"version": str, "embedding_dim": int, "normalize": bool, "similarity": str,
               "preprocessing": dict, "architecture": dict, "dropped": list, "state_dict": dict}


def read_export_meta(path) -> dict:
    """The contents of an export file (safe load, SHA-256 verified, every field checked),
    without building the model. Raises CorruptFileError (a ValueError) naming the file."""
    payload = load_checked(path, what="exported encoder", fmt=FORMAT,
                           fix="write one with contrastive_lab.export.export_encoder")
    where = os.fspath(path)
    if payload.get("format_version") != FORMAT_VERSION:
        raise ValueError(f"{where} has format_version {payload.get('format_version')}, "
                         f"this package reads {FORMAT_VERSION}")
    for key, kind in _META_TYPES.items():
        value = payload.get(key)
        if key not in payload:
            raise CorruptFileError(f"{where} is not a complete exported encoder: it has no {key!r}; "
                                   "export the model again with export_encoder")
        if not isinstance(value, kind) or (kind is int and (isinstance(value, bool) or value < 1)) \
                or (kind is str and key == "version" and not value.strip()):
            raise CorruptFileError(f"{where} has an invalid {key!r}: {value!r} (expected a {kind.__name__}); "
                                   "export the model again with export_encoder")
    prep = payload["preprocessing"]
    try:
        Preprocessing(**{**prep, "image_size": tuple(prep.get("image_size", ()))})
    except (TypeError, ValueError) as exc:
        raise CorruptFileError(f"{where} has invalid preprocessing {prep}: {exc}") from None
    return payload


def load_exported(path, build_encoder) -> ExportedEncoder:
    """Load an export: `build_encoder(meta)` builds the untrained module, the file's weights go in.

    Loading is safe (`torch.load(weights_only=True)`) and strict: a module whose keys or
    shapes differ from the saved weights raises a ValueError naming them. Returns an
    ExportedEncoder in eval mode, on the CPU.
    """
    payload = read_export_meta(path)
    meta = {k: v for k, v in payload.items() if k != "state_dict"}
    try:
        encoder = build_encoder(meta)
    except KeyError as exc:
        raise ValueError(f"build_encoder could not build the module of {os.fspath(path)}: its architecture "
                         f"{meta['architecture']} has no {exc}; export with architecture={{...}} holding what "
                         "build_encoder reads") from exc
    if not isinstance(encoder, nn.Module):
        raise TypeError(f"build_encoder must return an nn.Module, got {type(encoder).__name__}")
    try:
        encoder.load_state_dict(payload["state_dict"], strict=True)
    except RuntimeError as exc:
        raise ValueError(f"the weights in {os.fspath(path)} do not fit the module build_encoder returned; "
                         f"build the architecture the export was made with ({meta['architecture']}): {exc}") from exc
    prep = meta["preprocessing"]
    encoder.eval()                                                    # as it will be served
    device = next(encoder.parameters(), torch.empty(0)).device          # build_encoder may place it anywhere
    try:
        with torch.no_grad():
            dim = encoder(torch.zeros(1, prep["channels"], *prep["image_size"], device=device)).shape[-1]
    except Exception as exc:
        raise ValueError(f"the module build_encoder returned cannot take the images {os.fspath(path)} was exported "
                         f"for (1, {prep['channels']}, {prep['image_size'][0]}, {prep['image_size'][1]}): {exc}") from exc
    if dim != meta["embedding_dim"]:
        raise CorruptFileError(f"{os.fspath(path)} says embedding_dim = {meta['embedding_dim']}, but its weights give "
                               f"{dim}-dimensional outputs; export the model again with export_encoder")
    return ExportedEncoder(encoder, meta)


@torch.no_grad()
def embed_corpus(model: nn.Module, images: torch.Tensor, batch_size: int = 512, progress: bool = True,
                 desc: str = "embedding") -> torch.Tensor:
    """Run `model` over images (N, C, H, W) in batches, in eval mode, with a progress bar.

    Returns (N, D) float32 on the CPU: what the model outputs (unit rows for an
    ExportedEncoder exported with normalize=True). The model's mode is restored.
    """
    if not isinstance(images, torch.Tensor) or images.ndim != 4:
        raise ValueError(f"images must be a tensor (N, C, H, W), got "
                         f"{tuple(images.shape) if isinstance(images, torch.Tensor) else type(images).__name__}")
    if len(images) == 0:
        raise ValueError(f"images is empty (shape {tuple(images.shape)}): nothing to embed")
    if isinstance(batch_size, bool) or not isinstance(batch_size, numbers.Integral) or batch_size < 1:
        raise ValueError(f"batch_size must be a whole number >= 1, got {batch_size!r}")
    device = next(model.parameters()).device
    was_training = model.training
    model.eval()
    try:
        chunks = [model(images[s:s + batch_size].to(device)).float().cpu()
                  for s in tqdm(range(0, len(images), batch_size), desc=desc, leave=False, disable=not progress)]
    finally:
        model.train(was_training)
    return torch.cat(chunks)


__all__ = ["Preprocessing", "ExportedEncoder", "export_encoder", "load_exported", "read_export_meta",
           "embed_corpus", "FORMAT", "FORMAT_VERSION"]
