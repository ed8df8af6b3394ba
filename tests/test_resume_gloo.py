"""Checkpoints across process counts, with two real processes on gloo (CPU, 127.0.0.1).

Each process draws its own random numbers in every step (torch's global generator and a
named one, seeded per rank), so a checkpoint that kept only rank 0's random state would
send rank 1 down rank 0's stream. Checked:
- 2 processes interrupted after epoch 1 and resumed by 2: every rank's losses equal its
  uninterrupted run's, to the bit;
- 2 → 1: one process resumes the 2-process checkpoint, and one line says the state of
  process 1 is not used;
- 1 → 2: two processes resume a 1-process checkpoint; process 1 is re-seeded, one line says so.
"""
import contextlib
import io
import os
import shutil

import pytest
import torch
import torch.nn as nn

from contrastive_lab.distributed import World, cleanup, free_port, run_processes, setup, wrap_ddp
from contrastive_lab.train import fit

WORLD, TIMEOUT_S = 2, 180


class Interrupt(Exception):
    pass


def run(world: World, checkpoint=None, epochs=3, interrupt_after=None):
    """3 epochs × 3 steps of a tiny DDP regression whose batches are drawn per rank."""
    torch.manual_seed(0)
    model = nn.Linear(4, 1)
    ddp = wrap_ddp(model, world)
    torch.manual_seed(100 + world.rank)                       # every process its own streams
    g = torch.Generator().manual_seed(7 + world.rank)
    calls = []

    def evaluate():
        calls.append(1)
        if interrupt_after is not None and len(calls) > interrupt_after:
            raise Interrupt                                     # epoch `interrupt_after`'s checkpoint is on disk
        return {}

    def step(_):
        x = torch.rand(8, 4) + torch.rand(8, 4, generator=g)
        return (ddp(x) - 1).pow(2).mean()
    return fit(step, model.parameters(), lambda e: range(3), epochs, lr=0.05, checkpoint=checkpoint,
               modules={"model": model}, generators={"g": g}, evaluate=evaluate, log_every=1, progress=False)


def worker(rank, port, folder):
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port), RANK=str(rank), WORLD_SIZE=str(WORLD),
                      LOCAL_RANK=str(rank))
    torch.set_num_threads(1)
    world = setup("cpu", timeout_s=TIMEOUT_S)
    out = {"whole": run(world).loss}
    with contextlib.suppress(Interrupt):
        run(world, os.path.join(folder, "two.pt"), interrupt_after=1)
    torch.distributed.barrier()
    if world.is_main:
        shutil.copy(os.path.join(folder, "two.pt"), os.path.join(folder, "two-after-epoch-1.pt"))
    torch.distributed.barrier()
    out["resumed"] = run(world, os.path.join(folder, "two.pt")).loss
    said = io.StringIO()
    with contextlib.redirect_stdout(said):
        out["from_one"] = run(world, os.path.join(folder, "one.pt")).loss
    out["said"] = said.getvalue()
    torch.save(out, os.path.join(folder, f"rank{rank}.pt"))
    cleanup()


@pytest.fixture(scope="module")
def ranks(tmp_path_factory):
    folder = tmp_path_factory.mktemp("resume")
    one = World(0, 1, 0, torch.device("cpu"), None)
    with contextlib.suppress(Interrupt):
        run(one, folder / "one.pt", interrupt_after=1)          # the 1-process checkpoint the 2 resume
    run_processes(worker, WORLD, (free_port(), str(folder)), TIMEOUT_S)
    return folder, [torch.load(folder / f"rank{r}.pt", weights_only=True) for r in range(WORLD)]


def test_two_processes_resume_each_with_its_own_random_state(ranks):
    _, out = ranks
    assert out[0]["whole"][3:] != out[1]["whole"][3:]               # the ranks do draw differently
    for r in out:
        assert len(r["resumed"]) == 9
        assert r["resumed"][3:] == r["whole"][3:]                    # epochs 2-3, to the bit, on every rank


def test_one_process_resumes_a_two_process_checkpoint_and_says_so(ranks, capsys):
    folder, out = ranks
    one = World(0, 1, 0, torch.device("cpu"), None)
    history = run(one, folder / "two-after-epoch-1.pt")
    lines = [line for line in capsys.readouterr().out.splitlines() if line.startswith("resuming")]
    assert len(lines) == 1 and "the random state of process 1 is not used" in lines[0], lines
    # the first step after the resume has rank 0's weights and rank 0's random draws; after it the
    # single process follows its own gradient, not the average over two processes
    assert history.loss[:4] == out[0]["whole"][:4] and history.loss[4] != out[0]["whole"][4]


def test_two_processes_resume_a_one_process_checkpoint_and_say_so(ranks):
    _, out = ranks
    assert "process 1: no random state saved, re-seeded" in out[0]["said"]
    assert out[1]["said"] == ""                                       # rank 0 alone prints
    assert len(out[0]["from_one"]) == len(out[1]["from_one"]) == 9
