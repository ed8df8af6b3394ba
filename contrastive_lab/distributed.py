"""Training on several processes (torchrun): the world, gathered negatives, sharded data.

Data-parallel training runs one process per device. Every process holds the
same model, takes its own shard of each global batch, and DDP averages the
gradients so that the copies stay equal. Contrastive losses need one thing
more: their negatives. A process sees only its own N images, so on its own
each of its 2N views has 2N − 2 negatives, not the 2NW − 2 of the global batch
of W processes. Here:

    world = setup()                       # from torchrun's RANK, WORLD_SIZE, LOCAL_RANK, MASTER_ADDR/PORT
    ddp = wrap_ddp(model.to(world.device), world)
    z1, z2 = ddp(torch.cat([v1, v2])).chunk(2)
    loss = global_nt_xent(z1, z2, 0.2)    # this process's 2N views against all 2NW views
    ...
    cleanup()

- `gather_with_grad(x)`: every process's x, concatenated in rank order, with the
  gradient path kept: each process's slice receives the gradient of EVERY
  process's loss (its backward sums the gradients over the processes).
  A plain `dist.all_gather` cuts that path: the negatives from other processes
  then push nothing back, and the gradients no longer equal one big batch's.
- The `*_gathered` losses score this process's rows against the gathered
  batch; the targets are offset by n · rank (row i of rank r is global row
  n·r + i), as open_clip's `local_loss` does. Their mean over the processes is
  the single-process loss of the concatenated batch, and DDP's average of the
  gradients is its gradient. The `global_*` losses gather first.
- `shard_batches`: every process draws the same permutation and keeps its
  slice of each global batch: disjoint shards, no duplicates.
- `global_batchnorm`: BatchNorm statistics over the global batch (`GlobalBatchNorm`:
  one all-reduce of the per-process statistics per layer, through
  torch.distributed's functional collectives, so autograd sends the gradient
  back through it). No host synchronisation and no data-dependent shapes, and
  it runs on gloo (CPU) as on NCCL: the tests check it against BatchNorm over
  the concatenated batch. PyTorch's own SyncBatchNorm (`sync_batchnorm`, CUDA
  only) indexes with a mask in every forward (`count_all[mask]` in
  torch/nn/modules/_functions.py), one host sync per BatchNorm layer per step
  (21 in the course's ResNet-18 + head), and breaks a compiled graph at every
  layer. Neither is measured on a GPU here.
- `shared_generator`: a generator in the same state on every process (MoCo's
  shuffle-BN draws one permutation for all of them without a message per step).
- Timeouts: a collective waits `setup(timeout_s=...)` for a missing process,
  30 minutes by default: long enough for a first torch.compile or a slow disk,
  short enough that a dead process does not hold the job for hours. Download
  data before `setup` (the CLI does), not inside a barrier.

Run as ONE process (no torchrun), the world has size 1: the gather is the
identity, the offset is 0, and every loss equals its single-process twin in
`contrastive_lab.losses`. gloo runs on CPU, NCCL on CUDA.
"""
from __future__ import annotations

import datetime
import os
import socket
from collections.abc import Iterator, Mapping
from dataclasses import dataclass

import torch
import torch.distributed as dist
import torch.nn as nn
import torch.nn.functional as F

from .device import get_device, get_rank, get_world_size, make_generator
from .losses import DEFAULT_TEMPERATURE, SUPCON_TEMPERATURE, float32_block
from .validate import (check_labels, check_matrix, check_positive, check_same_shape, check_temperature,
                       value_checks_enabled)

ENV_VARS = ("RANK", "WORLD_SIZE", "LOCAL_RANK", "MASTER_ADDR", "MASTER_PORT")


class WorldError(RuntimeError):
    """The processes are not set up consistently (environment, devices, batch sizes)."""


# ---------------------------------------------------------------- the world
@dataclass(frozen=True)
class World:
    """Where this process stands among the others.

    rank: 0 … world_size − 1 over all nodes; local_rank: its index on this node
    (its GPU); device: where it trains; backend: "gloo", "nccl", or None for a
    single process without torch.distributed.
    """

    rank: int
    world_size: int
    local_rank: int
    device: torch.device
    backend: str | None

    @property
    def is_main(self) -> bool:
        """Rank 0: the one process that logs, shows progress and writes files."""
        return self.rank == 0


