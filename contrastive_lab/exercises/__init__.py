"""Self-checks for the notebooks' exercises: one module per notebook.

Each `check_…` function takes the learner's answer, prints a short verdict and
raises AssertionError with a hint when the answer is wrong, so "Run all"
stops at an unsolved exercise in a student copy and passes in the teacher's.
"""
from __future__ import annotations


def passed(message: str) -> None:
    """Print the verdict a correct answer gets."""
    print(f"✓ {message}")
