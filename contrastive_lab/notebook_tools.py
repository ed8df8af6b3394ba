"""Notebook upkeep for teachers and maintainers.

    python -m contrastive_lab.notebook_tools execute notebooks/*.ipynb
        re-run each notebook top to bottom in a fresh kernel and store the outputs
    python -m contrastive_lab.notebook_tools strip-solutions --out student notebooks/*.ipynb
        write the student copy: every cell tagged "solution" becomes a placeholder
    python -m contrastive_lab.notebook_tools widget-notebooks --out build/browser-test notebooks/*.ipynb
        write, for each notebook with a widget, a small notebook of only the cells its widgets need
    python -m contrastive_lab.notebook_tools dependents notebooks/*.ipynb
        list cells that read a name only a solution defines (they break the student copy)
    python -m contrastive_lab.notebook_tools colab --out build/colab notebooks/*.ipynb
        write copies that install the course first when opened in Google Colab
    python -m contrastive_lab.notebook_tools colab-links --write docs/teaching.md notebooks/*.ipynb
        the table of "Open in Colab" links, one per notebook, into docs/teaching.md

`make execute`, `make student` and the browser test (tests/test_browser.py) call these.

The student copy. A solution cell becomes a placeholder that defines, as `...` (or, for a
function, a stub with the same signature that raises NotImplementedError), every name
that later cells read from it; the `check_…` after it then prints "not done yet" instead of
raising (see contrastive_lab.exercises), so Run All goes through a copy in which nothing is
solved. Every output is cleared, since stored outputs (a check's ✓ line, a table after an
exercise) can give an answer away.
"""
from __future__ import annotations

import argparse
import copy
import time
from pathlib import Path

from .notebook_analysis import (SOLUTION_TAG, solution_readers, cells_needed, placeholder_source,
                                solution_dependents, widget_cells)

PLACEHOLDER_TAG = "exercise"
MARKDOWN_PLACEHOLDER = "*Your answer here.*"


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


def student_notebook(nb):
    """The student copy of a notebook (a new object; `nb` is left as it was): solution cells
    replaced by placeholders, every output and execution count cleared, widget state dropped."""
    import nbformat

    readers = solution_readers(nb)
    out = copy.deepcopy(nb)
    cells = []
    for i, cell in enumerate(out.cells):
        tags = cell.get("metadata", {}).get("tags", [])
        if SOLUTION_TAG in tags:
            keep_tags = [t for t in tags if t != SOLUTION_TAG] + [PLACEHOLDER_TAG]
            if cell.cell_type == "code":
                new = nbformat.v4.new_code_cell(placeholder_source(cell.source, sorted(readers.get(i, ()))))
            else:
                new = nbformat.v4.new_markdown_cell(MARKDOWN_PLACEHOLDER)
            new.metadata["tags"] = keep_tags
            if "id" in cell:
                new["id"] = cell["id"]
            cell = new
        if cell.cell_type == "code":
            cell.outputs = []
            cell.execution_count = None
        cells.append(cell)
    out.cells = cells
    out.metadata.pop("widgets", None)
    return out


def strip_solutions(path: Path, out_dir: Path) -> Path:
    """Write the student copy of the notebook at `path` into `out_dir` (same file name)."""
    import nbformat

    nb = nbformat.read(path, as_version=4)
    out_dir.mkdir(parents=True, exist_ok=True)
    target = out_dir / path.name
    nbformat.write(student_notebook(nb), target)
    return target


PLACEHOLDER_REPO = "OWNER/contrastive-lab"      # until the README's COURSE_REPO line names the real one


def course_repo(readme: Path | None = None) -> str:
    """The GitHub "owner/name" of the course: the README's `COURSE_REPO = owner/name` line,
    else the placeholder OWNER/contrastive-lab."""
    import re

    readme = readme or Path(__file__).resolve().parents[1] / "README.md"
    text = readme.read_text() if readme.exists() else ""
    m = re.search(r"COURSE_REPO\s*=\s*`?([\w.-]+/[\w.-]+)`?", text)
    return m.group(1) if m else PLACEHOLDER_REPO


def colab_install_source(repo: str) -> str:
    """The cell that makes a notebook run on Colab: clone the course, install it, and run
    from its notebooks/ folder. Does nothing outside Colab."""
    return f"""# On Google Colab: install the course first (about a minute); elsewhere this cell does nothing.
import os
import sys

if "google.colab" in sys.modules and not os.path.isdir("/content/contrastive-lab"):
    !git clone --quiet --depth 1 https://github.com/{repo} /content/contrastive-lab
    !pip install --quiet -e /content/contrastive-lab
    sys.path.insert(0, "/content/contrastive-lab")       # this kernel started before the install
    os.chdir("/content/contrastive-lab/notebooks")
    os.environ["CLAB_VERSIONS"] = "any"                   # Colab keeps its own PyTorch"""


def colab_notebook(nb, repo: str):
    """A copy of `nb` whose first cell installs the course on Colab (see colab_install_source)."""
    import nbformat

    out = copy.deepcopy(nb)
    cell = nbformat.v4.new_code_cell(colab_install_source(repo))
    cell.metadata["tags"] = ["colab-install"]
    out.cells.insert(0, cell)
    return out


