"""Self-checks for notebook 01 (embedding geometry).

    check_normalize(fn)              fn(x) (N, D) → rows of length 1, same directions
    check_cos_from_distance(fn)      fn(d) → cosine of two unit vectors at Euclidean distance d
    check_collapsed_uniformity(value) uniformity of N identical points
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
def check_normalize(fn) -> None:
    """`fn(x)`: x (N, D) → x with every row scaled to length 1 (without F.normalize)."""
    g = torch.Generator().manual_seed(1)
    x = torch.randn(7, 5, generator=g) * torch.tensor([[0.1], [1.0], [3.0], [10.0], [0.5], [2.0], [7.0]])
    out = _call(fn, x.clone())
    assert isinstance(out, torch.Tensor), f"return a tensor, got {type(out).__name__}"
    assert out.shape == x.shape, (
        f"expected shape {tuple(x.shape)}, got {tuple(out.shape)}; divide each row by its own norm "
        f"(keepdim=True keeps the shapes broadcastable)")
    norms = out.norm(dim=1)
    assert torch.allclose(norms, torch.ones_like(norms), atol=1e-5), (
        f"rows should have length 1, got lengths {[round(v, 3) for v in norms.tolist()]}; "
        f"norm along dim=1, one norm per row, not one for the whole matrix")
    assert torch.allclose(out, F.normalize(x, dim=1), atol=1e-5), (
        "lengths are 1 but the directions changed; divide by the norm, do not subtract or reorder")
    passed("every row has length 1 and points the same way as before")


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
