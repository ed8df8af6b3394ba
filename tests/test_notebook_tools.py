"""Student copies drop solutions; the pre-flight report says OK or FIX."""
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
