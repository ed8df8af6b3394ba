"""docs/teaching.md keeps up with the notebooks: a row of minutes and a Colab link for each,
the Colab install cell the tools write, and the pre-flight's timing table for each number."""
import re
from pathlib import Path

from contrastive_lab.course_timings import NOTEBOOK_SECONDS
from tools.notebook_tools import LINKS_END, LINKS_START, colab_install_source, colab_links, course_repo

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOKS = sorted((ROOT / "notebooks").glob("*.ipynb"))
NOTES = (ROOT / "docs" / "teaching.md").read_text()
REGENERATE = "python -m tools.notebook_tools colab-links --write docs/teaching.md notebooks/*.ipynb"


def test_every_notebook_has_a_colab_link():
    table = NOTES[NOTES.index(LINKS_START) + len(LINKS_START):NOTES.index(LINKS_END)].strip()
    assert table == colab_links(NOTEBOOKS, course_repo()), f"the Colab links are out of date: run {REGENERATE}"


def test_the_colab_cell_in_the_notes_is_the_one_the_tools_write():
    assert colab_install_source(course_repo()) in NOTES


def test_every_notebook_has_a_row_of_minutes():
    for path in NOTEBOOKS:
        number = path.name[:2]
        assert re.search(rf"(?m)^\| {number} \|", NOTES), f"docs/teaching.md has no row for notebook {number}"
        assert number in NOTEBOOK_SECONDS, f"course_timings.NOTEBOOK_SECONDS has no entry for notebook {number}"