LINKS_START = "<!-- colab-links: written by `python -m contrastive_lab.notebook_tools colab-links --write` -->"
LINKS_END = "<!-- /colab-links -->"


def write_colab_links(doc: Path, table: str) -> None:
    """Replace the table between the colab-links markers of `doc` (a markdown file)."""
    text = doc.read_text()
    start, end = text.index(LINKS_START) + len(LINKS_START), text.index(LINKS_END)
    doc.write_text(text[:start] + "\n" + table + "\n" + text[end:])


def colab_links(paths, repo: str, branch: str = "main") -> str:
    """A markdown table: one "Open in Colab" link per notebook (opened from GitHub)."""
    rows = ["| notebook | open in Colab |", "|---|---|"]
    for path in paths:
        url = f"https://colab.research.google.com/github/{repo}/blob/{branch}/notebooks/{Path(path).name}"
        rows.append(f"| {Path(path).stem} | [open]({url}) |")
    return "\n".join(rows)


def widget_notebook(path: Path):
    """A small notebook that shows the widgets of the notebook at `path`: a first cell that
    moves to the notebook's folder, then only the cells its widget cells need (see
    notebook_analysis.cells_needed), outputs cleared. Returns (notebook, indices of the
    widget cells in it); (None, []) when the notebook has no widget."""
    import nbformat

    nb = nbformat.read(path, as_version=4)
    targets = widget_cells(nb)
    if not targets:
        return None, []
    small = nbformat.v4.new_notebook(metadata=copy.deepcopy(nb.metadata))
    small.metadata.pop("widgets", None)
    small.cells = [nbformat.v4.new_code_cell(
        f"# the widget cells of {path.name} and the cells they need, run where the notebook runs\n"
        f"import os\nos.chdir({str(path.resolve().parent)!r})")]
    widgets = []
    for i in cells_needed(nb, targets):
        cell = nbformat.v4.new_code_cell(nb.cells[i].source)
        cell.metadata["tags"] = list(nb.cells[i].get("metadata", {}).get("tags", []))
        cell.metadata["source_cell"] = i
        if i in targets:
            widgets.append(len(small.cells))
        small.cells.append(cell)
    return small, widgets


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m contrastive_lab.notebook_tools")
    sub = parser.add_subparsers(dest="command", required=True)
    ex = sub.add_parser("execute", help="re-execute notebooks in place")
    ex.add_argument("notebooks", nargs="+", type=Path)
    st = sub.add_parser("strip-solutions", help="write student copies: solutions become placeholders")
    st.add_argument("--out", type=Path, default=Path("student"))
    st.add_argument("notebooks", nargs="+", type=Path)
    wn = sub.add_parser("widget-notebooks", help="write a small notebook per notebook with widgets")
    wn.add_argument("--out", type=Path, default=Path("build") / "browser-test")
    wn.add_argument("notebooks", nargs="+", type=Path)
    dp = sub.add_parser("dependents", help="list cells that read a name only a solution defines")
    dp.add_argument("notebooks", nargs="+", type=Path)
    co = sub.add_parser("colab", help="write copies that install the course first on Colab")
    co.add_argument("--out", type=Path, default=Path("build") / "colab")
    co.add_argument("--repo", default=None, help="GitHub owner/name (default: the README's COURSE_REPO)")
    co.add_argument("notebooks", nargs="+", type=Path)
    cl = sub.add_parser("colab-links", help="print the Colab links table for docs/teaching.md")
    cl.add_argument("--repo", default=None, help="GitHub owner/name (default: the README's COURSE_REPO)")
    cl.add_argument("--write", type=Path, default=None, help="put the table into this file, between its markers")
    cl.add_argument("notebooks", nargs="+", type=Path)
    args = parser.parse_args(argv)
    if args.command == "colab-links":
        table = colab_links(args.notebooks, args.repo or course_repo())
        if args.write:
            write_colab_links(args.write, table)
        else:
            print(table)
        return 0
    status = 0
    for path in args.notebooks:
        if args.command == "execute":
            print(f"{path}: executed in {execute(path):.1f} s", flush=True)
        elif args.command == "strip-solutions":
            print(f"{path} -> {strip_solutions(path, args.out)}")
        elif args.command == "widget-notebooks":
            import nbformat

            small, widgets = widget_notebook(path)
            if small is not None:
                args.out.mkdir(parents=True, exist_ok=True)
                nbformat.write(small, args.out / path.name)
                print(f"{path} -> {args.out / path.name} ({len(small.cells)} cells, widgets in {widgets})")
        elif args.command == "colab":
            import nbformat

            args.out.mkdir(parents=True, exist_ok=True)
            nbformat.write(colab_notebook(nbformat.read(path, as_version=4), args.repo or course_repo()),
                           args.out / path.name)
            print(f"{path} -> {args.out / path.name}")
        else:
            import nbformat

            for dependent in solution_dependents(nbformat.read(path, as_version=4)):
                print(f"{path}: {dependent}")
                status = 1
    return status


if __name__ == "__main__":
    raise SystemExit(main())
