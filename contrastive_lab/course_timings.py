"""How long each notebook takes: the course's study plan, and the compute time measured.

STUDY_MINUTES: by notebook number, the minutes a learner should plan for reading, running and
the exercises (the course's plan; docs/teaching.md shows the same table).

NOTEBOOK_SECONDS and REFERENCE come from course_timings.json, which `make execute` writes
after it has run every notebook top to bottom in a fresh kernel (quick profile, an empty
model cache): the seconds each notebook took, and the pre-flight's speed test (ms per SimCLR
step) on that machine at that time. Another machine's times scale with its speed test:

    expected_seconds(ms_per_step_here)   # {"00": 26.0, "01": ..., ...}

The first cell of every notebook and docs/teaching.md show these figures; `make execute`
rewrites them, and tests/test_timings.py fails when they disagree.
"""
from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

TIMINGS_FILE = Path(__file__).with_name("course_timings.json")

STUDY_MINUTES: dict[str, int] = {
    "00": 20, "01": 40, "02": 45, "03": 50, "04": 60, "05": 60, "06": 45, "07": 60,
    "08": 45, "09": 60, "10": 45, "11": 45, "12": 40, "13": 40, "14": 30,
}


@dataclass(frozen=True)
class Reference:
    machine: str          # what it was: CPU cores, torch version
    step_ms: float        # its speed test: ms per SimCLR step of the quick profile
    measured: str         # when (the course changes; re-measure after a big change)


def read_timings(path: Path = TIMINGS_FILE) -> dict:
    """The measured timings: {"reference": {...}, "notebooks": {"00": {"seconds": s,
    "slowest_cells": [[code cell, s], ...]}, ...}}."""
    return json.loads(Path(path).read_text())


_TIMINGS = read_timings()
REFERENCE = Reference(**_TIMINGS["reference"])
NOTEBOOK_SECONDS: dict[str, float | None] = {
    number: _TIMINGS["notebooks"].get(number, {}).get("seconds") for number in STUDY_MINUTES}


def expected_seconds(step_ms: float) -> dict[str, float | None]:
    """Each notebook's expected seconds on a machine whose speed test gives `step_ms`
    (None where the reference time is not measured yet)."""
    if step_ms <= 0:
        raise ValueError(f"step_ms must be > 0, got {step_ms}")
    scale = step_ms / REFERENCE.step_ms
    return {name: None if s is None else s * scale for name, s in NOTEBOOK_SECONDS.items()}
