"""Self-checks for notebook 06 (MoCo: momentum encoder and queue)."""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from ..losses import info_nce
from . import passed, self_check


def _steps_by_simulation(m: float, fraction: float) -> int:
    """Smallest n ≥ 1 with 1 − m**n ≥ fraction: an EMA started at 0 that follows a jump to 1."""
    ema, n = 0.0, 0
    while True:
        n += 1
        ema = m * ema + (1 - m) * 1.0
        if ema >= fraction - 1e-12:
            return n


@self_check
def check_steps_to_follow(steps_to_follow) -> None:
    """`steps_to_follow(m, fraction)`: the number of EMA updates after which the
    key (target) parameter has covered `fraction` of a sudden jump of the online one."""
    if not callable(steps_to_follow):
        raise AssertionError("pass the function itself: check_steps_to_follow(steps_to_follow)")
    for m in (0.0, 0.5, 0.9, 0.99, 0.999):
        for fraction in (0.5, 0.9):
            want = _steps_by_simulation(m, fraction)
            got = steps_to_follow(m, fraction)
            if int(got) != want:
                raise AssertionError(
                    f"steps_to_follow({m}, {fraction}) returned {got}, expected {want}. After n updates "
                    f"the target has covered 1 − m**n of the jump: solve 1 − m**n ≥ fraction for the "
                    f"smallest whole n ≥ 1 (math.ceil(math.log(1 - fraction) / math.log(m)), and 1 when m = 0)")
    passed(f"an EMA with m = 0.99 needs {steps_to_follow(0.99, 0.9)} steps to cover 90% of a jump, "
           f"m = 0.999 needs {steps_to_follow(0.999, 0.9)}: the key encoder's memory is about 1/(1 − m) steps")


@self_check
def check_moco_logits(moco_logits) -> None:
    """`moco_logits(q, k, queue, temperature)` → (N, 1 + K) logits, positive in column 0,
    whose cross-entropy against label 0 equals `losses.info_nce(q, k, queue, temperature)`."""
    if not callable(moco_logits):
        raise AssertionError("pass the function itself: check_moco_logits(moco_logits)")
    g = torch.Generator().manual_seed(6)
    q, k = torch.randn(5, 8, generator=g), torch.randn(5, 8, generator=g)
    queue = F.normalize(torch.randn(12, 8, generator=g), dim=1)
    logits = moco_logits(q, k, queue, 0.2)
    if tuple(logits.shape) != (5, 13):
        raise AssertionError(f"expected logits of shape (N, 1 + K) = (5, 13), got {tuple(logits.shape)}: "
                             "one column for the positive key, then one per queued key")
    want = info_nce(q, k, queue, 0.2)
    got = F.cross_entropy(logits, torch.zeros(5, dtype=torch.long))
    if not torch.allclose(got, want, atol=1e-5):
        qn, kn = F.normalize(q, dim=1), F.normalize(k, dim=1)
        if torch.allclose(logits[:, 0], (q * k).sum(1) / 0.2, atol=1e-5) and \
                not torch.allclose(logits[:, 0], (qn * kn).sum(1) / 0.2, atol=1e-5):
            raise AssertionError("normalize q and k (F.normalize(…, dim=1)) before the dot products: "
                                 "the logits are cosine similarities divided by the temperature")
        raise AssertionError(
            f"cross_entropy(logits, 0) = {got.item():.4f} but info_nce gives {want.item():.4f}. "
            "Column 0: (q·k⁺)/τ per row, i.e. (q * k).sum(1, keepdim=True); columns 1…K: q @ queue.T / τ; "
            "q and k unit length")
    passed("your logits give exactly info_nce: the queue is just K extra columns of negatives")


@self_check
def check_chance_loss(chance_loss) -> None:
    """`chance_loss(method, batch_size, queue_size)`: the InfoNCE loss when every candidate
    is equally similar, for "simclr" (2N − 2 negatives) and "moco" (queue_size negatives)."""
    if not callable(chance_loss):
        raise AssertionError("pass the function itself: check_chance_loss(chance_loss)")
    cases = [("simclr", 32, 4096, math.log(63)), ("simclr", 256, 64, math.log(511)),
             ("moco", 32, 4096, math.log(4097)), ("moco", 256, 64, math.log(65))]
    for method, n, k, want in cases:
        got = float(chance_loss(method, n, k))
        if abs(got - want) > 1e-6:
            hint = ("SimCLR: each view competes with its positive and 2N − 2 negatives (the other views), "
                    "so the softmax has 2N − 1 candidates" if method == "simclr" else
                    "MoCo: the positive key plus queue_size negatives; the batch size does not enter")
            raise AssertionError(f"chance_loss({method!r}, {n}, {k}) = {got:.4f}, expected {want:.4f}. "
                                 f"With all candidates equally similar the loss is ln(#candidates). {hint}")
    passed(f"batch 32: SimCLR starts at ln 63 = {math.log(63):.2f}, MoCo with a 4096-key queue at "
           f"ln 4097 = {math.log(4097):.2f} — 65× more candidates per query from the same batch")

