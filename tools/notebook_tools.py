"""Notebook upkeep for teachers and maintainers.

    python -m tools.notebook_tools execute notebooks/*.ipynb
        re-run each notebook top to bottom in a fresh kernel and store the outputs
    python -m tools.notebook_tools strip-solutions --out student notebooks/*.ipynb
        write the student copy: every cell tagged "solution" becomes a placeholder
    python -m tools.notebook_tools widget-notebooks --out build/browser-test notebooks/*.ipynb
        write, for each notebook with a widget, a small notebook of only the cells its widgets need
    python -m tools.notebook_tools dependents notebooks/*.ipynb
        list cells that read a name only a solution defines (they break the student copy)
    python -m tools.notebook_tools colab --out build/colab notebooks/*.ipynb
        write copies that install the course first when opened in Google Colab
    python -m tools.notebook_tools colab-links --write docs/teaching.md notebooks/*.ipynb
        the table of "Open in Colab" links, one per notebook, into docs/teaching.md

`make execute`, `make student` and the browser test (tests/test_browser.py) call these.

The student copy. A solution cell becomes a placeholder that defines, as `...` (or, for a
function, a stub with the same signature that raises NotImplementedError), every name
that later cells read from it; the `check_…` after it then prints "not done yet" instead of
raising (see contrastive_lab.exercises), so Run All goes through a copy in which nothing is
solved. Every output is cleared, since stored outputs (a check's ✓ line, a table after an
exercise) can give an answer away. The teacher's notebooks are never touched: an --out that
holds one of them is refused, and so are two notebooks of the same name. A cell that looks
like a solution but lacks the exact "solution" tag stops the copy (see
notebook_analysis.untagged_solutions); every notebook is read and checked before any is written.
"""
from __future__ import annotations

import argparse
import copy
import sys
import time
from pathlib import Path

from .notebook_analysis import (SOLUTION_TAG, cells_needed, placeholder_source, solution_dependents,
                                solution_readers, tags, untagged_solutions, widget_cells)

PLACEHOLDER_TAG = "exercise"
ROOT = Path(__file__).resolve().parents[1]
TIMINGS_FILE = ROOT / "contrastive_lab" / "course_timings.json"
NOTES = ROOT / "docs" / "teaching.md"
MARKDOWN_PLACEHOLDER = "*Your answer here.*"


class NotebookError(ValueError):
    """A notebook cannot be read, or a command would lose or leak a teacher's work."""


def read_notebook(path: Path):
    """The notebook at `path` (nbformat, version 4). Raises NotebookError naming the file."""
    import nbformat

    path = Path(path)
    if not path.is_file():
        raise NotebookError(f"{path}: no such notebook")
    try:
        nb = nbformat.read(path, as_version=4)
    except Exception as exc:                          # NotJSONError, ValidationError, a missing key …
        first = str(exc).splitlines()[0] if str(exc) else ""
        raise NotebookError(f"{path} is not a readable notebook ({type(exc).__name__}: {first[:120]})") from None
    if not isinstance(nb.get("cells"), list):
        raise NotebookError(f"{path} is not a readable notebook (it has no list of cells)")
    return nb


def run_in_kernel(nb, folder: Path, timeout: int = 600) -> float:
    """Run every cell of the notebook object `nb` in a fresh kernel whose working folder is
    `folder` (outputs stored in `nb`); return the seconds taken."""
    from nbclient import NotebookClient

    start = time.perf_counter()
    NotebookClient(nb, timeout=timeout, kernel_name="python3",
                   resources={"metadata": {"path": str(folder)}}).execute()
    return time.perf_counter() - start


def execute(path: Path, timeout: int = 600, before_writing=None) -> float:
    """Run a notebook in place in a fresh kernel (cwd = its folder); return seconds taken.
    `before_writing(nb, seconds)`, if given, may change the executed notebook before it is
    written (the course run writes the measured time into its first cell)."""
    import nbformat

    nb = read_notebook(path)
    seconds = run_in_kernel(nb, path.parent, timeout)
    if before_writing is not None:
        before_writing(nb, seconds)
    nbformat.write(nb, path)
    return seconds


def execute_course(paths: list[Path], whole_course: bool, timings_file: Path = TIMINGS_FILE,
                   notes: Path = NOTES) -> None:
    """Execute notebooks in order, each in a fresh kernel, and write each one's measured time
    into its first cell, the timings file and the notes' table.

    whole_course: the model cache is a fresh temporary folder ($CLAB_MODEL_DIR), so each shared
    model is trained once, by the first notebook that asks for it, and loaded by the later ones
    (tests/test_timings.py checks the stored outputs for it); the user's data/models is not
    touched; and the pre-flight's speed test is recorded as the reference machine.
    """
    import os
    import tempfile

    from contrastive_lab.course_timings import STUDY_MINUTES, read_timings

    from .timings import minutes_table, record_notebook, rewrite_time_line, slowest_cells, time_line, write_minutes_table

    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    reference = _reference_machine(cores) if whole_course else None
    with tempfile.TemporaryDirectory(prefix="clab-models-") as cache:
        if whole_course:
            os.environ["CLAB_MODEL_DIR"] = cache
            print(f"model cache for this run: a fresh temporary folder; speed test {reference['step_ms']} ms per step",
                  flush=True)
        for path in paths:
            number = path.name[:2]

            def write_time(nb, seconds, number=number, path=path):
                if number not in STUDY_MINUTES:
                    raise NotebookError(f"{path}: no study minutes for notebook {number} in course_timings.STUDY_MINUTES")
                rewrite_time_line(nb, time_line(STUDY_MINUTES[number], seconds, cores), str(path))
                record_notebook(timings_file, number, seconds, slowest_cells(nb), reference)

            print(f"{path}: executed in {execute(path, before_writing=write_time):.1f} s", flush=True)
    if whole_course or notes.exists():
        write_minutes_table(notes, minutes_table(sorted(Path(paths[0]).parent.glob("[0-9][0-9]_*.ipynb")),
                                                 read_timings(timings_file), STUDY_MINUTES))


