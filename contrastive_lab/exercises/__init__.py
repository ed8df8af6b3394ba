"""Self-checks for the notebooks' exercises: one module per notebook.

Each `check_…` function takes the learner's answer and

- prints "✓ …" when it is right;
- raises AssertionError with a hint when it is wrong, so the teacher's copy (where the
  solution is filled in) fails loudly under nbval if a solution or a check drifts;
- prints "○ not done yet: …" and returns when the exercise is still open: an answer left
  as the student copy's placeholder (`...` or None), or a function that still raises
  NotImplementedError. So "Run All" on a student copy never stops at an exercise.

Write a new check as

    @self_check
    def check_something(answer, context) -> None:
        ...                       # assert / raise AssertionError("what is wrong, and how to fix it")
        passed("what the right answer shows")
"""
from __future__ import annotations

import functools
import inspect

PLACEHOLDERS = (None, Ellipsis)


def passed(message: str) -> None:
    """Print the verdict a correct answer gets."""
    print(f"✓ {message}")


def not_done(message: str) -> None:
    """Print the verdict an exercise that is still open gets (no exception)."""
    print(f"○ not done yet: {message}")


def _is_placeholder(value) -> bool:
    return any(value is p for p in PLACEHOLDERS)


def self_check(check):
    """Decorate a check_… function so that an unanswered exercise is reported kindly.

    If any argument is still a placeholder (`...` or None), or the learner's function raises
    NotImplementedError while the check runs, the check prints one "not done yet" line naming
    what is missing and returns None; otherwise it runs as written (and raises on a wrong answer).
    """
    signature = inspect.signature(check)

    @functools.wraps(check)
    def run(*args, **kwargs):
        given = signature.bind_partial(*args, **kwargs).arguments
        open_ = [name for name, value in given.items() if _is_placeholder(value)]
        if open_:
            not_done(f"{check.__name__} is waiting for {', '.join(open_)} — fill in the cell above "
                     "(it still holds the placeholder), run it, then run this cell again.")
            return None
        try:
            check(*args, **kwargs)
        except NotImplementedError as exc:
            what = f" ({exc})" if str(exc) else ""
            not_done(f"{check.__name__}: your function is not written yet{what} — replace the "
                     "`raise NotImplementedError` in the cell above with your code, run it, then run "
                     "this cell again.")
        return None

    run.self_check = True
    return run