def read_env(env: Mapping[str, str] | None = None) -> tuple[int, int, int]:
    """(rank, world_size, local_rank) from torchrun's environment variables.

    Without RANK and WORLD_SIZE: (0, 1, 0), a single process. Raises WorldError,
    naming the variable and the fix, when they are half set, not integers, out
    of range, or when a multi-process run lacks MASTER_ADDR / MASTER_PORT.
    """
    env = os.environ if env is None else env
    have = [name for name in ("RANK", "WORLD_SIZE") if env.get(name, "") != ""]
    if not have:
        return 0, 1, 0
    if len(have) == 1:
        missing = "WORLD_SIZE" if have == ["RANK"] else "RANK"
        raise WorldError(f"{have[0]} is set but {missing} is not: start the processes with torchrun "
                         f"(it sets both), or set both, or neither for a single process")

    def integer(name: str, default: str | None = None) -> int:
        value = env.get(name, default)
        if value is None or value == "":
            raise WorldError(f"{name} is not set: torchrun sets it for every process; "
                             f"when launching by hand set {', '.join(ENV_VARS)}")
        try:
            return int(value)
        except ValueError:
            raise WorldError(f"{name} must be an integer, got {value!r}") from None

    world_size, rank = integer("WORLD_SIZE"), integer("RANK")
    if world_size < 1:
        raise WorldError(f"WORLD_SIZE must be at least 1, got {world_size}")
    if not 0 <= rank < world_size:
        raise WorldError(f"RANK must be in 0 … WORLD_SIZE − 1 = {world_size - 1}, got {rank}")
    local_rank = integer("LOCAL_RANK", "0" if world_size == 1 else None)
    if not 0 <= local_rank <= rank:
        raise WorldError(f"LOCAL_RANK must be in 0 … RANK = {rank} (the process's index on its node), "
                         f"got {local_rank}")
    if world_size > 1:
        missing = [name for name in ("MASTER_ADDR", "MASTER_PORT") if not env.get(name)]
        if missing:
            raise WorldError(f"{' and '.join(missing)} not set: the processes cannot find each other. "
                             "torchrun sets them (torchrun --standalone for one machine; "
                             "--rdzv-endpoint HOST:PORT for several)")
    return rank, world_size, local_rank


def rank_device(local_rank: int = 0, name: str | None = None) -> torch.device:
    """The device of the process with this local rank: cuda:local_rank on a GPU machine, else the CPU.

    `name` (or $CLAB_DEVICE) chooses as in `device.get_device`; "cuda" becomes
    this process's own GPU. Raises WorldError when there are fewer GPUs than
    processes on the node, or for Apple MPS (no multi-process backend).
    """
    device = get_device(name)
    if device.type == "cuda":
        count = torch.cuda.device_count()
        if local_rank >= count:
            raise WorldError(f"LOCAL_RANK={local_rank} but this node has {count} GPU(s): start at most "
                             f"{count} processes per node (torchrun --nproc_per_node {count})")
        return torch.device("cuda", local_rank)
    if device.type == "mps":
        raise WorldError("multi-process training runs on CUDA (NCCL) or on the CPU (gloo), not on Apple MPS: "
                         "set CLAB_DEVICE=cpu")
    return device


DEFAULT_TIMEOUT_S = 30 * 60.0


def setup(device: str | None = None, timeout_s: float = DEFAULT_TIMEOUT_S,
          env: Mapping[str, str] | None = None) -> World:
    """Join the other processes (torch.distributed) and return this process's World.

    Reads torchrun's environment (`read_env`); a single process (no RANK /
    WORLD_SIZE) gets World(0, 1, 0, device, None) and no process group. The
    backend follows the device: NCCL on CUDA, gloo on CPU. `timeout_s` bounds
    how long a collective waits for a missing process before failing (30 min by
    default: a first compile of a big model, or one slow node, must not kill the
    job). Download and prepare the data before calling it.
    """
    rank, world_size, local_rank = read_env(env)
    device = rank_device(local_rank, device)
    if world_size == 1:
        return World(0, 1, 0, device, None)
    backend = "nccl" if device.type == "cuda" else "gloo"
    if device.type == "cuda":
        torch.cuda.set_device(device)
    if not dist.is_initialized():
        dist.init_process_group(backend, rank=rank, world_size=world_size,
                                timeout=datetime.timedelta(seconds=timeout_s))
    return World(rank, world_size, local_rank, device, backend)


