"""Measured times into the course: each notebook's first cell, docs/teaching.md's table and
contrastive_lab/course_timings.json, written from one execution run (`make execute`).

Every notebook opens with one line of the form

    **Study:** about 45 min · **Compute:** about 62 s on 2 CPU cores (quick profile) …

Study minutes are the course's plan (`course_timings.STUDY_MINUTES`); compute seconds are what the
notebook took in the run that made its stored outputs. Nothing here is typed by hand.
"""
from __future__ import annotations

import datetime
import json
import re
from pathlib import Path

TIME_LINE = re.compile(r"(?m)^\*\*(Time|Study):\*\*.*(?:\n(?!\n).*)*")     # the whole paragraph
TABLE_START = "<!-- minutes table: written by make execute -->"
TABLE_END = "<!-- end of minutes table -->"
SLOW_CELL_S = 8.0             # cells at least this slow are listed in the notes: start them, then talk


class TimingError(ValueError):
    """A notebook or the notes lack the place a measured time goes."""


def cell_seconds(nb) -> list[tuple[int, float]]:
    """(code cell index as nbval counts it, seconds) for every code cell nbclient timed."""
    out = []
    for index, cell in enumerate(c for c in nb.cells if c.cell_type == "code"):
        timing = cell.get("metadata", {}).get("execution", {})
        start, end = timing.get("iopub.execute_input"), timing.get("shell.execute_reply")
        if start and end:
            seconds = (_when(end) - _when(start)).total_seconds()
            out.append((index, round(seconds, 1)))
    return out


def _when(stamp: str) -> datetime.datetime:
    return datetime.datetime.fromisoformat(stamp.replace("Z", "+00:00"))


def slowest_cells(nb, at_least: float = SLOW_CELL_S, most: int = 2) -> list[list]:
    """The `most` slowest code cells of at least `at_least` seconds, slowest first."""
    slow = sorted((c for c in cell_seconds(nb) if c[1] >= at_least), key=lambda c: -c[1])
    return [list(c) for c in slow[:most]]


def time_line(study_minutes: int, seconds: float, cores: int) -> str:
    """The first cell's line: the plan for a learner, and the measured compute time."""
    return (f"**Study:** about {study_minutes} min · **Compute:** about {_seconds(seconds)} on {cores} CPU cores "
            "(quick profile, measured in the run that stored these outputs); the full profile's time on a GPU "
            "is not measured (README, *Running on a GPU*).")


def _seconds(seconds: float) -> str:
    return f"{seconds:.0f} s" if seconds < 120 else f"{seconds / 60:.1f} min"


def rewrite_time_line(nb, line: str, name: str = "notebook") -> None:
    """Put `line` in place of the **Time:**/**Study:** line of the first markdown cell."""
    first = next((c for c in nb.cells if c.cell_type == "markdown"), None)
    if first is None or not TIME_LINE.search(first.source):
        raise TimingError(f"{name}: its first markdown cell has no '**Study:**' line to write the times into")
    first.source = TIME_LINE.sub(lambda _: line, first.source, count=1)


def parse_time_line(source: str) -> tuple[int, float] | None:
    """(study minutes, compute seconds) from a first cell's line, or None."""
    match = re.search(r"\*\*Study:\*\* about (\d+) min · \*\*Compute:\*\* about ([\d.]+) (s|min)\b", source)
    if not match:
        return None
    value = float(match.group(2))
    return int(match.group(1)), value * 60 if match.group(3) == "min" else value


def record_notebook(path: Path, number: str, seconds: float, slowest: list, reference: dict | None) -> None:
    """Store one notebook's measured seconds (and, for a whole-course run, the machine's speed
    test) in the timings file."""
    timings = json.loads(Path(path).read_text()) if Path(path).exists() else {"notebooks": {}}
    timings["notebooks"][number] = {"seconds": round(seconds, 1), "slowest_cells": slowest}
    if reference is not None:
        timings["reference"] = reference
    Path(path).write_text(json.dumps(timings, indent=1, sort_keys=True) + "\n")


def minutes_table(notebooks: list[Path], timings: dict, study: dict[str, int]) -> str:
    """docs/teaching.md's table: study minutes and measured compute per notebook."""
    rows = ["| # | notebook | study (plan) | compute, quick profile (measured) | slowest cells (start them, then talk) |",
            "|---|---|---|---|---|"]
    for path in notebooks:
        number, title = path.stem[:2], _title(path)
        entry = timings["notebooks"].get(number, {})
        seconds = entry.get("seconds")
        slow = ", ".join(f"code cell {i} ({s:.0f} s)" for i, s in entry.get("slowest_cells", [])) or "none"
        rows.append(f"| {number} | {title} | {study[number]} min | "
                    f"{'not measured' if seconds is None else _seconds(seconds)} | {slow} |")
    return "\n".join(rows)


def _title(path: Path) -> str:
    """The notebook's first heading without its number ("InfoNCE"), else its file name."""
    cells = json.loads(Path(path).read_text())["cells"]
    for cell in cells:
        if cell["cell_type"] == "markdown":
            match = re.search(r"(?m)^#\s+(?:\d+\s*[·.:—-]\s*)?(.+?)\s*$", "".join(cell["source"]))
            if match:
                return match.group(1).split(":")[0]
            break
    return path.stem[3:].replace("_", " ")


def write_minutes_table(notes: Path, table: str) -> None:
    """Replace the table between the markers in the notes."""
    text = Path(notes).read_text()
    if TABLE_START not in text or TABLE_END not in text:
        raise TimingError(f"{notes}: no '{TABLE_START}' ... '{TABLE_END}' markers for the minutes table")
    head, rest = text.split(TABLE_START, 1)
    Path(notes).write_text(head + TABLE_START + "\n" + table + "\n" + TABLE_END + rest.split(TABLE_END, 1)[1])
