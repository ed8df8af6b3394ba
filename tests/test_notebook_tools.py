"""Notebook upkeep: the student copy, the widget slice for the browser test, Colab copies; the pre-flight report."""
import json

import nbformat
import pytest

from tools.notebook_tools import strip_solutions
from contrastive_lab.preflight import Check, report


def test_strip_solutions_removes_tagged_cells(tmp_path):
    nb = nbformat.v4.new_notebook()
    solution = nbformat.v4.new_code_cell("answer = 42")
    solution.metadata["tags"] = ["solution"]
    nb.cells = [nbformat.v4.new_markdown_cell("# Exercise"), solution, nbformat.v4.new_code_cell("check(answer)")]
    src = tmp_path / "nb.ipynb"
    nbformat.write(nb, src)
    out = nbformat.read(strip_solutions(src, tmp_path / "student"), as_version=4)
    sources = [c.source for c in out.cells]
    assert "answer = 42" not in "".join(sources)
    assert sources[0] == "# Exercise" and sources[2] == "check(answer)"
    assert nbformat.read(src, as_version=4).cells[1].source == "answer = 42"   # original untouched


def test_preflight_report_marks_failures():
    text = report([Check("torch", True, "2.14"), Check("ipywidgets", False, "missing")])
    assert "OK   torch" in text and "FIX  ipywidgets" in text and "fix the lines marked FIX" in text


def small_notebook(tmp_path):
    nb = nbformat.v4.new_notebook()
    cells = ["import math", "table = [1, 2, 3]", "slow = sum(range(10 ** 6))",
             "from ipywidgets import interact\n_ = interact(lambda k: print(math.sqrt(table[k])), k=(0, 2))"]
    nb.cells = [nbformat.v4.new_code_cell(c) for c in cells]
    path = tmp_path / "nb.ipynb"
    nbformat.write(nb, path)
    return path


def test_widget_notebook_keeps_only_the_cells_the_widget_needs(tmp_path):
    from tools.notebook_tools import widget_notebook

    small, widgets = widget_notebook(small_notebook(tmp_path))
    sources = [c.source for c in small.cells]
    assert "os.chdir" in sources[0] and str(tmp_path) in sources[0]      # runs where the notebook runs
    assert sources[1:] == ["import math", "table = [1, 2, 3]", sources[-1]]   # not the slow cell
    assert widgets == [3] and [c.metadata["source_cell"] for c in small.cells[1:]] == [0, 1, 3]


def test_a_markdown_solution_becomes_a_prompt_and_outputs_are_cleared():
    from tools.notebook_tools import student_notebook

    nb = nbformat.v4.new_notebook()
    answer = nbformat.v4.new_markdown_cell("The answer is colour.")
    answer.metadata["tags"] = ["solution"]
    shown = nbformat.v4.new_code_cell("print(1)")
    shown.outputs = [nbformat.v4.new_output("stream", text="1\n")]
    shown.execution_count = 1
    nb.cells = [answer, shown]
    student = student_notebook(nb)
    assert student.cells[0].source == "*Your answer here.*" and student.cells[0].metadata["tags"] == ["exercise"]
    assert student.cells[1].outputs == [] and student.cells[1].execution_count is None
    assert nb.cells[1].outputs                                  # the teacher's copy keeps its outputs


def test_colab_copy_installs_the_course_first(tmp_path):
    from tools.notebook_tools import colab_links, colab_notebook, course_repo

    readme = tmp_path / "README.md"
    readme.write_text("Set once: COURSE_REPO = `someone/contrastive-lab`\n")
    assert course_repo(readme) == "someone/contrastive-lab"
    assert course_repo(tmp_path / "missing.md") == "OWNER/contrastive-lab"      # the placeholder
    nb = nbformat.read(small_notebook(tmp_path), as_version=4)
    colab = colab_notebook(nb, "someone/contrastive-lab")
    assert "git clone --quiet --depth 1 https://github.com/someone/contrastive-lab" in colab.cells[0].source
    assert 'if "google.colab" in sys.modules' in colab.cells[0].source        # nothing happens elsewhere
    assert [c.source for c in colab.cells[1:]] == [c.source for c in nb.cells]
    table = colab_links(["notebooks/00_welcome.ipynb"], "someone/contrastive-lab")
    assert "colab.research.google.com/github/someone/contrastive-lab/blob/main/notebooks/00_welcome.ipynb" in table