def _reference_machine(cores: int) -> dict:
    """The pre-flight's speed test on this machine now, as the timings file records it."""
    import datetime

    import torch

    from contrastive_lab.preflight import speed_test
    from contrastive_lab.profiles import get_profile

    step_ms = speed_test(get_profile("quick"), torch.device("cpu"))
    return {"machine": f"{cores} CPU cores, torch {torch.__version__.split('+')[0]}", "step_ms": round(step_ms, 1),
            "measured": datetime.date.today().isoformat()}


def student_notebook(nb):
    """The student copy of a notebook (a new object; `nb` is left as it was): solution cells
    replaced by placeholders, every output and execution count cleared, widget state dropped."""
    import nbformat

    readers = solution_readers(nb)
    out = copy.deepcopy(nb)
    cells = []
    for i, cell in enumerate(out.cells):
        cell_tags = tags(cell)
        if "tags" in cell.get("metadata", {}):
            cell.metadata["tags"] = cell_tags            # a string or null as a list
        if SOLUTION_TAG in cell_tags:
            keep_tags = [t for t in cell_tags if t != SOLUTION_TAG] + [PLACEHOLDER_TAG]
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


def student_copies(paths, out_dir: Path) -> list[tuple[Path, object]]:
    """[(target, student notebook)] for the notebooks at `paths`, written nowhere yet.

    Raises NotebookError, naming the problem, when `out_dir` holds one of the notebooks (it
    would be overwritten), two notebooks share a name, a notebook cannot be read, or a
    cell looks like a solution without the exact tag (it would reach the students verbatim)."""
    out_dir = Path(out_dir)
    if out_dir.exists() and not out_dir.is_dir():
        raise NotebookError(f"--out {out_dir} is a file; give a folder for the student copies")
    paths = [Path(p) for p in paths]
    for path in paths:
        if path.resolve().parent == out_dir.resolve():
            raise NotebookError(f"--out {out_dir} holds {path}: the student copy would overwrite the teacher's "
                                "notebook; write the copies into another folder (e.g. --out student)")
    seen = {}
    for path in paths:
        if path.name in seen:
            raise NotebookError(f"{seen[path.name]} and {path} have the same name, so one student copy would "
                                "overwrite the other; strip them into separate folders")
        seen[path.name] = path
    copies, problems = [], []
    for path in paths:
        nb = read_notebook(path)
        problems += [f"{path}: {found}" for found in untagged_solutions(nb)]
        copies.append((out_dir / path.name, student_notebook(nb)))
    if problems:
        raise NotebookError("cells that look like solutions are not tagged 'solution', so they would reach the "
                            "students as written; tag them 'solution' (or 'not-a-solution' if they are not), "
                            "then run again:\n  " + "\n  ".join(problems))
    return copies


def write_student_copies(paths, out_dir: Path) -> list[Path]:
    """Write the student copy of every notebook at `paths` into `out_dir` (same file names),
    after every one was read and checked (`student_copies`): all of them, or none."""
    import nbformat

    copies = student_copies(paths, out_dir)
    Path(out_dir).mkdir(parents=True, exist_ok=True)
    for target, student in copies:
        nbformat.write(student, target)
    return [target for target, _ in copies]


def strip_solutions(path: Path, out_dir: Path) -> Path:
    """Write the student copy of the notebook at `path` into `out_dir` (same file name)."""
    return write_student_copies([path], out_dir)[0]


PLACEHOLDER_REPO = "OWNER/contrastive-lab"      # its links do not open until a README line COURSE_REPO = owner/name


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


LINKS_START = "<!-- colab-links: written by `python -m tools.notebook_tools colab-links --write` -->"
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

    nb = read_notebook(path)
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
    parser = argparse.ArgumentParser(prog="python -m tools.notebook_tools")
    sub = parser.add_subparsers(dest="command", required=True)
    ex = sub.add_parser("execute", help="re-execute notebooks in place")
    ex.add_argument("--whole-course", action="store_true",
                    help="a fresh model cache for the run and the speed test as the timings' reference (make execute)")
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
    try:
        return _run(args)
    except NotebookError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2


def _run(args) -> int:
    if args.command == "strip-solutions":
        for path, target in zip(args.notebooks, write_student_copies(args.notebooks, args.out)):
            print(f"{path} -> {target}")
        return 0
    if args.command == "execute":
        execute_course(args.notebooks, args.whole_course)
        return 0
    status = 0
    for path in args.notebooks:
        if args.command == "widget-notebooks":
            import nbformat

            small, widgets = widget_notebook(path)
            if small is not None:
                args.out.mkdir(parents=True, exist_ok=True)
                nbformat.write(small, args.out / path.name)
                print(f"{path} -> {args.out / path.name} ({len(small.cells)} cells, widgets in {widgets})")
        elif args.command == "colab":
            import nbformat

            args.out.mkdir(parents=True, exist_ok=True)
            nbformat.write(colab_notebook(read_notebook(path), args.repo or course_repo()), args.out / path.name)
            print(f"{path} -> {args.out / path.name}")
        else:
            for dependent in solution_dependents(read_notebook(path)):
                print(f"{path}: {dependent}")
                status = 1
    return status


if __name__ == "__main__":
    raise SystemExit(main())
