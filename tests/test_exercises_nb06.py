"""The notebook-06 (MoCo) self-checks accept right answers and reject wrong ones with a hint."""
import math

import pytest
import torch
import torch.nn.functional as F

from contrastive_lab.exercises.nb06 import (check_moco_logits, check_queue_staleness, check_steps_to_follow,
                                            simulate_own_key_share)


def test_check_steps_to_follow():
    check_steps_to_follow(lambda m, f: 1 if m == 0 else max(1, math.ceil(math.log(1 - f) / math.log(m) - 1e-9)))
    with pytest.raises(AssertionError, match="1 − m\\*\\*n"):
        check_steps_to_follow(lambda m, f: round(1 / (1 - m)))        # the memory, not the 90 % time


def test_check_moco_logits():
    def right(q, k, queue, t):
        q, k = F.normalize(q, dim=1), F.normalize(k, dim=1)
        return torch.cat([(q * k).sum(1, keepdim=True), q @ F.normalize(queue, dim=1).T], 1) / t

    check_moco_logits(right)
    with pytest.raises(AssertionError, match="normalize q and k"):
        check_moco_logits(lambda q, k, queue, t: torch.cat([(q * k).sum(1, keepdim=True), q @ queue.T], 1) / t)
    with pytest.raises(AssertionError, match="shape"):
        check_moco_logits(lambda q, k, queue, t: F.normalize(q, dim=1) @ F.normalize(queue, dim=1).T / t)


def right_staleness(n, b, k):
    batches, steps = k // b, n // b
    return batches, batches * (batches + 1) / (2 * steps ** 2)


def test_check_queue_staleness():
    check_queue_staleness(right_staleness)
    with pytest.raises(AssertionError, match="once per epoch"):
        check_queue_staleness(lambda n, b, k: (k // b, k / n))            # images in the queue, not repeats
    with pytest.raises(AssertionError, match="the age"):
        check_queue_staleness(lambda n, b, k: (k, right_staleness(n, b, k)[1]))   # keys, not steps
    with pytest.raises(AssertionError, match="two numbers"):
        check_queue_staleness(lambda n, b, k: k / n)


def test_the_simulation_agrees_with_the_count():
    # 5,000 images, batch 32, 1,024 keys: L = 32 queued batches, S = 156 steps: 32·33 / (2·156²)
    assert simulate_own_key_share(5000, 32, 1024) == pytest.approx(32 * 33 / (2 * 156 ** 2), rel=0.1)
