"""Helpers shared by the test modules (import them: `from conftest import circle, unit, TOY`).

    unit(deg)       a point of the unit circle, [cos, sin]: losses and metrics worked out by hand
    circle(*degs)   several such points as a float32 tensor (len(degs), 2)
    TOY             the quick profile at toy size: a 4-8-8-8 CNN, 8-d projections, batches of 16
    run_torchrun(args, nproc, env=...)   `python -m contrastive_lab.cli ARGS` on nproc gloo processes
"""
import math
import os
import subprocess
import sys

import torch

from contrastive_lab.profiles import QUICK


def unit(deg: float) -> list[float]:
    """The point of the unit circle at `deg` degrees, [cos, sin]."""
    r = math.radians(deg)
    return [math.cos(r), math.sin(r)]


def circle(*degs: float) -> torch.Tensor:
    """Points of the unit circle at `degs` degrees: a float32 tensor (len(degs), 2)."""
    return torch.tensor([unit(d) for d in degs])


TOY = QUICK.replace(cnn_widths=(4, 8, 8, 8), proj_dim=8, batch_size=16, channels_last=False, log_every=4)


def run_torchrun(args, nproc=2, timeout=240, env=None) -> subprocess.CompletedProcess:
    """`python -m contrastive_lab.cli ARGS` under torchrun on `nproc` processes (one thread each);
    `env` adds to the environment."""
    env = {**os.environ, "OMP_NUM_THREADS": "1", **(env or {})}
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", str(nproc),
           "-m", "contrastive_lab.cli", *args]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, env=env)
