"""Notebook upkeep: the student copy, the widget slice for the browser test, Colab copies; the pre-flight report."""
import nbformat

from contrastive_lab.notebook_tools import strip_solutions
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
    from contrastive_lab.notebook_tools import widget_notebook

    small, widgets = widget_notebook(small_notebook(tmp_path))
    sources = [c.source for c in small.cells]
    assert "os.chdir" in sources[0] and str(tmp_path) in sources[0]      # runs where the notebook runs
    assert sources[1:] == ["import math", "table = [1, 2, 3]", sources[-1]]   # not the slow cell
    assert widgets == [3] and [c.metadata["source_cell"] for c in small.cells[1:]] == [0, 1, 3]


def test_a_markdown_solution_becomes_a_prompt_and_outputs_are_cleared():
    from contrastive_lab.notebook_tools import student_notebook

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
    from contrastive_lab.notebook_tools import colab_links, colab_notebook, course_repo

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
