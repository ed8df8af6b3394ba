"""The student copy (`make student`): Run All goes through it without stopping at an exercise,
and it gives no answer away.

- every check_… says "not done yet" on its placeholder (run here, without the notebook's state);
- every check passed on its solution in the stored run of the teacher's notebook (nbval re-runs
  each solution and its check in `make test`, and fails if the check raises);
- no cell outside a check reads a name only a solution defines;
- no line of a solution, and no output, reaches the student copy;
- every solution cell is tagged, and a solution cell that lost its tag would be reported;
- one student notebook (the first, the cheapest) runs end to end in a fresh kernel.
"""
import ast
import builtins
import contextlib
import copy
import importlib
import inspect
import io
import json
import pkgutil
import re
from pathlib import Path

import nbformat
import pytest

import contrastive_lab.exercises as exercises_pkg
from contrastive_lab.exercises import self_check
from tools.notebook_analysis import (code_source, exercises, is_check_statement, is_solution,
                                               solution_dependents, untagged_solutions)
from tools.notebook_tools import student_notebook

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOKS = sorted((ROOT / "notebooks").glob("*.ipynb"))
WITH_EXERCISES = [p for p in NOTEBOOKS if exercises(nbformat.read(p, as_version=4))]


def read(path):
    return nbformat.read(path, as_version=4)


# ------------------------------------------------------------------ the calling convention

@self_check
def check_square(fn, n=3):
    assert fn(n) == n * n, f"fn({n}) should be {n * n}, got {fn(n)}"
    print("✓ squares")


def test_a_check_runs_as_written_on_an_answer():
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        check_square(lambda n: n * n)
    assert out.getvalue() == "✓ squares\n"
    with pytest.raises(AssertionError, match="should be 9, got 6"):
        check_square(lambda n: 2 * n)


@pytest.mark.parametrize("placeholder", [..., None])
def test_a_check_says_not_done_yet_on_a_placeholder_value(placeholder, capsys):
    assert check_square(placeholder) is None                     # no exception, nothing displayed
    assert capsys.readouterr().out.startswith("○ not done yet: check_square is waiting for fn")


def test_a_check_says_not_done_yet_on_a_function_that_raises_not_implemented(capsys):
    def fn(n):
        raise NotImplementedError("write fn")
    check_square(fn)
    assert "not done yet: check_square: your function is not written yet (write fn)" in capsys.readouterr().out


def test_every_check_function_reports_placeholders_kindly():
    missing = []
    for module in pkgutil.iter_modules(exercises_pkg.__path__):
        mod = importlib.import_module(f"contrastive_lab.exercises.{module.name}")
        for name, fn in inspect.getmembers(mod, inspect.isfunction):
            if name.startswith("check_") and fn.__module__ == mod.__name__ and not getattr(fn, "self_check", False):
                missing.append(f"{module.name}.{name}")
    assert not missing, f"decorate these with @self_check (contrastive_lab.exercises): {missing}"


# ------------------------------------------------------------------ checks on placeholders

class Anything:
    """Stands for the notebook's state (data, models): every use gives another Anything."""
    def __getattr__(self, name):
        return self

    def __call__(self, *args, **kwargs):
        return self

    def __getitem__(self, key):
        return self

    def __iter__(self):
        return iter(())


class NotebookState(dict):
    """A namespace in which every name the cells did not define is an Anything."""
    def __missing__(self, name):
        if hasattr(builtins, name):
            raise KeyError(name)
        return Anything()


def earlier_imports(nb, before):
    """The import statements of the code cells before cell `before`, as one source."""
    lines = []
    for cell in nb.cells[:before]:
        if cell.cell_type == "code":
            tree = ast.parse(code_source(cell.source))
            lines += [ast.unparse(s) for s in tree.body if isinstance(s, (ast.Import, ast.ImportFrom))]
    return "\n".join(lines)


@pytest.mark.parametrize("path", WITH_EXERCISES, ids=lambda p: p.stem)
def test_every_check_says_not_done_yet_on_its_placeholder(path):
    student = student_notebook(read(path))
    for exercise in exercises(read(path)):
        assert exercise.check is not None, f"{path.name}: solution cells {exercise.solutions} have no check_… cell after them"
        state = NotebookState()
        exec(earlier_imports(student, exercise.check), {}, state)      # the check_… functions, torch …
        out = io.StringIO()
        with contextlib.redirect_stdout(out):
            for i in exercise.solutions + (exercise.check,):
                source = code_source(student.cells[i].source)
                if i == exercise.check:           # its check_… calls (other lines: the dependents test)
                    source = "\n".join(ast.unparse(s) for s in ast.parse(source).body if is_check_statement(s))
                try:
                    exec(compile(source, f"cell {i}", "exec"), {}, state)
                except Exception as exc:
                    raise AssertionError(f"{path.name} cell {i} raised {type(exc).__name__}: {exc} on the student "
                                         f"copy's placeholder; a check must say 'not done yet' instead") from exc
        text = out.getvalue()
        assert "not done yet" in text and "✓" not in text, (
            f"{path.name} cell {exercise.check}: expected a 'not done yet' line on the placeholder, got {text!r}")


