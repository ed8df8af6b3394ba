"""The course's stated times and shared models agree with the stored run: each notebook's
first cell gives its study plan and the compute time measured when its outputs were made,
the notes show the same table, and a model shared between notebooks was trained once, by
the first notebook that asked for it, and loaded under that one key by the later ones."""
from __future__ import annotations

import json
import re
from pathlib import Path

import nbformat
import pytest

from contrastive_lab.course_timings import NOTEBOOK_SECONDS, STUDY_MINUTES, read_timings
from tools.timings import (TimingError, cell_seconds, minutes_table, parse_time_line, rewrite_time_line,
                           time_line, write_minutes_table)

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOKS = sorted((ROOT / "notebooks").glob("[0-9][0-9]_*.ipynb"))
NOTES = ROOT / "docs" / "teaching.md"
TRAINED = re.compile(r"^([\w.-]+): training \(.*\); it is cached for later notebooks \(([\w.-]+)\)$")
TRAINED_OLD = re.compile(r"^([\w.-]+): training \(.*\); it is cached for later notebooks$")
LOADED = re.compile(r"^([\w.-]+): loaded the trained model from the cache \(([\w.-]+)\)$")


def _first_markdown(path: Path) -> str:
    return next("".join(c["source"]) for c in json.loads(path.read_text())["cells"] if c["cell_type"] == "markdown")


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name[:2])
def test_first_cell_gives_the_study_plan_and_the_measured_compute_time(path):
    number = path.name[:2]
    parsed = parse_time_line(_first_markdown(path))
    assert parsed is not None, f"{path.name}: the first cell has no '**Study:** … **Compute:** …' line (make execute)"
    minutes, seconds = parsed
    assert minutes == STUDY_MINUTES[number], f"{path.name}: study {minutes} min, the plan says {STUDY_MINUTES[number]}"
    measured = NOTEBOOK_SECONDS[number]
    assert measured is not None, f"{path.name}: no measured seconds in course_timings.json (make execute)"
    assert abs(seconds - measured) <= 0.25 * measured, (
        f"{path.name}: the first cell says {seconds:.0f} s, the run measured {measured:.0f} s")


def test_the_notes_show_the_measured_table():
    table = minutes_table(NOTEBOOKS, read_timings(), STUDY_MINUTES)
    assert table in NOTES.read_text(), "docs/teaching.md's minutes table is out of date: run make execute"


def test_every_notebook_has_a_study_plan_and_a_time():
    for path in NOTEBOOKS:
        assert path.name[:2] in STUDY_MINUTES, f"course_timings.STUDY_MINUTES has no entry for {path.name}"


def _model_lines(path: Path) -> list[str]:
    nb = json.loads(path.read_text())
    lines = []
    for cell in nb["cells"]:
        for output in cell.get("outputs", []):
            text = output.get("text", "") if output.get("output_type") == "stream" else ""
            lines += "".join(text).splitlines() if isinstance(text, list) else text.splitlines()
    return lines


def shared_model_problems(notebooks: list[Path]) -> list[str]:
    """What breaks 'one execution': a model trained in two notebooks, a model loaded that no
    earlier notebook of the run trained, a name loaded under two keys, a training line
    that does not name its key (written before keys were printed: re-execute)."""
    trained_in: dict[str, str] = {}
    keys_of: dict[str, set] = {}
    problems = []
    for path in notebooks:
        for line in _model_lines(path):
            if TRAINED_OLD.match(line):
                problems.append(f"{path.name}: '{line}' does not name its key: re-execute with make execute")
            elif match := TRAINED.match(line):
                name, key = match.groups()
                if key in trained_in and trained_in[key] != path.name:
                    problems.append(f"{key} trained in {trained_in[key]} and again in {path.name}")
                trained_in.setdefault(key, path.name)
                keys_of.setdefault(name, set()).add(key)
            elif match := LOADED.match(line):
                name, key = match.groups()
                if key not in trained_in:
                    problems.append(f"{path.name} loaded {key}, which no earlier notebook of this run trained")
                keys_of.setdefault(name, set()).add(key)
    loaded_names = {m.group(1) for p in notebooks for line in _model_lines(p) if (m := LOADED.match(line))}
    for name in sorted(loaded_names):
        if len(keys_of[name]) > 1:
            problems.append(f"the shared model {name!r} appears under {len(keys_of[name])} keys: {sorted(keys_of[name])}")
    return problems


