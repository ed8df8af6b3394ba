"""Notebook 13's self-checks accept the right answers and explain the usual wrong ones;
its launcher builds the torchrun line a learner would type."""
import sys

import pytest
import torch

from contrastive_lab.distributed import nt_xent_gathered
from contrastive_lab.exercises.nb13 import check_negatives_plan, check_simulated_ranks, check_twin_columns
from contrastive_lab.profiles import FULL, QUICK
from contrastive_lab.scaling import read_history, scaling_settings, shell_line, torchrun_command


def twin_columns(n, rank, world_size):
    own = torch.arange(n) + n * rank
    return torch.cat([own + n * world_size, own])


def test_twin_columns_right_and_wrong(capsys):
    check_twin_columns(twin_columns)
    assert "offset by rank" in capsys.readouterr().out
    with pytest.raises(AssertionError, match="ignore the rank"):
        check_twin_columns(lambda n, r, w: twin_columns(n, 0, w))
    with pytest.raises(AssertionError, match=r"one-process target \(i \+ n\) mod 2n"):
        check_twin_columns(lambda n, r, w: torch.cat([torch.arange(n) + n, torch.arange(n)]))
    with pytest.raises(AssertionError, match="own columns"):
        check_twin_columns(lambda n, r, w: twin_columns(n, r, w).roll(n))


RIGHT = {"a": 254, "b": 254, "c": 2046, "d": 4096}


def test_negatives_plan_right_and_wrong():
    check_negatives_plan(RIGHT, ["c", "d"])
    with pytest.raises(AssertionError, match="accumulation adds gradients, not negatives"):
        check_negatives_plan({**RIGHT, "a": 2046}, ["a", "c", "d"])
    with pytest.raises(AssertionError, match="whole queue"):
        check_negatives_plan({**RIGHT, "d": 254}, ["c"])
    with pytest.raises(AssertionError, match="keep the plans with at least 1,000"):
        check_negatives_plan(RIGHT, ["c"])


def four_ranks(z1, z2):
    n = z1.shape[0] // 4
    return [nt_xent_gathered(z1[r * n:(r + 1) * n], z2[r * n:(r + 1) * n], z1, z2, r, 0.2) for r in range(4)]


def test_simulated_ranks_right_and_wrong(capsys):
    z = torch.randn(2, 16, 5, generator=torch.Generator().manual_seed(0))
    check_simulated_ranks(four_ranks, z[0], z[1])
    assert "mean over 4 processes" in capsys.readouterr().out
    from contrastive_lab.losses import nt_xent
    alone = lambda z1, z2: [nt_xent(z1[r * 8:(r + 1) * 8], z2[r * 8:(r + 1) * 8], 0.2) for r in range(4)]  # noqa: E731
    with pytest.raises(AssertionError, match="WITHOUT the gather"):
        check_simulated_ranks(alone)
    rank0 = lambda z1, z2: [nt_xent_gathered(z1[r * 8:(r + 1) * 8], z2[r * 8:(r + 1) * 8], z1, z2, 0, 0.2)  # noqa: E731
                            for r in range(4)]
    with pytest.raises(AssertionError, match="every process used rank 0"):
        check_simulated_ranks(rank0)


def test_torchrun_line_is_what_a_learner_types():
    cmd = torchrun_command(["train", "simclr", "--epochs", 2], nproc=2)
    assert cmd[:3] == [sys.executable, "-m", "torch.distributed.run"]
    assert shell_line(cmd) == ("torchrun --standalone --nproc_per_node 2 -m contrastive_lab.cli "
                               "train simclr --epochs 2")


def test_the_demo_runs_on_two_cpu_processes_without_two_gpus():
    quick = scaling_settings(QUICK)
    assert (quick.world_size, quick.device, quick.run_profile) == (2, "cpu", "quick")
    if torch.cuda.device_count() < 2:
        assert scaling_settings(FULL).device == "cpu"          # two processes need two devices


def test_reading_a_run_that_did_not_finish_says_so(tmp_path):
    with pytest.raises(FileNotFoundError, match="did the run finish"):
        read_history(tmp_path)


def test_reading_a_run_that_is_still_training_says_so(tmp_path):
    (tmp_path / "history.json").write_text('{"status": "training", "experiment": {}}')
    with pytest.raises(RuntimeError, match="has not finished"):
        read_history(tmp_path)
