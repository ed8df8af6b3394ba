"""Your own images: a folder laid out as torchvision's ImageFolder, loaded as one uint8 tensor.

    my_images/
        cats/   001.jpg  002.png  …
        dogs/   a.jpg …
        (one sub-folder per class; for unlabelled images, put them all in one sub-folder)

    >>> x, y, classes = load_image_folder("my_images", image_size=32)
    >>> x.shape, x.dtype, classes          # (N, 3, 32, 32), torch.uint8, ['cats', 'dogs']

Every image is converted to RGB and resized to image_size × image_size (the
course's encoders and recipes expect small square images), so the course's
training functions take `x` as they take the generated data. Errors name the
problem and the fix: a missing or empty folder, images not in sub-folders,
a file that cannot be read.
"""
from __future__ import annotations

import os
from pathlib import Path

import torch

IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".ppm", ".bmp", ".pgm", ".tif", ".tiff", ".webp")


def load_image_folder(folder: str | os.PathLike, image_size: int = 32, n: int | None = None,
                      seed: int = 0) -> tuple[torch.Tensor, torch.Tensor, list[str]]:
    """Load every image of an ImageFolder layout.

    Args:
        folder: a folder with one sub-folder per class, images inside them.
        image_size: the side the images are resized to (square).
        n: keep at most n images, drawn at random with `seed` (all by default).

    Returns (images (N, 3, S, S) uint8, labels (N,) int64 — the sub-folder's
    index, classes — the sub-folder names in label order).
    Raises ValueError naming the problem and the fix.
    """
    from torchvision.datasets import ImageFolder
    from torchvision.transforms import v2

    folder = Path(folder)
    if not folder.exists():
        raise ValueError(f"--data {folder}: no such folder")
    if not folder.is_dir():
        raise ValueError(f"--data {folder}: not a folder; give the folder that holds one sub-folder per class")
    if image_size < 8:
        raise ValueError(f"image_size must be at least 8 pixels, got {image_size}")
    try:
        dataset = ImageFolder(str(folder), allow_empty=False)
    except FileNotFoundError as exc:
        loose = [p.name for p in folder.iterdir() if p.is_file() and p.suffix.lower() in IMAGE_EXTENSIONS]
        if loose:
            raise ValueError(f"--data {folder}: the images must be in sub-folders (one per class), found "
                             f"{len(loose)} directly in it (e.g. {loose[0]}). For unlabelled images make one "
                             f"sub-folder: {folder}/all/{loose[0]}") from None
        raise ValueError(f"--data {folder}: no images found. Expected {folder}/<class>/<image>, with "
                         f"extensions {', '.join(IMAGE_EXTENSIONS)} ({exc})") from None
    except PermissionError as exc:
        raise ValueError(f"--data {folder}: cannot read the folder ({exc}); check its permissions") from None
    samples = dataset.samples
    if n is not None:
        if n < 1:
            raise ValueError(f"n must be at least 1, got {n}")
        keep = torch.randperm(len(samples), generator=torch.Generator().manual_seed(seed))[:n]
        samples = [samples[i] for i in keep.tolist()]
    resize = v2.Compose([v2.PILToTensor(), v2.Resize((image_size, image_size), antialias=True)])
    images = torch.empty(len(samples), 3, image_size, image_size, dtype=torch.uint8)
    for i, (path, _) in enumerate(samples):
        try:
            images[i] = resize(dataset.loader(path))          # PIL image, converted to RGB
        except (OSError, ValueError) as exc:
            raise ValueError(f"cannot read image {path}: {exc}. Remove the file or convert it to PNG / JPEG") from None
    labels = torch.tensor([label for _, label in samples], dtype=torch.long)
    return images, labels, list(dataset.classes)