def cleanup() -> None:
    """Wait for every process, then leave the process group (no-op for a single process)."""
    if dist.is_available() and dist.is_initialized():
        dist.barrier()
        dist.destroy_process_group()


def free_port() -> int:
    """A TCP port that is free on 127.0.0.1 now (for tests that start processes by hand)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def run_processes(fn, nprocs: int, args: tuple = (), timeout_s: float = 300.0) -> None:
    """Start `fn(rank, *args)` in `nprocs` processes (torch.multiprocessing) and wait for all of
    them; a process that fails re-raises its error here, and processes still running after
    `timeout_s` are killed and a WorldError says so. For tests and demos on one machine
    (with `free_port()` as MASTER_PORT); real runs use torchrun."""
    import time

    import torch.multiprocessing as mp

    context = mp.spawn(fn, args=args, nprocs=nprocs, join=False)
    deadline = time.monotonic() + timeout_s
    while not context.join(timeout=5):
        if time.monotonic() > deadline:
            for process in context.processes:
                process.kill()
            raise WorldError(f"the {nprocs} processes did not finish within {timeout_s:.0f} s")


def wrap_ddp(module: nn.Module, world: World, **kwargs) -> nn.Module:
    """DistributedDataParallel around `module` (already on world.device); the module itself
    when world_size is 1. DDP makes every process start from rank 0's weights and
    averages the gradients over the processes during backward."""
    if world.world_size == 1:
        return module
    device_ids = [world.device.index] if world.device.type == "cuda" else None
    return nn.parallel.DistributedDataParallel(module, device_ids=device_ids, **kwargs)


def sync_batchnorm(module: nn.Module, device: torch.device | str) -> nn.Module:
    """Every BatchNorm → PyTorch's SyncBatchNorm, so batch statistics are taken over all processes.

    CUDA only: PyTorch's SyncBatchNorm raises on CPU tensors ("expected input
    tensor to be on GPU"), so this raises a WorldError on any other device. Its
    forward waits for the host once per layer per step (see the module docstring);
    the course's `--sync-bn` uses `global_batchnorm` instead. Call before `wrap_ddp`.
    """
    if torch.device(device).type != "cuda":
        raise WorldError("SyncBatchNorm runs on CUDA GPUs only (PyTorch raises on CPU tensors); "
                         "on the CPU train without it: each process normalises over its own batch")
    return nn.SyncBatchNorm.convert_sync_batchnorm(module)


class GlobalBatchNorm(nn.modules.batchnorm._BatchNorm):
    """BatchNorm whose training-mode statistics are those of the GLOBAL batch of all processes.

    Input (N, C, …), every process with the same N (`shard_batches` gives that). Each
    process computes its per-channel mean m_r and sum of squared deviations M2_r over
    its own n = N·(…) values; ONE all-reduce sums [m_r, M2_r, m_r²] (3C numbers); then

        mean = Σ m_r / W,    var = (Σ M2_r + n · (Σ m_r² − W · mean²)) / (n · W)

    (the within- plus the between-process spread), exactly the biased variance of the
    concatenated batch. The all-reduce is `torch.distributed._functional_collectives`'s,
    which carries the gradient back (the backward all-reduces the gradients of the
    statistics), so every process's gradient is that of BatchNorm over the global batch.
    Nothing reads a value on the host and no shape depends on the data. The running
    statistics are updated with the global mean and the unbiased global variance.
    Computed in float32; the output has the input's dtype. In eval mode, or with one
    process, it is nn.BatchNorm. Same parameters and buffers as nn.BatchNorm*d.
    """

    def _check_input_dim(self, x: torch.Tensor) -> None:
        if x.ndim < 2:
            raise ValueError(f"GlobalBatchNorm expects (N, C, ...) input, got shape {tuple(x.shape)}")

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        world = get_world_size()
        if not self.training or world == 1:
            return super().forward(x)
        self._check_input_dim(x)
        import torch.distributed._functional_collectives as funcol

        c = x.shape[1]
        dims = [0, *range(2, x.ndim)]
        shape = (1, c) + (1,) * (x.ndim - 2)
        n = x.numel() // c                                        # values per channel on this process
        xf = x.float()
        mean = xf.mean(dims)                                      # (C,)
        m2 = (xf - mean.view(shape)).pow(2).sum(dims)             # (C,)
        total = funcol.all_reduce(torch.cat([mean, m2, mean * mean]), "sum", dist.group.WORLD)
        sum_mean, sum_m2, sum_mean_sq = total.split(c)
        global_mean = sum_mean / world
        var = ((sum_m2 + n * (sum_mean_sq - world * global_mean * global_mean)) / (n * world)).clamp_min(0)
        y = (xf - global_mean.view(shape)) * torch.rsqrt(var.view(shape) + self.eps)
        if self.affine:
            y = y * self.weight.view(shape) + self.bias.view(shape)
        if self.track_running_stats:
            with torch.no_grad():
                self.num_batches_tracked.add_(1)
                # momentum None: a cumulative average, 1 / batches seen (kept as a tensor: no host read)
                factor = self.momentum if self.momentum is not None else 1.0 / self.num_batches_tracked
                count = n * world
                self.running_mean.lerp_(global_mean.detach().to(self.running_mean.dtype), factor)
                self.running_var.lerp_((var.detach() * count / max(count - 1, 1)).to(self.running_var.dtype),
                                       factor)
        return y.to(x.dtype)


def global_batchnorm(module: nn.Module) -> nn.Module:
    """Every BatchNorm layer in `module` → GlobalBatchNorm, in place, with the same weights and
    statistics (the state_dict keeps its keys). Returns `module` (the new layer when `module`
    is itself a BatchNorm). Call before `wrap_ddp`; works on every device and backend."""
    if isinstance(module, nn.modules.batchnorm._BatchNorm) and not isinstance(module, GlobalBatchNorm):
        new = GlobalBatchNorm(module.num_features, module.eps, module.momentum, module.affine,
                              module.track_running_stats, device=_param_device(module))
        new.load_state_dict(module.state_dict())
        if module.affine:
            new.weight.requires_grad_(module.weight.requires_grad)
            new.bias.requires_grad_(module.bias.requires_grad)
        return new.train(module.training)
    for name, child in module.named_children():
        converted = global_batchnorm(child)
        if converted is not child:
            setattr(module, name, converted)
    return module


def _param_device(module: nn.Module):
    tensors = list(module.parameters()) + list(module.buffers())
    return tensors[0].device if tensors else None


def shared_generator(seed: int, device: torch.device | str = "cpu") -> torch.Generator:
    """A generator in the same state on every process: rank 0's `seed` (plus $CLAB_SEED) is
    broadcast once, here, so every process then draws the same numbers (MoCo's shuffle-BN
    permutation) without a message per step. With one process, `make_generator(seed, device)`."""
    if get_world_size() > 1:
        box = [seed]
        dist.broadcast_object_list(box, src=0)
        seed = box[0]
    return make_generator(seed, device)


# ---------------------------------------------------------------- batches
def per_process_batch(global_batch: int, world_size: int) -> int:
    """The batch each process takes so that W processes together take `global_batch`."""
    if global_batch <= 0 or world_size <= 0:
        raise WorldError(f"global batch and world size must be positive, got {global_batch} and {world_size}")
    if global_batch % world_size:
        raise WorldError(f"a global batch of {global_batch} does not split over {world_size} processes; "
                         f"use a multiple of {world_size} (e.g. {global_batch - global_batch % world_size or world_size})")
    return global_batch // world_size


def shard_batches(n: int, batch_size: int, generator: torch.Generator | None = None, rank: int = 0,
                  world_size: int = 1) -> Iterator[torch.Tensor]:
    """This process's index batches (batch_size,) for one epoch over range(n).

    Every process draws the same permutation (give each the same generator
    seed), cuts it into global batches of batch_size · world_size and keeps
    slice `rank` of each: within an epoch no index appears twice on any
    process. The last incomplete global batch is dropped. With world_size 1
    this is `data.minibatches(n, batch_size, generator)`, draw for draw.
    """
    if batch_size <= 0:
        raise ValueError(f"batch_size must be positive, got {batch_size}")
    if not 0 <= rank < world_size:
        raise WorldError(f"rank must be in 0 … {world_size - 1}, got {rank}")
    step = batch_size * world_size
    stop = n - n % step
    if stop == 0:
        raise WorldError(f"the global batch ({world_size} processes × {batch_size}) is larger than the "
                         f"dataset ({n} images): lower the batch size or start fewer processes")
    device = generator.device if generator is not None else "cpu"
    order = torch.randperm(n, generator=generator, device=device)
    for start in range(0, stop, step):
        yield order[start + rank * batch_size:start + (rank + 1) * batch_size]


def rank_seed(seed: int, rank: int, epoch: int = 0) -> int:
    """A seed of its own for every (rank, epoch): augmentations must differ between processes.

    With one seed everywhere, image j of every process's batch would get the
    same crop and colours as image j of every other's.
    """
    return (seed * 1_000_003 + rank) * 1_000_003 + epoch


# ---------------------------------------------------------------- the gather
def _all_gather(x: torch.Tensor) -> torch.Tensor:
    out = x.new_empty((get_world_size() * x.shape[0], *x.shape[1:]))
    gather_into = getattr(dist, "all_gather_single", None) or dist.all_gather_into_tensor   # torch < 2.14
    gather_into(out, x.contiguous())
    return out


class _GatherWithGrad(torch.autograd.Function):
    """Forward: all-gather along dim 0. Backward: every process holds the gradient of
    ITS loss with respect to the whole gathered tensor; summing those over the
    processes (all-reduce) gives the gradient of the sum of all the losses, and
    each process keeps the slice of its own rows. (A reduce-scatter does the
    same in one step; torch.distributed._functional_collectives'
    all_gather_single_autograd is this function in the library.)"""

    @staticmethod
    def forward(ctx, x: torch.Tensor) -> torch.Tensor:
        return _all_gather(x)

    @staticmethod
    def backward(ctx, grad: torch.Tensor) -> torch.Tensor:
        grad = grad.contiguous().clone()
        dist.all_reduce(grad, op=dist.ReduceOp.SUM)
        n = grad.shape[0] // get_world_size()
        return grad[get_rank() * n:(get_rank() + 1) * n]


def gather_with_grad(x: torch.Tensor) -> torch.Tensor:
    """Every process's x (n, …), concatenated in rank order: (n · world_size, …).

    Rows n·r … n·r + n − 1 are rank r's. The gradient flows back: each
    process's x receives the gradient of every process's loss. Every process
    must pass the same shape (`shard_batches` gives equal batches). With one
    process, x itself.
    """
    if get_world_size() == 1:
        return x
    return _GatherWithGrad.apply(x)


@torch.no_grad()
def gather(x: torch.Tensor) -> torch.Tensor:
    """Like `gather_with_grad`, without gradient: for labels, or MoCo's keys for its queue."""
    return x if get_world_size() == 1 else _all_gather(x)