# ---------------------------------------------------------------- the student copy never loses or leaks a teacher's work
def exercise_notebook(folder, name="nb.ipynb", solution_tags=("solution",)):
    folder.mkdir(parents=True, exist_ok=True)
    nb = nbformat.v4.new_notebook()
    answer = nbformat.v4.new_code_cell("answer = 42")
    answer.metadata["tags"] = list(solution_tags)
    nb.cells = [nbformat.v4.new_markdown_cell("### Exercise"), answer, nbformat.v4.new_code_cell("check_answer(answer)")]
    nbformat.write(nb, folder / name)
    return folder / name


def one_error_line(capsys):
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error: "), err
    return err[0]


def test_strip_solutions_into_the_notebooks_own_folder_is_refused(tmp_path, capsys):
    from tools.notebook_tools import main

    teacher = exercise_notebook(tmp_path / "notebooks")
    before = teacher.read_text()
    for out in (tmp_path / "notebooks", tmp_path / "notebooks" / ".." / "notebooks"):
        assert main(["strip-solutions", "--out", str(out), str(teacher)]) == 2
        assert "the student copy would overwrite the teacher's notebook" in one_error_line(capsys)
        assert teacher.read_text() == before                   # the solution is still there


def test_two_notebooks_of_one_name_are_refused(tmp_path, capsys):
    from tools.notebook_tools import main

    a, b = exercise_notebook(tmp_path / "a"), exercise_notebook(tmp_path / "b")
    assert main(["strip-solutions", "--out", str(tmp_path / "student"), str(a), str(b)]) == 2
    assert "have the same name" in one_error_line(capsys) and not (tmp_path / "student").exists()


@pytest.mark.parametrize("solution_tags", [(), ("solutions",), ("Solution",)])
def test_a_solution_without_its_exact_tag_is_reported_not_copied(tmp_path, capsys, solution_tags):
    from tools.notebook_tools import main

    path = exercise_notebook(tmp_path / "notebooks", solution_tags=solution_tags)
    assert main(["strip-solutions", "--out", str(tmp_path / "student"), str(path)]) == 2
    err = capsys.readouterr().err
    assert "not tagged 'solution'" in err and f"{path}: cell 1 " in err
    assert not (tmp_path / "student").exists()


def test_a_cell_marked_not_a_solution_is_copied(tmp_path):
    path = exercise_notebook(tmp_path / "notebooks", solution_tags=("not-a-solution",))
    out = nbformat.read(strip_solutions(path, tmp_path / "student"), as_version=4)
    assert out.cells[1].source == "answer = 42"


def test_tags_stored_as_a_string_or_null_are_read_as_tags(tmp_path):
    nb = nbformat.v4.new_notebook()
    nb.cells = [nbformat.v4.new_code_cell(src) for src in ("print(1)", "answer = 42", "check_answer(answer)")]
    raw = json.loads(nbformat.writes(nb))
    for cell, stored in zip(raw["cells"], (None, "solution", "not-a-solution")):
        cell["metadata"]["tags"] = stored                     # as a hand edit can leave them
    path = tmp_path / "nb.ipynb"
    path.write_text(json.dumps(raw))
    out = nbformat.read(strip_solutions(path, tmp_path / "student"), as_version=4)
    assert out.cells[0].source == "print(1)"
    assert "answer = 42" not in out.cells[1].source and out.cells[1].metadata["tags"] == ["exercise"]
    assert out.cells[2].source == "check_answer(answer)" and out.cells[2].metadata["tags"] == ["not-a-solution"]


@pytest.mark.parametrize("content", ["", "{not json", '{"cells": "none"}', '{"a": 1}'])
def test_a_malformed_notebook_is_named_and_nothing_is_written(tmp_path, capsys, content):
    from tools.notebook_tools import main

    good = exercise_notebook(tmp_path / "notebooks", "00_good.ipynb")
    bad = tmp_path / "notebooks" / "01_bad.ipynb"
    bad.write_text(content)
    last = exercise_notebook(tmp_path / "notebooks", "02_last.ipynb")
    assert main(["strip-solutions", "--out", str(tmp_path / "student"), str(good), str(bad), str(last)]) == 2
    assert f"{bad} is not a readable notebook" in one_error_line(capsys)
    assert not (tmp_path / "student").exists()
    assert main(["execute", str(tmp_path / "missing.ipynb")]) == 2
    assert "missing.ipynb: no such notebook" in one_error_line(capsys)
