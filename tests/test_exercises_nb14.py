"""Notebook 14's self-checks accept the right answers and explain the usual wrong ones;
its launcher builds the torchrun line a learner would type."""
import sys

import pytest
import torch

from contrastive_lab.distributed import nt_xent_gathered
from contrastive_lab.exercises.nb14 import (GATHERS, check_gather_decision, check_negatives_plan, check_twin_columns,
                                            measure_gather)
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


def test_measure_gather_finds_what_each_gather_breaks():
    g = torch.Generator().manual_seed(0)
    z1 = torch.randn(32, 8, generator=g)
    z2 = z1 + 0.5 * torch.randn(32, 8, generator=g)
    gaps = {name: measure_gather(name, z1, z2) for name in GATHERS}
    assert gaps["A"][0] < 1e-5 and gaps["A"][1] < 1e-6                 # the autograd gather is exact
    assert gaps["B"][0] < 1e-5 and gaps["B"][1] > 1e-3                 # plain all_gather: loss right, gradient wrong
    assert gaps["C"][0] > 0.1 and gaps["D"][0] > 0.1                   # wrong order, no gather: the loss moves
    with pytest.raises(ValueError, match="not divisible by 4"):
        measure_gather("A", z1[:30], z2[:30])
    with pytest.raises(ValueError, match="no gather 'E'"):
        measure_gather("E", z1, z2)


def test_gather_decision_right_and_wrong(capsys):
    check_gather_decision({"B", "C", "D"}, {"C", "D"})
    assert "only the gradient" in capsys.readouterr().out
    with pytest.raises(AssertionError, match="it is the correct gather"):
        check_gather_decision({"A", "B", "C", "D"}, {"C", "D"})
    with pytest.raises(AssertionError, match=r"gradient column for \['B'\]"):
        check_gather_decision({"C", "D"}, {"C", "D"})
    with pytest.raises(AssertionError, match="a loss curve cannot reveal it"):
        check_gather_decision({"B", "C", "D"}, {"B", "C", "D"})


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