# ---------------------------------------------------------------- losses against gathered keys
def _check_gathered(local: torch.Tensor, gathered: torch.Tensor, rank: int, name: str) -> int:
    """Number of processes W that `gathered` holds, after checking the shapes fit."""
    n, m = local.shape[0], gathered.shape[0]
    if local.shape[1:] != gathered.shape[1:] or m % n:
        raise ValueError(f"{name}: expected the gathered batch (n · W, D) of every process's rows, got "
                         f"{tuple(gathered.shape)} for this process's {tuple(local.shape)}")
    if not 0 <= rank < m // n:
        raise ValueError(f"{name}: rank must be in 0 … {m // n - 1} for {m // n} processes, got {rank}")
    return m // n


def _own_rows(n: int, rank: int, device) -> torch.Tensor:
    """Where this process's n rows sit in the gathered batch: n·rank … n·rank + n − 1."""
    return torch.arange(n, device=device) + n * rank


def nt_xent_gathered(z1: torch.Tensor, z2: torch.Tensor, all_z1: torch.Tensor, all_z2: torch.Tensor,
                     rank: int, temperature: float = DEFAULT_TEMPERATURE) -> torch.Tensor:
    """NT-Xent of this process's 2n views against the 2nW views of all W processes.

    Args:
        z1, z2: (n, D) this process's two views of its n images.
        all_z1, all_z2: (nW, D) every process's z1 and z2, in rank order.
        rank: this process's rank; its rows sit at n·rank … n·rank + n − 1.
        temperature: > 0.

    The keys are [all_z1; all_z2] (2nW). Local view i of z1 is key n·rank + i
    (masked out: itself) and its twin is key nW + n·rank + i; for z2 the other
    way round. Each view has 2nW − 2 negatives and the loss at random init is
    ≈ ln(2nW − 1). Returns the mean over the 2n local views; its mean over the
    ranks equals `losses.nt_xent(all_z1, all_z2)`.
    """
    check_same_shape(z1, z2, "z1", "z2")
    check_same_shape(all_z1, all_z2, "all_z1", "all_z2")
    _check_gathered(z1, all_z1, rank, "nt_xent_gathered")
    check_temperature(temperature)
    n, m = z1.shape[0], all_z1.shape[0]
    with float32_block(z1):
        queries = F.normalize(torch.cat([z1, z2]).float(), dim=1)             # (2n, D)
        keys = F.normalize(torch.cat([all_z1, all_z2]).float(), dim=1)        # (2m, D)
        logits = queries @ keys.T / temperature                               # (2n, 2m)
        own = _own_rows(n, rank, z1.device)
        itself = torch.cat([own, own + m])                                    # each view's own column
        twin = torch.cat([own + m, own])                                      # the rank-offset target
        logits = logits.scatter(1, itself[:, None], float("-inf"))
        return F.cross_entropy(logits, twin)


