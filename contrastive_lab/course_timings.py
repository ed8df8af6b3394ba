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


REFERENCE = Reference(machine="2 idle CPU cores (the CI kind), torch 2.14.1 CPU", step_ms=80.0,
                      measured="2026-12-03")

NOTEBOOK_SECONDS: dict[str, float | None] = {
    "00": 23.0,
    "01": 26.0,
    "02": 45.0,
    "03": 74.0,
    "04": 62.0,
    "05": 41.0,
    "06": 91.0,
    "07": 78.0,
    "08": 41.0,
    "09": 81.0,
    "10": 44.0,
    "11": 72.0,
    "12": 54.0,
    "13": 33.0,
}


def expected_seconds(step_ms: float) -> dict[str, float | None]:
    """Each notebook's expected seconds on a machine whose speed test gives `step_ms`
    (None where the reference time is not measured yet)."""
    if step_ms <= 0:
        raise ValueError(f"step_ms must be > 0, got {step_ms}")
    scale = step_ms / REFERENCE.step_ms
    return {name: None if s is None else s * scale for name, s in NOTEBOOK_SECONDS.items()}