@pytest.mark.parametrize("path", WITH_EXERCISES, ids=lambda p: p.stem)
def test_every_check_passed_on_its_solution_in_the_stored_run(path):
    nb = read(path)
    for exercise in exercises(nb):
        outputs = nb.cells[exercise.check].outputs
        errors = [o for o in outputs if o.output_type == "error"]
        text = "".join(o.get("text", "") for o in outputs if o.output_type == "stream")
        assert not errors and "✓" in text, (
            f"{path.name} cell {exercise.check}: the stored output shows no ✓ from its check; "
            f"re-execute the notebook (make execute NB={path.relative_to(ROOT)})")


# ------------------------------------------------------------------ nothing depends on an answer

@pytest.mark.parametrize("path", WITH_EXERCISES, ids=lambda p: p.stem)
def test_no_later_cell_reads_a_name_only_a_solution_defines(path):
    found = solution_dependents(read(path))
    assert not found, (f"{path.name}: in the student copy these would fail (the answer is a placeholder there). "
                       "Compute what later cells need in a cell that is not a solution, or move the line into "
                       "the solution:\n  " + "\n  ".join(map(str, found)))


# ------------------------------------------------------------------ no leaks

def solution_lines(nb):
    """Lines of solution cells that say something: not blank, not a comment, not a `def` line
    (a placeholder keeps the signature), and not also found in a cell that is not a solution."""
    elsewhere = "\n".join(c.source for c in nb.cells if not is_solution(c))
    lines = set()
    for cell in nb.cells:
        if is_solution(cell):
            for line in cell.source.splitlines():
                text = line.strip()
                if len(text) > 6 and not text.startswith(("#", "def ", "return None")) and text not in elsewhere:
                    lines.add(text)
    return lines


@pytest.mark.parametrize("path", WITH_EXERCISES, ids=lambda p: p.stem)
def test_no_solution_text_reaches_the_student_copy(path):
    nb = read(path)
    before = copy.deepcopy(nb)
    student = student_notebook(nb)
    dumped = json.dumps(student, ensure_ascii=False)
    leaked = sorted(line for line in solution_lines(nb) if json.dumps(line, ensure_ascii=False)[1:-1] in dumped)
    assert not leaked, f"{path.name}: solution lines found in the student copy: {leaked}"
    assert all(not c.get("outputs") for c in student.cells if c.cell_type == "code"), "outputs can give answers away"
    assert "widgets" not in student.metadata
    assert sum("exercise" in c.metadata.get("tags", []) for c in student.cells) == sum(map(is_solution, nb.cells))
    assert nb == before                                        # the teacher's notebook is left as it was


@pytest.mark.parametrize("path", WITH_EXERCISES, ids=lambda p: p.stem)
def test_every_solution_is_tagged_and_a_lost_tag_would_be_reported(path):
    nb = read(path)
    assert untagged_solutions(nb) == []
    for i, cell in enumerate(nb.cells):
        if is_solution(cell):
            untagged = copy.deepcopy(nb)
            untagged.cells[i].metadata["tags"] = [t for t in cell.metadata["tags"] if t != "solution"]
            assert any(line.startswith(f"cell {i} ") for line in untagged_solutions(untagged)), (
                f"{path.name}: solution cell {i} without its tag would reach the students unnoticed")


# ------------------------------------------------------------------ one student notebook, end to end

def test_the_first_student_notebook_runs_end_to_end(tmp_path):
    """The first notebook (the welcome, the cheapest) as a student gets it: every check says
    "not done yet" and nothing raises. About 35 s on 2 busy cores."""
    from nbclient import NotebookClient

    path = NOTEBOOKS[0]
    student = student_notebook(read(path))
    NotebookClient(student, timeout=600, kernel_name="python3",
                   resources={"metadata": {"path": str(path.parent)}}).execute()     # raises on an error
    checks = [e.check for e in exercises(read(path))]
    for i in checks:
        text = "".join(o.get("text", "") for o in student.cells[i].outputs)
        assert re.search(r"not done yet", text), f"{path.name} cell {i}: {text!r}"
