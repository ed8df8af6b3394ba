"""Where datasets are cached: the course's `data/` folder.

Order: $CLAB_DATA_DIR, else the `data/` folder beside the package when the
course is a checkout (editable install), else ~/.cache/contrastive_lab.
"""
from __future__ import annotations

import os
from pathlib import Path

ENV_VAR = "CLAB_DATA_DIR"


def data_dir() -> Path:
    """The folder datasets are downloaded to and cached in (created if missing)."""
    if os.environ.get(ENV_VAR):
        path = Path(os.environ[ENV_VAR]).expanduser()
    else:
        checkout = Path(__file__).resolve().parents[2] / "data"
        path = checkout if checkout.is_dir() else Path.home() / ".cache" / "contrastive_lab"
    if path.exists() and not path.is_dir():
        raise ValueError(f"the data folder {path} is a file; set {ENV_VAR} to a folder")
    try:
        path.mkdir(parents=True, exist_ok=True)
    except (FileExistsError, NotADirectoryError):
        raise ValueError(f"cannot make the data folder {path}: a part of its path is a file; "
                         f"set {ENV_VAR} to a folder") from None
    return path
