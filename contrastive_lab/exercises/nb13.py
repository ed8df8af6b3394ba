"""Self-checks for notebook 13 (watching embeddings in production)."""
from __future__ import annotations

import math

import torch

from ..evaluate.roc import accepts
from . import passed, self_check


def _flagged(scores, threshold):
    return accepts(scores, threshold)


@self_check
def check_threshold(fn) -> None:
    """Exercise 1: fn(scores (P,), is_match (P,) bool, target) → threshold t such that the pairs with
    score >= t have precision ≥ target and, among such thresholds, find the most matches
    (then flag the fewest pairs). +inf when no threshold reaches the target."""
    from ..production import threshold_for_precision

    if not callable(fn):
        raise AssertionError("pass your function itself, e.g. check_threshold(my_threshold)")
    cases = [
        ([0.9, 0.8, 0.7, 0.6, 0.5], [1, 1, 0, 1, 0], 1.0, "two matches at the top, then a non-match"),
        ([0.9, 0.8, 0.7, 0.6, 0.5], [1, 1, 0, 1, 0], 0.75, "going deeper past a non-match can still pay"),
        ([0.9, 0.8, 0.7, 0.6, 0.5], [1, 1, 0, 1, 0], 0.5, "flagging a trailing non-match adds no match"),
        ([0.3, 0.9, 0.5, 0.7], [0, 1, 1, 0], 0.6, "scores that are not sorted"),
        ([0.9, 0.9, 0.5], [1, 0, 1], 0.6, "two pairs with the same score fall on the same side"),
    ]
    for scores, match, target, what in cases:
        s, m = torch.tensor(scores), torch.tensor(match, dtype=torch.bool)
        want = threshold_for_precision(s, m, target)
        got = fn(s, m, target)
        try:
            got = float(got)
        except (TypeError, ValueError):
            raise AssertionError(f"return a number (the threshold), got {type(got).__name__}") from None
        if torch.equal(_flagged(s, got), _flagged(s, want)):
            continue
        flagged = _flagged(s, got)
        tp = int((flagged & m).sum())
        precision = tp / max(int(flagged.sum()), 1)
        hint = ""
        if flagged.sum() and precision < target:
            hint = f"the pairs your threshold flags have precision {precision:.2f} < {target}. "
        elif tp < int((_flagged(s, want) & m).sum()):
            hint = "another threshold reaches the target AND finds more matches; go as deep as the precision allows. "
        raise AssertionError(f"case '{what}' (scores {scores}, matches {match}, target {target}): {hint}"
                             f"your threshold {got:.3f} flags {s[flagged].tolist()}, "
                             f"the best one flags {s[_flagged(s, want)].tolist()} (decisions are score >= t)")
    got = fn(torch.tensor([0.9, 0.1]), torch.tensor([False, True]), 0.9)
    if not (isinstance(got, float) and math.isinf(got) and got > 0):
        raise AssertionError("when no threshold reaches the target (the best pair is not a match), "
                             "return float('inf'): flag nothing")
    passed("the deepest cut that keeps the precision: most matches found at that precision")


@self_check
def check_alarm_budget(alpha: float, n_permutations: int, batches_per_week: int) -> None:
    """Exercise 2: the per-batch level alpha that gives at most one false alarm a week on average
    (as large as that allows, so real drift is still caught), and the permutations the test
    needs to ever reach a p-value that small."""
    try:
        alpha, n_permutations = float(alpha), int(n_permutations)
    except (TypeError, ValueError):
        raise AssertionError("alpha must be a number and n_permutations an integer") from None
    budget = 1 / batches_per_week
    if alpha > budget * 1.0001:
        raise AssertionError(f"with alpha = {alpha:g} an unshifted stream raises about "
                             f"{alpha * batches_per_week:.1f} false alarms a week "
                             f"(alpha × {batches_per_week} batches); you want at most 1")
    if alpha < budget / 2:
        raise AssertionError(f"alpha = {alpha:g} is safe but stricter than needed: 1 false alarm a week "
                             f"allows alpha up to 1 / {batches_per_week}, and a smaller alpha misses more real drift")
    smallest_p = 1 / (n_permutations + 1)
    if smallest_p > alpha:
        raise AssertionError(f"with {n_permutations} permutations the smallest p-value the test can give is "
                             f"1 / ({n_permutations} + 1) = {smallest_p:.2g} > alpha: it could never raise an "
                             f"alarm. Use at least {math.ceil(1 / alpha) - 1} permutations")
    passed(f"alpha = {alpha:.2g}: about {alpha * batches_per_week:.2f} false alarms a week; "
           f"{n_permutations} permutations can reach p = {smallest_p:.2g}")