def info_nce_gathered(query: torch.Tensor, positive_key: torch.Tensor, all_keys: torch.Tensor, rank: int,
                      temperature: float = DEFAULT_TEMPERATURE) -> torch.Tensor:
    """InfoNCE with in-batch negatives from every process (MoCo v3's form).

    query, positive_key: (n, D) this process's rows; all_keys: (nW, D) every
    process's positive keys, in rank order. Query i's positive is key
    n·rank + i; the other nW − 1 keys are its negatives. Returns the mean over
    the n local queries; its mean over the ranks equals
    `losses.info_nce(all_queries, all_keys)`.
    """
    check_same_shape(query, positive_key, "query", "positive_key")
    _check_gathered(positive_key, all_keys, rank, "info_nce_gathered")
    check_temperature(temperature)
    with float32_block(query):
        q = F.normalize(query.float(), dim=1)
        k = F.normalize(all_keys.float(), dim=1)
        logits = q @ k.T / temperature                                        # (n, nW)
        return F.cross_entropy(logits, _own_rows(q.shape[0], rank, q.device))


def clip_loss_gathered(image_emb: torch.Tensor, text_emb: torch.Tensor, all_image: torch.Tensor,
                       all_text: torch.Tensor, rank: int, logit_scale) -> torch.Tensor:
    """CLIP's symmetric InfoNCE for this process's n pairs against all nW pairs (open_clip's local_loss).

    image_emb, text_emb: (n, D) this process's pairs; all_image, all_text:
    (nW, D) every process's, in rank order; logit_scale: the multiplier
    (1 / temperature). Image i is scored against all nW captions and caption i
    against all nW images; the target of both is n·rank + i. Returns
    ½ (image→text + text→image), the mean over local rows; its mean over the
    ranks equals `losses.clip_loss(all_image, all_text, logit_scale)`.
    """
    check_same_shape(image_emb, text_emb, "image_emb", "text_emb")
    check_same_shape(all_image, all_text, "all_image", "all_text")
    _check_gathered(image_emb, all_image, rank, "clip_loss_gathered")
    check_positive(logit_scale, "logit_scale")
    with float32_block(image_emb):
        img = F.normalize(image_emb.float(), dim=1)
        txt = F.normalize(text_emb.float(), dim=1)
        scale = logit_scale.float() if isinstance(logit_scale, torch.Tensor) else logit_scale
        target = _own_rows(img.shape[0], rank, img.device)
        image_to_text = scale * img @ F.normalize(all_text.float(), dim=1).T       # (n, nW)
        text_to_image = scale * txt @ F.normalize(all_image.float(), dim=1).T      # (n, nW)
        return 0.5 * (F.cross_entropy(image_to_text, target) + F.cross_entropy(text_to_image, target))


