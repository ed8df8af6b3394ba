"""What the sweeps over seeds share: their --seeds/--out/--merge options, and results files
written whole or not at all, joined only when their runs are comparable.

    parser = argparse.ArgumentParser(description=...)
    add_sweep_options(parser, OUT)                  # --seeds 0 1 2, --out OUT, --merge FILE ...
    args = parser.parse_args()
    if args.merge:
        parts = read_comparable(args.merge, ("profile", "epochs"))   # exits when they differ
        runs = [run for part in parts for run in part["runs"]]
    write(args.out, record)                         # after every run: an interrupt keeps what finished

Used by siglip_batch_sizes.py and tau_batch_sweep.py (run from the repository root, as
`python benchmarks/NAME.py`, which puts this folder on the import path).
"""
from __future__ import annotations

import argparse
import json
from pathlib import Path

from contrastive_lab.atomic import write_atomically


def add_sweep_options(parser: argparse.ArgumentParser, out: Path) -> None:
    """--seeds (default 0 1 2), --out (default `out`) and --merge FILE ... (join, train nothing)."""
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--out", type=Path, default=out)
    parser.add_argument("--merge", type=Path, nargs="+", default=None,
                        help="join the runs of these results files into --out, training nothing")


def read_comparable(paths: list[Path], keys: tuple[str, ...]) -> list[dict]:
    """The results files at `paths`; exits with a message when they differ in any of `keys`."""
    parts = [json.loads(Path(path).read_text()) for path in paths]
    if len({tuple(json.dumps(part.get(key)) for key in keys) for part in parts}) != 1:
        raise SystemExit(f"--merge: the files differ in one of {', '.join(keys)}; their runs are not comparable")
    return parts


def write(path: Path, record: dict) -> None:
    """Write the results file whole or not at all (a temporary file, then a rename)."""
    write_atomically(path, lambda tmp: Path(tmp).write_text(json.dumps(record, indent=1, ensure_ascii=False) + "\n"))
