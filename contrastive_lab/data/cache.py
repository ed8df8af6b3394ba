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


def shown_path(path) -> str:
    """`path` as a learner should read it in an output: relative to the working folder when
    it lies in the same checkout (`../data/models` from notebooks/), else with `~` for the home
    folder; never the absolute path of whoever ran it, which means nothing on another machine."""
    path = Path(path).expanduser().resolve()
    here = Path.cwd().resolve()
    try:
        relative = os.path.relpath(path, here)
    except ValueError:                                  # another drive (Windows)
        relative = None
    if relative is not None and not relative.startswith(os.pardir * 2) and relative.count(os.pardir) <= 1:
        return relative
    home = Path.home().resolve()
    if path == home or home in path.parents:
        return "~/" + str(path.relative_to(home))
    return str(path)