def supcon_loss_gathered(features: torch.Tensor, labels: torch.Tensor, all_features: torch.Tensor,
                         all_labels: torch.Tensor, rank: int,
                         temperature: float = SUPCON_TEMPERATURE) -> torch.Tensor:
    """SupCon (L_out) for this process's m anchors against every process's samples.

    features (m, D), labels (m,): this process's; all_features (mW, D),
    all_labels (mW,): everyone's, in rank order. Every other sample with the
    same label, on any process, is a positive; anchor i's own column
    m·rank + i is masked out. SupCon averages over the anchors that have a
    positive, and how many those are differs between processes, so the sum
    here is divided by the GLOBAL count (read from all_labels) times W: the
    mean over the ranks then equals `losses.supcon_loss(all_features, all_labels)`.
    """
    check_matrix(features, "features")
    check_labels(labels, features.shape[0])
    check_labels(all_labels, all_features.shape[0], "all_labels")
    world = _check_gathered(features, all_features, rank, "supcon_loss_gathered")
    check_temperature(temperature)
    m = features.shape[0]
    with float32_block(features):
        q = F.normalize(features.float(), dim=1)
        k = F.normalize(all_features.float(), dim=1)
        itself = _own_rows(m, rank, q.device)[:, None]
        logits = (q @ k.T / temperature).scatter(1, itself, float("-inf"))     # (m, mW)
        log_prob = logits - torch.logsumexp(logits, dim=1, keepdim=True)
        positive = (labels[:, None] == all_labels[None, :]).scatter(1, itself, False)
        pos_log_prob = torch.where(positive, log_prob, torch.zeros_like(log_prob)).sum(1)
        per_anchor = pos_log_prob / positive.sum(1).clamp_min(1)
        # anchors with a positive, over ALL processes: a label that occurs at least twice
        global_has_pos = (all_labels[:, None] == all_labels[None, :]).sum(1) > 1
        if value_checks_enabled() and not global_has_pos.any():
            raise ValueError("supcon_loss_gathered: no sample has a positive (every label is unique)")
        return -per_anchor.sum() * world / global_has_pos.sum().clamp_min(1)


