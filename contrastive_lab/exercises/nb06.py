"""Self-checks for notebook 06 (MoCo: momentum encoder and queue)."""
from __future__ import annotations

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


def simulate_own_key_share(n_train: int, batch_size: int, queue_size: int, epochs: int = 4,
                           seed: int = 0) -> float:
    """Share of queries, after the first epoch, that find an older key of their OWN image in
    a FIFO queue of `queue_size` keys, when every epoch visits the images in a new random
    order in batches of `batch_size` (the last incomplete batch dropped, as in training)."""
    from collections import Counter, deque

    g = torch.Generator().manual_seed(seed)
    steps = n_train // batch_size
    queue, inside, hits, queries = deque(), Counter(), 0, 0
    for epoch in range(epochs):
        order = torch.randperm(n_train, generator=g)[:steps * batch_size].view(steps, batch_size).tolist()
        for batch in order:
            if epoch > 0:
                hits += sum(inside[i] > 0 for i in batch)
                queries += len(batch)
            for i in batch:                                  # enqueue after the loss, oldest out
                queue.append(i)
                inside[i] += 1
                if len(queue) > queue_size:
                    inside[queue.popleft()] -= 1
    return hits / queries


@self_check
def check_queue_staleness(queue_staleness) -> None:
    """`queue_staleness(n_train, batch_size, queue_size)` → (age, share): how many steps old
    the oldest queued key is, and the expected share of queries whose own image has an older
    key in the queue (a "negative" that is really a positive), for queue_size ≤ n_train."""
    if not callable(queue_staleness):
        raise AssertionError("pass the function itself: check_queue_staleness(queue_staleness)")
    cases = [(5000, 32, 4096), (5000, 32, 1024), (5000, 32, 256), (50000, 128, 16384)]
    for n, b, k in cases:
        got = queue_staleness(n, b, k)
        if not isinstance(got, tuple) or len(got) != 2:
            raise AssertionError(f"return two numbers, (age in steps, share of queries), got {got!r}")
        age, share = float(got[0]), float(got[1])
        batches, steps = k // b, n // b
        if abs(age - batches) > 1e-9:
            raise AssertionError(
                f"queue_staleness({n}, {b}, {k}): the age {age:g} is not right. The queue holds the keys "
                f"of the last queue_size / batch_size batches, one batch per step: the oldest key is that "
                f"many steps old ({k} / {b}), whatever the dataset size")
        want = batches * (batches + 1) / (2 * steps ** 2)
        if abs(share - want) > 0.02 * want + 1e-6:
            hint = ("it is not queue_size / n_train: that counts the images in the queue, but an image "
                    "re-enters only once per epoch. " if abs(share - k / n) < 1e-6 else "")
            raise AssertionError(
                f"queue_staleness({n}, {b}, {k}): share {share:.4f}, expected {want:.4f}. {hint}"
                f"Count in steps: with S = n_train // batch_size steps per epoch and L = queue_size // batch_size "
                f"queued batches, an image at step s of this epoch was last seen at a uniformly random step s' "
                f"of the previous one, S + s − s' steps ago; it is still queued when that is ≤ L. Sum over s "
                f"and s' and divide by S²")
    simulated = simulate_own_key_share(5000, 32, 4096)
    _, formula = queue_staleness(5000, 32, 4096)
    if abs(simulated - formula) > 0.03:
        raise AssertionError(f"the simulation gives {simulated:.3f} for (5000, 32, 4096), your formula {formula:.3f}")
    passed(f"with 5,000 images, batch 32: a 4,096-key queue holds keys 128 steps old and an older key of the "
           f"query's own image for {formula:.0%} of queries (simulated: {simulated:.0%}); 1,024 keys: "
           f"{queue_staleness(5000, 32, 1024)[0]:.0f} steps, {queue_staleness(5000, 32, 1024)[1]:.1%}")
