"""Your own images: a folder laid out as torchvision's ImageFolder, loaded as one uint8 tensor.

    my_images/
        cats/   001.jpg  002.png  …
        dogs/   a.jpg …
        (one sub-folder per class; for unlabelled images, put them all in one sub-folder)

    >>> x, y, classes = load_image_folder("my_images", image_size=32)
    >>> x.shape, x.dtype, classes          # (N, 3, 32, 32), torch.uint8, ['cats', 'dogs']

Every image is converted to RGB (turned upright as its EXIF orientation says; 16-bit
images scaled to 8 bits) and resized to image_size × image_size (the course's encoders
and recipes expect small square images), so the course's training functions take `x`
as they take the generated data. Errors name the problem and the fix: a missing or
empty folder, images not in sub-folders, a file that cannot be read, an image too large
to decode safely. What is not a regular file (a named pipe, a socket) is skipped, a
symbolic link that loops back is followed once, and images lying beside the class
folders are reported, not silently dropped.
"""
from __future__ import annotations

import os
import stat
import sys
from pathlib import Path

import numpy as np
import torch

IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".ppm", ".bmp", ".pgm", ".tif", ".tiff", ".webp")


def _is_image_name(name: str) -> bool:
    return name.lower().endswith(IMAGE_EXTENSIONS)


def _is_regular_file(path: str) -> bool:
    """True for a regular file (after symlinks); False for pipes, sockets, devices, folders."""
    try:
        return stat.S_ISREG(os.stat(path).st_mode)
    except OSError:
        return False


def _scan_class(folder: Path, skipped: list[str]) -> list[str]:
    """Image files under `folder`, sorted, following symbolic links but entering each real
    folder once (a link back up the tree is not a second copy of the images)."""
    found, seen = [], set()
    for root, dirs, files in os.walk(folder, followlinks=True):
        st = os.stat(root)
        if (st.st_dev, st.st_ino) in seen:
            dirs[:] = []
            continue
        seen.add((st.st_dev, st.st_ino))
        dirs.sort()
        for name in sorted(files):
            path = os.path.join(root, name)
            if not _is_image_name(name):
                continue
            if _is_regular_file(path):
                found.append(path)
            else:
                skipped.append(path)
    return found


def scan_image_folder(folder: str | os.PathLike) -> tuple[list[tuple[str, int]], list[str]]:
    """The (path, label) of every image of an ImageFolder layout, and the class names
    (sub-folders, sorted; the label is the index). Raises ValueError naming the problem."""
    folder = Path(folder)
    if not folder.exists():
        raise ValueError(f"--data {folder}: no such folder")
    if not folder.is_dir():
        raise ValueError(f"--data {folder}: not a folder; give the folder that holds one sub-folder per class")
    try:
        entries = sorted(os.scandir(folder), key=lambda e: e.name)
    except PermissionError as exc:
        raise ValueError(f"--data {folder}: cannot read the folder ({exc}); check its permissions") from None
    classes = [e.name for e in entries if e.is_dir() and not e.name.startswith(".")]   # not .ipynb_checkpoints
    loose = [e.name for e in entries if not e.is_dir() and _is_image_name(e.name)]
    if not classes:
        if loose:
            raise ValueError(f"--data {folder}: the images must be in sub-folders (one per class), found "
                             f"{len(loose)} directly in it (e.g. {loose[0]}). For unlabelled images make one "
                             f"sub-folder: {folder}/all/{loose[0]}")
        raise ValueError(f"--data {folder}: no images found. Expected {folder}/<class>/<image>, with "
                         f"extensions {', '.join(IMAGE_EXTENSIONS)}")
    samples, skipped, empty = [], [], []
    for label, name in enumerate(classes):
        paths = _scan_class(folder / name, skipped)
        if not paths:
            empty.append(name)
        samples += [(p, label) for p in paths]
    if empty:
        raise ValueError(f"--data {folder}: no images found in {', '.join(empty)}. Expected {folder}/<class>/<image>, "
                         f"with extensions {', '.join(IMAGE_EXTENSIONS)}; remove empty class folders")
    if loose:
        print(f"--data {folder}: ignored {len(loose)} image(s) lying beside the class folders (e.g. {loose[0]}); "
              "only images inside a class folder are used")
    if skipped:
        print(f"--data {folder}: skipped {len(skipped)} entry(ies) that are not regular files "
              f"(e.g. {skipped[0]}: a named pipe, socket or device)")
    return samples, classes