def global_nt_xent(z1: torch.Tensor, z2: torch.Tensor, temperature: float = DEFAULT_TEMPERATURE) -> torch.Tensor:
    """`nt_xent_gathered` with this process's z1, z2 (n, D) gathered from every process."""
    return nt_xent_gathered(z1, z2, gather_with_grad(z1), gather_with_grad(z2), get_rank(), temperature)


def global_info_nce(query: torch.Tensor, positive_key: torch.Tensor,
                    temperature: float = DEFAULT_TEMPERATURE) -> torch.Tensor:
    """`info_nce_gathered` with the positive keys (n, D) gathered from every process."""
    return info_nce_gathered(query, positive_key, gather_with_grad(positive_key), get_rank(), temperature)


def global_clip_loss(image_emb: torch.Tensor, text_emb: torch.Tensor, logit_scale) -> torch.Tensor:
    """`clip_loss_gathered` with the image and text embeddings (n, D) gathered from every process."""
    return clip_loss_gathered(image_emb, text_emb, gather_with_grad(image_emb), gather_with_grad(text_emb),
                              get_rank(), logit_scale)


def global_supcon_loss(features: torch.Tensor, labels: torch.Tensor,
                       temperature: float = SUPCON_TEMPERATURE) -> torch.Tensor:
    """`supcon_loss_gathered` with features (m, D) and labels (m,) gathered from every process."""
    return supcon_loss_gathered(features, labels, gather_with_grad(features), gather(labels), get_rank(),
                                temperature)


def negatives_per_query(batch_size: int, world_size: int = 1, gathered: bool = True,
                        accumulation_steps: int = 1) -> int:
    """Negatives each view of an NT-Xent step sees: 2B − 2 for a batch of B images on one
    process, 2BW − 2 when W processes gather their views. Gradient accumulation over
    K micro-batches adds none: each micro-batch's loss sees its own 2B − 2."""
    if min(batch_size, world_size, accumulation_steps) < 1:
        raise ValueError("batch_size, world_size and accumulation_steps must be at least 1")
    del accumulation_steps                       # the point: it changes nothing here
    return 2 * batch_size * (world_size if gathered else 1) - 2
