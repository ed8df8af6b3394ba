"""Self-checks for notebook 14 (scaling out)."""
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


def _keep(parts: list, rank: int):
    return torch.cat(parts), rank


def _plain(parts: list, rank: int):
    return torch.cat([p if i == rank else p.detach() for i, p in enumerate(parts)]), rank


def _arrival(parts: list, rank: int):
    order = [1, 0] + list(range(2, len(parts)))           # rank 1 happened to answer first
    return torch.cat([parts[i] for i in order]), rank


def _own_only(parts: list, rank: int):
    return parts[rank], 0


GATHERS = {
    "A": ("every rank's rows, concatenated with autograd (distributed.gather)", _keep),
    "B": ("every rank's rows; the other ranks' received by a plain all_gather (no autograd)", _plain),
    "C": ("every rank's rows, in the order the processes' messages arrived", _arrival),
    "D": ("this rank's rows only (no gather)", _own_only),
}


def measure_gather(name: str, z1: torch.Tensor, z2: torch.Tensor, world_size: int = 4,
                   temperature: float = 0.2) -> tuple[float, float]:
    """Simulate `world_size` processes that gather with GATHERS[name]; return (loss gap, gradient
    gap): how far the mean of their NT-Xent losses, and its gradient on z1 and z2, are from one
    process's NT-Xent on the whole batch z1, z2 (B, D), B divisible by world_size."""
    from ..distributed import nt_xent_gathered
    from ..losses import nt_xent

    if name not in GATHERS:
        raise ValueError(f"no gather {name!r}: choose one of {sorted(GATHERS)}")
    if z1.shape[0] % world_size:
        raise ValueError(f"z1 has {z1.shape[0]} rows: not divisible by {world_size} processes")
    gather = GATHERS[name][1]
    a, b = z1.detach().clone().requires_grad_(), z2.detach().clone().requires_grad_()
    whole = nt_xent(a, b, temperature)
    want_a, want_b = torch.autograd.grad(whole, (a, b))
    n = a.shape[0] // world_size
    parts1, parts2 = list(a.split(n)), list(b.split(n))
    losses = []
    for rank in range(world_size):
        (all1, as_rank), (all2, _) = gather(parts1, rank), gather(parts2, rank)
        losses.append(nt_xent_gathered(parts1[rank], parts2[rank], all1, all2, as_rank, temperature))
    mean = torch.stack(losses).mean()
    got_a, got_b = torch.autograd.grad(mean, (a, b))
    grad_gap = torch.cat([(got_a - want_a).flatten(), (got_b - want_b).flatten()]).abs().max()
    return abs(mean.item() - whole.item()), grad_gap.item()


@self_check
def check_gather_decision(broken, loss_shows) -> None:
    """Exercise 3: broken = the gathers of GATHERS that do not reproduce one process's training
    on the whole batch; loss_shows = those of them whose LOSS already gives them away."""
    try:
        broken, loss_shows = {str(x).upper() for x in broken}, {str(x).upper() for x in loss_shows}
    except TypeError:
        raise AssertionError("give two collections of letters, e.g. broken = {'B'}, loss_shows = set()") from None
    if not broken <= set(GATHERS) or not loss_shows <= set(GATHERS):
        raise AssertionError(f"use the letters of GATHERS: {sorted(GATHERS)}")
    if "A" in broken:
        raise AssertionError("A's loss and gradient both match the one-process run (gaps at float32 rounding): "
                             "it is the correct gather")
    if broken != {"B", "C", "D"}:
        missing = sorted({"B", "C", "D"} - broken)
        raise AssertionError(f"look again at the gradient column for {missing}: a gather is broken when either "
                             "gap is above rounding")
    if loss_shows != {"C", "D"}:
        if "B" in loss_shows:
            raise AssertionError("B's loss equals the one-process loss to rounding: only its gradient is off, "
                                 "so a loss curve cannot reveal it")
        raise AssertionError("C and D change the loss itself (wrong twins, or too few negatives): the loss shows them")
    passed("B, C and D are broken; C and D change the loss, but B (the plain all_gather) only the gradient: "
           "check gradients, not just the loss curve, when you change how embeddings are gathered")
