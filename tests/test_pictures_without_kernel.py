"""What a reader without a kernel sees (a code host, an HTML export) is complete.

- every widget keeps a static twin: the next code cell after a widget cell stores an image
  (small multiples of the same plot at a few slider values);
- no stored output is a progress bar frozen at its start ("0it [00:00, ?it/s]");
- an HTML export (`jupyter nbconvert --to html`) of a widget notebook shows its figures
  and no raw widget repr, traceback or frozen bar.
"""
import re
from pathlib import Path

import nbformat
import pytest

from tools.notebook_analysis import code_cells, widget_cells

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOKS = sorted((ROOT / "notebooks").glob("*.ipynb"))
FROZEN_BAR = re.compile(r"(?<![\d.])0it \[")


def read(path):
    return nbformat.read(path, as_version=4)


def with_widgets():
    return [p for p in NOTEBOOKS if widget_cells(read(p))]


def output_texts(output):
    """The text a reader sees of one stored output (stream text and text/* data)."""
    if output.output_type == "stream":
        yield output.text
    for mime, value in output.get("data", {}).items():
        if mime.startswith("text/"):
            yield value if isinstance(value, str) else "".join(value)


def has_image(cell):
    return any(mime.startswith("image/") for o in cell.get("outputs", []) for mime in o.get("data", {}))


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_every_widget_has_a_static_twin(path):
    nb = read(path)
    code = code_cells(nb)
    for i in widget_cells(nb):
        later = [j for j in code if j > i]
        assert later and has_image(nb.cells[later[0]]), (
            f"{path.name} cell {i} shows a widget, but the next code cell (cell {later[0] if later else '—'}) "
            "stores no figure: add small multiples of the same plot at a few slider values, for readers "
            "without a kernel")


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_no_stored_output_is_a_frozen_progress_bar(path):
    frozen = []
    for i, cell in enumerate(read(path).cells):
        for output in cell.get("outputs", []):
            for text in output_texts(output):
                frozen += [f"cell {i}: {line.strip()!r}" for line in text.splitlines() if FROZEN_BAR.search(line)]
    assert not frozen, (f"{path.name} stores progress bars frozen at their start (re-execute it with the "
                        f"package's fit, whose progress line stays readable):\n  " + "\n  ".join(frozen[:5]))


def test_the_frozen_bar_pattern():
    assert FROZEN_BAR.search("SimCLR 1/8: 0it [00:00, ?it/s]")
    assert not FROZEN_BAR.search("SimCLR 8/8: 320it [00:41, 7.7it/s]")
    assert not FROZEN_BAR.search("SimCLR: 100%|██████████| 320/320 [00:41<00:00, 7.70step/s]")


def test_html_export_of_a_widget_notebook_reads_without_a_kernel(tmp_path):
    """One export (the first notebook with a widget): every stored figure is in the page as an
    image, and the page shows no traceback, no frozen bar and no raw widget repr. About 15 s."""
    from nbconvert import HTMLExporter

    widget_notebooks = with_widgets()
    if not widget_notebooks:
        pytest.skip("no notebook has a widget yet")
    path = widget_notebooks[0]
    nb = read(path)
    html, _ = HTMLExporter().from_notebook_node(nb)
    text = re.sub(r"data:image/[a-z+]+;base64,[A-Za-z0-9+/=]+", "", html)   # images aside
    n_images = sum(1 for c in nb.cells for o in c.get("outputs", []) if "image/png" in o.get("data", {}))
    assert html.count("<img") >= n_images > 0
    assert "Traceback" not in text
    assert not FROZEN_BAR.search(text)
    assert "interactive(children=" not in text, "a widget shows as its Python repr instead of its view"
    (tmp_path / f"{path.stem}.html").write_text(html)
