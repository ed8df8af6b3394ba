"""Self-checks for notebook 01 (embedding geometry).

    check_cos_from_distance(fn)      fn(d) → cosine of two unit vectors at Euclidean distance d
    check_dot_favours_long(ratio_dot, ratio_cos, favours, raw, query)
                                     length of the top-10 by dot product and by cosine, and the verdict
    check_two_point_uniformity(value) uniformity of 25 points at u and 25 at −u, by hand
"""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from . import passed, self_check


def _call(fn, *args):
    assert callable(fn), f"expected a function, got {type(fn).__name__}; define it with def"
    return fn(*args)


@self_check
def check_cos_from_distance(fn) -> None:
    """`fn(d)`: Euclidean distance d between two unit vectors → their cosine."""
    cases = [(0.0, 1.0), (math.sqrt(2), 0.0), (2.0, -1.0), (1.0, 0.5)]
    for d, expected in cases:
        got = _call(fn, torch.tensor(d))
        got = float(got)
        assert abs(got - expected) < 1e-5, (
            f"at distance {d:.3f} the cosine is {expected:.3f}, got {got:.3f}; "
            f"start from ‖a − b‖² = 2 − 2·cos(a, b) and solve for cos")
    passed("cos = 1 − d²/2: on the unit sphere, distance and cosine carry the same information")


def _length_ratio(scores: torch.Tensor, lengths: torch.Tensor) -> float:
    return (lengths[scores.topk(10).indices].mean() / lengths.mean()).item()


@self_check
def check_dot_favours_long(ratio_dot, ratio_cos, favours, raw, query) -> None:
    """`ratio_dot`, `ratio_cos`: mean length of the top-10 of `raw` (M, D) by dot product / by cosine
    with `query` (1, D), divided by the mean length of all M; `favours`: the verdict (a bool)."""
    lengths = raw.norm(dim=1)
    want_dot = _length_ratio((query @ raw.T)[0], lengths)
    want_cos = _length_ratio(F.cosine_similarity(query, raw, dim=1), lengths)
    assert abs(float(ratio_dot) - want_dot) < 1e-3, (
        f"ratio_dot is {float(ratio_dot):.3f}, expected {want_dot:.3f}: take the 10 largest of query @ raw.T, "
        f"the mean of their lengths (raw.norm(dim=1)), divided by the mean length of all {len(raw)}")
    assert abs(float(ratio_cos) - want_cos) < 1e-3, (
        f"ratio_cos is {float(ratio_cos):.3f}, expected {want_cos:.3f}: the same, ranking by cosine similarity")
    assert isinstance(favours, bool), f"dot_favours_long should be True or False, got {favours!r}"
    assert favours == (want_dot > want_cos), (
        f"the top-10 by dot product is {want_dot:.2f}× the average length, by cosine {want_cos:.2f}×: "
        f"decide from these two numbers")
    passed(f"the dot product's top-10 is {want_dot:.2f}× as long as the average vector, the cosine's "
           f"{want_cos:.2f}×: " + ("an unnormalized dot product rewards length" if favours
                                   else "here length did not buy a place in the top-10"))


@self_check
def check_two_point_uniformity(value) -> None:
    """`value`: uniformity (t = 2) of 50 unit vectors, 25 at a point u and 25 at its opposite −u,
    worked out by hand (then confirmed with the package)."""
    import math

    assert value is not None, "set two_point_uniformity to a number"
    v = float(value)
    same, across, total = 2 * math.comb(25, 2), 25 * 25, math.comb(50, 2)
    want = math.log((same * 1.0 + across * math.exp(-8.0)) / total)
    if abs(v) < 1e-6:
        raise AssertionError("0 is the uniformity of ONE point; here half the pairs are 2 apart "
                             "(‖u − (−u)‖² = 4, so exp(−2·4) = e⁻⁸ for those)")
    if abs(v - math.log(0.5)) < 0.02 and abs(v - want) > 1e-3:
        raise AssertionError(f"close, but not every pair is counted right: of the {total} pairs i < j, "
                             f"{same} are at the same point and {across} across")
    assert abs(v - want) < 1e-3, (
        f"got {v:.4f}, expected {want:.4f}: count the pairs i < j — {same} at the same point (term 1) and "
        f"{across} across (term e⁻⁸) — then take the log of their mean")
    passed(f"uniformity {want:.3f}: better than one pile (0), far from points spread over a sphere (−2.08 on "
           f"S², about −4 in many dimensions) — uniformity punishes any few piles, not only a single one")
