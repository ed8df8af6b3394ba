"""Notebook upkeep for teachers and maintainers.

    python -m contrastive_lab.notebook_tools execute notebooks/*.ipynb
        re-run each notebook top to bottom in a fresh kernel and store the outputs
    python -m contrastive_lab.notebook_tools strip-solutions --out student notebooks/*.ipynb
        write copies without the cells tagged "solution" (a student edition)

`make execute` and `make student` call these.
"""
from __future__ import annotations

import argparse
import time
from pathlib import Path

SOLUTION_TAG = "solution"


def execute(path: Path, timeout: int = 600) -> float:
    """Run a notebook in place in a fresh kernel (cwd = its folder); return seconds taken."""
    import nbformat
    from nbclient import NotebookClient

    nb = nbformat.read(path, as_version=4)
    start = time.perf_counter()
    NotebookClient(nb, timeout=timeout, kernel_name="python3",
                   resources={"metadata": {"path": str(path.parent)}}).execute()
    seconds = time.perf_counter() - start
    nbformat.write(nb, path)
    return seconds


def strip_solutions(path: Path, out_dir: Path) -> Path:
    """Copy a notebook to out_dir without its solution cells; each becomes an empty
    code cell with a prompt, so the exercise's check fails until it is solved."""
    import nbformat

    nb = nbformat.read(path, as_version=4)
    cells = []
    for cell in nb.cells:
        if SOLUTION_TAG in cell.get("metadata", {}).get("tags", []):
            cells.append(nbformat.v4.new_code_cell("# Your solution here\n"))
        else:
            cells.append(cell)
    nb.cells = cells
    out_dir.mkdir(parents=True, exist_ok=True)
    target = out_dir / path.name
    nbformat.write(nb, target)
    return target


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m contrastive_lab.notebook_tools")
    sub = parser.add_subparsers(dest="command", required=True)
    ex = sub.add_parser("execute", help="re-execute notebooks in place")
    ex.add_argument("notebooks", nargs="+", type=Path)
    st = sub.add_parser("strip-solutions", help="write student copies without solutions")
    st.add_argument("--out", type=Path, default=Path("student"))
    st.add_argument("notebooks", nargs="+", type=Path)
    args = parser.parse_args(argv)
    for path in args.notebooks:
        if args.command == "execute":
            print(f"{path}: executed in {execute(path):.1f} s", flush=True)
        else:
            print(f"{path} -> {strip_solutions(path, args.out)}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