def _to_rgb(image):
    """A PIL image as RGB: upright (EXIF orientation), 16- and 32-bit grey scaled to 0-255."""
    from PIL import Image, ImageOps

    image = ImageOps.exif_transpose(image)
    if image.mode.startswith("I;16") or image.mode == "I":
        values = np.asarray(image, dtype=np.float64)
        scale = 257.0 if image.mode.startswith("I;16") or values.max() > 255 else 1.0     # 65535 → 255
        image = Image.fromarray(np.clip(np.round(values / scale), 0, 255).astype(np.uint8), mode="L")
    return image.convert("RGB")


def jpeg_corruption(path: str) -> str:
    """What libjpeg complains about while decoding the JPEG file `path` ("" when nothing).

    Pillow decodes a JPEG whose compressed data was damaged mid-stream (a few garbled
    bytes) into wrong pixels without a word; libjpeg notices ("Corrupt JPEG data: …") but
    reports it only as a warning printed to the process's stderr. This decodes the file
    once more with torchvision's libjpeg and reads what it printed.
    """
    import tempfile
    import warnings

    try:
        from torchvision.io import decode_jpeg, read_file
    except ImportError:                        # a torchvision without its JPEG decoder: no check
        return ""
    sys.stderr.flush()
    saved = os.dup(2)
    with tempfile.TemporaryFile() as captured:
        os.dup2(captured.fileno(), 2)
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")            # torchvision's deprecation notice
                decode_jpeg(read_file(str(path)))
        except RuntimeError as exc:
            return str(exc)
        finally:
            os.dup2(saved, 2)
            os.close(saved)
        captured.seek(0)
        printed = captured.read().decode(errors="replace")
    return " ".join(line.strip() for line in printed.splitlines() if "JPEG" in line)


def read_image(path: str) -> torch.Tensor:
    """One image file as a (3, H, W) uint8 tensor. Raises ValueError naming the file
    (also for a JPEG whose compressed data is damaged: it would decode into wrong pixels)."""
    from PIL import Image

    try:
        with Image.open(path) as image:
            rgb = _to_rgb(image)
            damaged = jpeg_corruption(path) if image.format == "JPEG" else ""
    except Image.DecompressionBombError as exc:
        raise ValueError(f"cannot read image {path}: it is too large to decode safely ({exc}). Shrink it or "
                         "remove it") from None
    except (OSError, ValueError, SyntaxError) as exc:
        raise ValueError(f"cannot read image {path}: {exc}. Remove the file or convert it to PNG / JPEG") from None
    if damaged:
        raise ValueError(f"cannot read image {path}: its JPEG data is damaged ({damaged}); it would load as wrong "
                         "pixels. Remove the file or replace it with an intact copy")
    return torch.from_numpy(np.asarray(rgb, dtype=np.uint8).copy()).permute(2, 0, 1)


def load_image_folder(folder: str | os.PathLike, image_size: int = 32, n: int | None = None,
                      seed: int = 0) -> tuple[torch.Tensor, torch.Tensor, list[str]]:
    """Load every image of an ImageFolder layout.

    Args:
        folder: a folder with one sub-folder per class, images inside them.
        image_size: the side the images are resized to (square), a whole number ≥ 8.
        n: keep at most n images, drawn at random with `seed` (all by default).

    Returns (images (N, 3, S, S) uint8, labels (N,) int64 — the sub-folder's
    index, classes — the sub-folder names in label order).
    Raises ValueError naming the problem and the fix.
    """
    from torchvision.transforms import v2

    if isinstance(image_size, bool) or not isinstance(image_size, (int, np.integer)):
        raise ValueError(f"image_size must be a whole number of pixels, got {image_size!r}")
    if image_size < 8:
        raise ValueError(f"image_size must be at least 8 pixels, got {image_size}")
    if n is not None and (isinstance(n, bool) or not isinstance(n, (int, np.integer)) or n < 1):
        raise ValueError(f"n must be a whole number of at least 1, got {n!r}")
    samples, classes = scan_image_folder(folder)
    if n is not None:
        keep = torch.randperm(len(samples), generator=torch.Generator().manual_seed(seed))[:n]
        samples = [samples[i] for i in keep.tolist()]
    resize = v2.Resize((int(image_size), int(image_size)), antialias=True)
    images = torch.empty(len(samples), 3, int(image_size), int(image_size), dtype=torch.uint8)
    for i, (path, _) in enumerate(samples):
        images[i] = resize(read_image(path))
    labels = torch.tensor([label for _, label in samples], dtype=torch.long)
    return images, labels, classes
