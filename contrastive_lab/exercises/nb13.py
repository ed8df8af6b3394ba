"""Self-checks for notebook 13 (scaling out)."""
from __future__ import annotations

import math

import torch

from . import passed, self_check


def _own(n: int, rank: int) -> torch.Tensor:
    return torch.arange(n) + n * rank


@self_check
def check_twin_columns(fn) -> None:
    """Exercise 1: fn(n, rank, world_size) → (2n,) long tensor: for each of this process's 2n
    views (its z1 rows, then its z2 rows), the column of its twin among the gathered keys
    [z1 of rank 0, …, z1 of rank W−1, z2 of rank 0, …, z2 of rank W−1] (2nW columns)."""
    if not callable(fn):
        raise AssertionError("pass your function itself, e.g. check_twin_columns(twin_columns)")
    for n, rank, world in ((4, 0, 1), (4, 1, 2), (3, 2, 4), (5, 3, 4), (2, 0, 8)):
        got = fn(n, rank, world)
        if not isinstance(got, torch.Tensor) or got.dtype not in (torch.int64, torch.int32):
            raise AssertionError("return a tensor of integer column indices, e.g. built with torch.arange")
        got = got.flatten().long()
        own, m = _own(n, rank), n * world
        want = torch.cat([own + m, own])
        if got.shape != want.shape:
            raise AssertionError(f"n={n}: expected {2 * n} targets (one per local view: z1 rows, then z2 rows), "
                                 f"got {got.numel()}")
        if torch.equal(got, want):
            continue
        local = torch.arange(n)
        hint = f"(n={n}, rank={rank}, W={world}: expected {want.tolist()}, got {got.tolist()}). "
        if torch.equal(got, torch.cat([local + m, local])):
            raise AssertionError(hint + "Your targets ignore the rank: rank r's row i is global row n·r + i, "
                                 "so every index needs the offset n·rank.")
        if torch.equal(got, torch.cat([own + n, own - n])) or torch.equal(got, torch.cat([local + n, local])):
            raise AssertionError(hint + "That is the one-process target (i + n) mod 2n. With W processes the "
                                 "gathered z2 half starts after ALL the z1 rows, at column n·W.")
        if torch.equal(got, torch.cat([own, own + m])):
            raise AssertionError(hint + "Those are the views' own columns (the ones masked out). The twin of a "
                                 "z1 view is in the z2 half, and the other way round.")
        raise AssertionError(hint + "Lay the keys out as [all z1; all z2]: this process's z1 rows start at "
                             "n·rank, its z2 rows at n·W + n·rank.")
    passed("twins found at n·W + n·rank + i (for z1 views) and n·rank + i (for z2 views): targets offset by rank")


PLANS = {
    "a": "1 GPU, batch 128, gradient accumulated over 8 steps",
    "b": "8 GPUs × 128, each process computes its loss on its own batch",
    "c": "8 GPUs × 128, embeddings gathered from all processes",
    "d": "1 GPU, batch 128, MoCo with a queue of 4,096 keys",
}
_NEGATIVES = {"a": 2 * 128 - 2, "b": 2 * 128 - 2, "c": 2 * 128 * 8 - 2, "d": 4096}
_WHY = {
    "a": "accumulation adds gradients, not negatives: each micro-batch's softmax sees its own 2·128 − 2",
    "b": "without the gather each process scores its views against its own batch only: 2·128 − 2",
    "c": "gathered, every view is scored against all 2·128·8 views but itself and its twin: 2·128·8 − 2",
    "d": "a MoCo query is scored against its positive key and the whole queue: 4,096 negatives",
}


