"""Notebook 14 (scaling out): its settings, and the CLI launched under torchrun from Python.

    settings = scaling_settings(profile)
    cmd = torchrun_command(["train", "simclr", "--out", "runs/demo"], nproc=2)
    print(shell_line(cmd))        # torchrun --standalone --nproc_per_node 2 -m contrastive_lab.cli train simclr ...
    run = launch(cmd)             # waits; rank 0's output in run.stdout; raises with the log tail on failure
    record = read_history("runs/demo")

The package pieces the notebook teaches live in `distributed` (the world, the
gather, the losses against gathered keys), `methods.data_parallel` (each
method on W processes) and `cli` (the command-line trainer).
"""
from __future__ import annotations

import json
import os
import shlex
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import torch

from .data import shown_path
from .profiles import Settings

PACKAGE_ROOT = Path(__file__).resolve().parent.parent


@dataclass(frozen=True)
class ScalingSettings(Settings):
    """Sizes of notebook 14, derived from a profile by `scaling_settings`.

    world_size: processes of the torchrun demo run; device: "cpu" (gloo) or "cuda"
        (NCCL, one GPU per process); run_profile: the profile that run trains with.
    batch_size: images per process and step (N); epochs: of the demo run.
    queue_size: MoCo's queue in the single-device comparison.
    timeout_s: the demo run is stopped (and the cell fails) after this long.
    """

    world_size: int
    device: str
    run_profile: str
    batch_size: int
    epochs: int
    queue_size: int
    timeout_s: int


def scaling_settings(profile) -> ScalingSettings:
    """quick (and any machine with fewer than 2 GPUs): 2 CPU processes on gloo, the quick
    profile's data and CNN, 64 images per process, 4 epochs (about 20 s of training on 2 cores).
    full with 2 GPUs or more: 2 GPU processes on NCCL, the full profile, 256 images per
    process (not measured here: no GPU was available)."""
    gpus = torch.cuda.device_count() if torch.cuda.is_available() else 0
    if profile.name == "full" and gpus >= 2:
        return ScalingSettings(world_size=2, device="cuda", run_profile="full", batch_size=256, epochs=10,
                               queue_size=8192, timeout_s=3600)
    return ScalingSettings(world_size=2, device="cpu", run_profile="quick", batch_size=64, epochs=4,
                           queue_size=2048, timeout_s=600)


def torchrun_command(args: list[str], nproc: int = 2) -> list[str]:
    """The torchrun command line (as a list) that runs `python -m contrastive_lab.cli ARGS`
    on `nproc` processes of this machine, with this Python (`python -m torch.distributed.run`
    is torchrun; --standalone lets it pick a free port)."""
    return [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", str(nproc),
            "-m", "contrastive_lab.cli", *map(str, args)]


def shell_line(cmd: list[str]) -> str:
    """The command as you would type it in a shell (`torchrun …`, `python …`)."""
    if cmd[1:3] == ["-m", "torch.distributed.run"]:
        cmd = ["torchrun", *cmd[3:]]
    elif cmd[0] == sys.executable:
        cmd = ["python", *cmd[1:]]
    cmd = [shown_path(a) if os.path.isabs(a) and a != "/" else a for a in cmd]    # no path of this machine
    return shlex.join(cmd)


def launch(cmd: list[str], timeout_s: float = 600, threads_per_process: int = 1) -> subprocess.CompletedProcess:
    """Run `cmd` and wait for it; return the finished process (stdout: what rank 0 printed).

    The processes import this same copy of the package (PYTHONPATH) and use
    `threads_per_process` CPU threads each (OMP_NUM_THREADS), so W processes
    share the cores instead of fighting over them. Raises RuntimeError with the
    end of the log when the run fails or outlives `timeout_s`.
    """
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([str(PACKAGE_ROOT)] + ([env["PYTHONPATH"]] if env.get("PYTHONPATH") else []))
    env.setdefault("OMP_NUM_THREADS", str(threads_per_process))
    try:
        done = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout_s, env=env)
    except subprocess.TimeoutExpired as exc:
        tail = (exc.stderr or b"")[-2000:]
        raise RuntimeError(f"the run did not finish within {timeout_s} s: {shell_line(cmd)}\n{tail!s}") from None
    if done.returncode != 0:
        raise RuntimeError(f"the run failed (exit code {done.returncode}): {shell_line(cmd)}\n"
                           f"{(done.stdout + done.stderr)[-3000:]}")
    return done


def read_history(out_dir: str | os.PathLike) -> dict:
    """history.json of a finished CLI run: settings, world size, negatives per query, losses, time."""
    path = Path(out_dir) / "history.json"
    if not path.exists():
        raise FileNotFoundError(f"{path} does not exist: did the run finish? (rank 0 writes it when the run "
                                "starts and when it ends)")
    record = json.loads(path.read_text())
    if record.get("status") == "training":
        raise RuntimeError(f"{path} is from a run that has not finished (stopped, or still training); "
                           "run the same command again to resume it")
    return record
