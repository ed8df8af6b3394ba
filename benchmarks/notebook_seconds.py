"""Seconds each notebook takes top to bottom in a fresh kernel (quick profile).

Runs copies in a temporary folder, so the stored outputs are not touched.

    python benchmarks/notebook_seconds.py [notebooks/02_triplet_loss.ipynb ...]
"""
from __future__ import annotations

import os
import shutil
import sys
import tempfile
from pathlib import Path

from tools.notebook_tools import execute

BUDGET_S = 120


def main(paths: list[str]) -> None:
    os.environ.setdefault("CLAB_PROFILE", "quick")
    notebooks = [Path(p) for p in paths] or sorted(Path("notebooks").glob("*.ipynb"))
    total = 0.0
    with tempfile.TemporaryDirectory() as tmp:
        for nb in notebooks:
            copy = Path(tmp) / nb.name
            shutil.copy(nb, copy)
            seconds = execute(copy)
            total += seconds
            print(f"{nb.name:<32} {seconds:6.1f} s  ({seconds / BUDGET_S:.2f} of the {BUDGET_S} s budget)",
                  flush=True)
    print(f"{'total':<32} {total:6.1f} s")


if __name__ == "__main__":
    main(sys.argv[1:])