@self_check
def check_negatives_plan(negatives: dict, enough) -> None:
    """Exercise 2: negatives = {plan: negatives per query} for the plans in PLANS (SimCLR's
    NT-Xent in a, b, c; MoCo's InfoNCE in d); enough = the plans with at least 1,000."""
    if not isinstance(negatives, dict) or set(negatives) != set(PLANS):
        raise AssertionError(f"negatives should be a dict with one entry per plan: {sorted(PLANS)}")
    for plan, want in _NEGATIVES.items():
        try:
            got = int(negatives[plan])
        except (TypeError, ValueError):
            raise AssertionError(f"plan {plan!r}: give a whole number of negatives") from None
        if got != want:
            raise AssertionError(f"plan {plan!r} ({PLANS[plan]}): you wrote {got}. Hint: {_WHY[plan]}.")
    want_enough = sorted(p for p, k in _NEGATIVES.items() if k >= 1000)
    try:
        got_enough = sorted(set(enough))
    except TypeError:
        raise AssertionError("enough should be a list of plan letters, e.g. ['c']") from None
    if got_enough != want_enough:
        raise AssertionError(f"your counts are right; now keep the plans with at least 1,000 negatives "
                             f"(you listed {got_enough})")
    passed("only the gather (2,046) and the queue (4,096) reach 1,000 negatives; accumulation and "
           "per-process losses stay at 254")


@self_check
def check_simulated_ranks(fn, z1: torch.Tensor | None = None, z2: torch.Tensor | None = None) -> None:
    """Exercise 3: fn(z1, z2) → the list of W = 4 per-process losses (NT-Xent, τ = 0.2) for a
    batch z1, z2 (4n, D) split over 4 processes in rank order, each scoring its own 2n views
    against all 8n. With the notebook's z1, z2 the check also reports what they measure."""
    from ..distributed import nt_xent_gathered
    from ..losses import nt_xent

    if not callable(fn):
        raise AssertionError("pass your function itself, e.g. check_simulated_ranks(four_ranks, z1, z2)")
    g = torch.Generator().manual_seed(13)
    a, b = torch.randn(32, 6, generator=g), torch.randn(32, 6, generator=g)
    b = a + 0.5 * b                                           # twins somewhat aligned: the ranks differ
    got = fn(a, b)
    if not isinstance(got, (list, tuple)) or len(got) != 4:
        raise AssertionError("return a list of the 4 processes' losses, rank 0 first")
    got = torch.stack([torch.as_tensor(v, dtype=torch.float32).reshape(()) for v in got])
    n = 8
    want = torch.stack([nt_xent_gathered(a[r * n:(r + 1) * n], b[r * n:(r + 1) * n], a, b, r, 0.2)
                        for r in range(4)])
    if not torch.allclose(got, want, atol=1e-5):
        alone = torch.stack([nt_xent(a[r * n:(r + 1) * n], b[r * n:(r + 1) * n], 0.2) for r in range(4)])
        if torch.allclose(got, alone, atol=1e-5):
            raise AssertionError("these are four processes WITHOUT the gather (each alone, 2n − 2 negatives): "
                                 "pass the whole z1, z2 as the gathered keys")
        rank_zero = torch.stack([nt_xent_gathered(a[r * n:(r + 1) * n], b[r * n:(r + 1) * n], a, b, 0, 0.2)
                                 for r in range(4)])
        if torch.allclose(got, rank_zero, atol=1e-5):
            raise AssertionError("every process used rank 0's offset: pass each process's own rank")
        raise AssertionError(f"expected per-rank losses {[round(v, 4) for v in want.tolist()]}, got "
                             f"{[round(v, 4) for v in got.tolist()]}: rank r owns rows r·n … r·n + n − 1, "
                             "with τ = 0.2")
    if z1 is None:
        passed("four per-process losses whose mean is the loss of the whole batch")
        return
    losses = torch.stack([torch.as_tensor(v).detach().float().reshape(()) for v in fn(z1, z2)])
    n = z1.shape[0] // 4
    whole = nt_xent(z1.detach(), z2.detach(), 0.2).item()
    if abs(losses.mean().item() - whole) > 1e-4:
        raise AssertionError(f"on the notebook's batch the mean of your losses ({losses.mean().item():.4f}) "
                             f"differs from NT-Xent on all {4 * n} images ({whole:.4f})")
    passed(f"mean over 4 processes {losses.mean().item():.2f} = NT-Xent on all {4 * n} images {whole:.2f}; "
           f"ln(2·{n}·4 − 1) = {math.log(8 * n - 1):.2f}, one process alone ln(2·{n} − 1) = {math.log(2 * n - 1):.2f}")