def test_each_shared_model_was_trained_once_and_loaded_under_one_key():
    problems = shared_model_problems(NOTEBOOKS)
    assert not problems, "the stored outputs are not one execution (make execute):\n" + "\n".join(problems)


def _notebook_with(tmp_path, name, *lines):
    nb = nbformat.v4.new_notebook()
    cell = nbformat.v4.new_code_cell("train()")
    cell.outputs = [nbformat.v4.new_output("stream", name="stdout", text="\n".join(lines) + "\n")]
    nb.cells = [nbformat.v4.new_markdown_cell("# x\n\n**Time:** old"), cell]
    path = tmp_path / name
    nbformat.write(nb, path)
    return path


def test_the_shared_model_check_catches_a_second_training_and_a_foreign_key(tmp_path):
    trained = "simclr: training (no cached model with these settings and this code); it is cached for later notebooks (simclr-aaa)"
    first = _notebook_with(tmp_path, "03_a.ipynb", trained)
    again = _notebook_with(tmp_path, "05_b.ipynb", trained)
    other = _notebook_with(tmp_path, "11_c.ipynb", "simclr: loaded the trained model from the cache (simclr-bbb)")
    good = _notebook_with(tmp_path, "12_d.ipynb", "simclr: loaded the trained model from the cache (simclr-aaa)")
    assert shared_model_problems([first, good]) == []
    assert any("trained in 03_a.ipynb and again in 05_b.ipynb" in p for p in shared_model_problems([first, again]))
    problems = shared_model_problems([first, other])
    assert any("no earlier notebook" in p for p in problems) and any("2 keys" in p for p in problems)
    old = _notebook_with(tmp_path, "13_e.ipynb", "simclr: training (x); it is cached for later notebooks")
    assert "does not name its key" in shared_model_problems([old])[0]


def test_the_time_line_is_rewritten_in_place_and_read_back(tmp_path):
    nb = nbformat.read(_notebook_with(tmp_path, "07_x.ipynb", "hi"), as_version=4)
    rewrite_time_line(nb, time_line(60, 78.4, 2))
    assert parse_time_line(nb.cells[0].source) == (60, 78.0)
    assert nb.cells[0].source.startswith("# x\n\n**Study:** about 60 min")
    rewrite_time_line(nb, time_line(60, 100.0, 2))            # a second run replaces the line, adds none
    assert parse_time_line(nb.cells[0].source) == (60, 100.0) and nb.cells[0].source.count("**Study:**") == 1
    nb.cells[0].source = "# x\n\n**Time:** about 25 s on 2 cores\n(measured somewhere); more words\n\nNext paragraph."
    rewrite_time_line(nb, time_line(45, 30.0, 2))              # the whole old paragraph goes, nothing else
    assert "measured somewhere" not in nb.cells[0].source and nb.cells[0].source.endswith("\n\nNext paragraph.")
    nb.cells[0].source = "# no time line"
    with pytest.raises(TimingError, match="no '\\*\\*Study:\\*\\*' line"):
        rewrite_time_line(nb, time_line(60, 1.0, 2), "07_x.ipynb")


def test_cell_seconds_reads_the_timing_nbclient_stores():
    nb = nbformat.v4.new_notebook()
    cell = nbformat.v4.new_code_cell("x = 1")
    cell.metadata["execution"] = {"iopub.execute_input": "2026-12-07T20:07:31.500000Z",
                                  "shell.execute_reply": "2026-12-07T20:07:43.750000Z"}
    nb.cells = [nbformat.v4.new_markdown_cell("# t"), nbformat.v4.new_code_cell("y = 2"), cell]
    assert cell_seconds(nb) == [(1, 12.2)] or cell_seconds(nb) == [(1, 12.3)]


def test_the_minutes_table_needs_its_markers(tmp_path):
    notes = tmp_path / "notes.md"
    notes.write_text("no markers here\n")
    with pytest.raises(TimingError, match="markers"):
        write_minutes_table(notes, "| table |")
