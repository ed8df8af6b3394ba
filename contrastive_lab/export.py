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
with `torch.load(weights_only=True)` so that loading never runs pickled code. It
holds a dict of plain values and the encoder's tensors:

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

The architecture is code, so it is not in the file: `load_exported` asks you for a
`build_encoder(meta)` function that builds the same (untrained) module, then loads
the weights into it (strictly: every key must match). The command-line trainer
writes this same format.
"""
from __future__ import annotations

import os
from dataclasses import dataclass

import torch
import torch.nn as nn
import torch.nn.functional as F
from tqdm.auto import tqdm

from .atomic import save_atomically

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
        c = prep["channels"]
        self.register_buffer("mean", torch.tensor(prep["mean"], dtype=torch.float32).view(1, c, 1, 1))
        self.register_buffer("std", torch.tensor(prep["std"], dtype=torch.float32).view(1, c, 1, 1))
        self.eval()

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
    save_atomically({**meta, "state_dict": state}, path)
    return meta


def read_export_meta(path) -> dict:
    """The metadata of an export file (safe load), without building the model."""
    payload = torch.load(path, map_location="cpu", weights_only=True)
    if not isinstance(payload, dict) or payload.get("format") != FORMAT:
        raise ValueError(f"{os.fspath(path)} is not an exported encoder (no format {FORMAT!r}); "
                         "write one with contrastive_lab.export.export_encoder")
    if payload.get("format_version") != FORMAT_VERSION:
        raise ValueError(f"{os.fspath(path)} has format_version {payload.get('format_version')}, "
                         f"this package reads {FORMAT_VERSION}")
    return payload


def load_exported(path, build_encoder) -> ExportedEncoder:
    """Load an export: `build_encoder(meta)` builds the untrained module, the file's weights go in.

    Loading is safe (`torch.load(weights_only=True)`) and strict: a module whose keys or
    shapes differ from the saved weights raises a ValueError naming them. Returns an
    ExportedEncoder in eval mode, on the CPU.
    """
    payload = read_export_meta(path)
    meta = {k: v for k, v in payload.items() if k != "state_dict"}
    encoder = build_encoder(meta)
    if not isinstance(encoder, nn.Module):
        raise TypeError(f"build_encoder must return an nn.Module, got {type(encoder).__name__}")
    try:
        encoder.load_state_dict(payload["state_dict"], strict=True)
    except RuntimeError as exc:
        raise ValueError(f"the weights in {os.fspath(path)} do not fit the module build_encoder returned; "
                         f"build the architecture the export was made with ({meta['architecture']}): {exc}") from exc
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
