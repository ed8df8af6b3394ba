"""How long each notebook takes, measured, so a teacher can plan a session and the
pre-flight can predict the times on an attendee's machine.

NOTEBOOK_SECONDS: by notebook number, seconds each notebook took top to bottom in a fresh kernel (quick profile,
`python benchmarks/notebook_seconds.py`), on the REFERENCE machine, whose speed is the
pre-flight's speed test (`preflight.speed_test`, ms per SimCLR step) measured at the same time.
None = not measured yet. Another machine's times scale with its speed test:

    expected_seconds(ms_per_step_here)   # {"00": 41.0, "01": ..., ...}

docs/teaching.md shows the same table in minutes.
"""
from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Reference:
    machine: str          # what it was, and how busy
    step_ms: float        # its speed test: ms per SimCLR step of the quick profile
    measured: str         # when (the course changes; re-measure after a big change)


REFERENCE = Reference(machine="2 CPU cores shared with other jobs (load 7-9)", step_ms=900.0,
                      measured="2026-12-03")

NOTEBOOK_SECONDS: dict[str, float | None] = {
    "00": None,
    "01": None,
    "02": None,
    "03": None,
    "04": None,
    "05": None,
    "06": None,
    "07": None,
    "08": None,
    "09": None,
    "10": None,
    "11": None,
    "12": None,
    "13": None,
}


def expected_seconds(step_ms: float) -> dict[str, float | None]:
    """Each notebook's expected seconds on a machine whose speed test gives `step_ms`
    (None where the reference time is not measured yet)."""
    if step_ms <= 0:
        raise ValueError(f"step_ms must be > 0, got {step_ms}")
    scale = step_ms / REFERENCE.step_ms
    return {name: None if s is None else s * scale for name, s in NOTEBOOK_SECONDS.items()}
