"""The notebook-06 (MoCo) self-checks accept right answers and reject wrong ones with a hint."""
import math

import pytest
import torch
import torch.nn.functional as F

from contrastive_lab.exercises.nb06 import check_chance_loss, check_moco_logits, check_steps_to_follow


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


def test_check_chance_loss():
    check_chance_loss(lambda method, n, k: math.log(2 * n - 1 if method == "simclr" else k + 1))
    with pytest.raises(AssertionError, match="2N − 1"):
        check_chance_loss(lambda method, n, k: math.log(n if method == "simclr" else k + 1))
    with pytest.raises(AssertionError, match="queue_size negatives"):
        check_chance_loss(lambda method, n, k: math.log(2 * n - 1 if method == "simclr" else k))
