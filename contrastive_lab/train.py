"""One fit loop for every method. The method supplies its step.

    def step(batch) -> loss tensor  (or (loss, {"name": tensor}))
    history = fit(step, params, batches, epochs=..., lr=...)

`batches` is a function epoch → iterable of batches (whatever `step` takes).
The loop owns what every method shares: the optimizer and its learning-rate
schedule, a progress line, mixed precision on CUDA (bf16 where the GPU has it,
fp16 with a gradient scaler on older GPUs such as Colab's T4), periodic
evaluation, a history of losses and metrics, and checkpoints that resume a run
exactly (by epoch, and every few minutes when asked: a Colab runtime that
disconnects loses at most those minutes).

**No host synchronisation inside a step.** On a GPU, reading a tensor's value
on the host (`.item()`, `float(t)`, `if t: …`) makes the host wait for the
device. The loop keeps each step's loss on the device and reads them all at
once every `log_every` steps (and at the end of each epoch); the NaN guard, the
progress line and the history are updated at those reads. Input checks that
read values (`validate.value_checks`) are switched off inside the step; shape
checks stay. The optimizers are the fused kernels, which keep their step
counters on the device too, and take the gradient scaler's inf check on the
device (no `.item()` per step with fp16 either). Each step runs inside
`device.training_step()`, so `device.count_host_syncs` tells its syncs from the
loop's reads.

**Several processes (torchrun).** Under torch.distributed every process runs
this loop on its own shard of the data; only rank 0 shows the progress line
and writes the checkpoint (with every process's random state), and every
process resumes from it, on the same or another number of processes or device.
"""
from __future__ import annotations

import contextlib
import hashlib
import json
import math
import os
import sys
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path

import torch
import torch.nn as nn

from .atomic import check_writable, remove_stale_temp_files
from .device import amp_dtype, get_rank, get_world_size, is_main_process, training_step
from .integrity import load_checked, payload_sha256, save_checked
from .validate import value_checks

OPTIMIZERS = ("adam", "adamw")
SCHEDULES = ("constant", "cosine")


@dataclass
class History:
    """What a run measured.

    loss: loss of every step, in order.
    epoch_loss: mean loss of every epoch.
    metrics: name → list of (epoch, value), from `evaluate` and from step extras.
    """

    loss: list[float] = field(default_factory=list)
    epoch_loss: list[float] = field(default_factory=list)
    metrics: dict[str, list[tuple[int, float]]] = field(default_factory=dict)

    def log(self, name: str, epoch: int, value: float) -> None:
        self.metrics.setdefault(name, []).append((epoch, float(value)))

    def last(self, name: str) -> float:
        """Latest value of a metric (or of "loss" / "epoch_loss")."""
        if name in ("loss", "epoch_loss"):
            return getattr(self, name)[-1]
        return self.metrics[name][-1][1]

    def as_dict(self) -> dict:
        return {"loss": list(self.loss), "epoch_loss": list(self.epoch_loss),
                "metrics": {k: [list(p) for p in v] for k, v in self.metrics.items()}}

    @classmethod
    def from_dict(cls, d: dict) -> "History":
        return cls(list(d["loss"]), list(d["epoch_loss"]),
                   {k: [tuple(p) for p in v] for k, v in d["metrics"].items()})


def autocast_context(device: torch.device | str, enabled: bool = True):
    """Autocast in `device.amp_dtype(device)` when enabled (bf16 on sm_80+ GPUs, fp16 on
    sm_7x such as a T4); a no-op context where that is None (CPU, MPS, older GPUs)."""
    device = torch.device(device)
    dtype = amp_dtype(device) if enabled else None
    return torch.autocast(device.type, dtype=dtype) if dtype is not None else contextlib.nullcontext()


def make_grad_scaler(device: torch.device | str, enabled: bool = True) -> torch.amp.GradScaler | None:
    """A GradScaler when autocast runs in float16 on `device` (its small range makes small
    gradients underflow to 0 without one), else None (bf16 and float32 need none).

    With the fused optimizers of `make_optimizer` the scaler stays on the device:
    the optimizer skips a step with inf/NaN gradients inside its kernel and
    `update()` adjusts the scale there (`torch._amp_update_scale_`); no value is
    read on the host. (With a non-fused optimizer, `scaler.step` reads one.)
    """
    device = torch.device(device)
    if enabled and amp_dtype(device) == torch.float16:
        return torch.amp.GradScaler(device.type)
    return None


def backward_and_step(loss: torch.Tensor, optimizer: torch.optim.Optimizer,
                      scaler: torch.amp.GradScaler | None = None) -> None:
    """loss.backward() and optimizer.step(), through `scaler` when there is one (fp16): the
    scaled loss's backward, a step skipped on inf/NaN gradients, the scale updated."""
    if scaler is None:
        loss.backward()
        optimizer.step()
        return
    scaler.scale(loss).backward()
    scaler.step(optimizer)
    scaler.update()


# ---------------------------------------------------------------- optimizer and schedule
def make_optimizer(params, name: str = "adam", lr: float = 1e-3,
                   weight_decay: float = 0.0) -> torch.optim.Optimizer:
    """Adam or AdamW over `params`, as the fused kernel where the device has one.

    The fused kernels (CPU and CUDA) do the whole update in one call per step and
    keep their step counters on the device: the for-each Adam reads a counter on
    the host for every parameter, every step.
    """
    if name not in OPTIMIZERS:
        raise ValueError(f"optimizer must be one of {OPTIMIZERS}, got {name!r}")
    params = [p for p in params if p.requires_grad]
    if not params:
        raise ValueError("no trainable parameters: every parameter has requires_grad=False")
    cls = torch.optim.Adam if name == "adam" else torch.optim.AdamW
    try:
        return cls(params, lr=lr, weight_decay=weight_decay, fused=True)
    except (RuntimeError, ValueError):          # a device without a fused kernel (e.g. older MPS)
        return cls(params, lr=lr, weight_decay=weight_decay, foreach=True)


def make_schedule(optimizer: torch.optim.Optimizer, total_steps: int, warmup_steps: int = 0,
                  kind: str = "constant") -> torch.optim.lr_scheduler.LambdaLR:
    """Learning-rate multiplier per step: linear warm-up over `warmup_steps`, then
    constant ("constant") or a cosine decay to 0 at `total_steps` ("cosine")."""
    if kind not in SCHEDULES:
        raise ValueError(f"schedule must be one of {SCHEDULES}, got {kind!r}")
    total_steps, warmup_steps = max(1, total_steps), max(0, warmup_steps)

    def factor(step: int) -> float:
        if step < warmup_steps:
            return (step + 1) / warmup_steps
        if kind == "constant":
            return 1.0
        done = min(step - warmup_steps, total_steps - warmup_steps) / max(1, total_steps - warmup_steps)
        return 0.5 * (1 + math.cos(math.pi * done))
    return torch.optim.lr_scheduler.LambdaLR(optimizer, factor)


# ---------------------------------------------------------------- torch.compile, once
def compile_once(model: nn.Module, enabled: bool = True) -> nn.Module:
    """torch.compile every child module of `model` in place, once.

    The compiled forward is kept on each child (`nn.Module.compile`), so a second
    call, or a second training run of the same model, reuses it instead of
    compiling again; the state_dict does not change. If compiling fails (no C++
    compiler, no Triton, an unsupported op: an error of dynamo or inductor), one
    line says so and the child runs eagerly from then on. Compiling happens at the
    first call; the first call in training mode also runs the backward once (with
    `autograd.grad`, leaving `.grad` untouched), because the backward is compiled
    lazily: its failure is caught here too, not in the middle of `loss.backward()`.
    Any other error (out of memory, a wrong shape) is raised as it is, and the
    compiled forward is kept. Returns `model`.
    """
    if not enabled:
        return model
    for child in model.children():
        if child._compiled_call_impl is None and any(True for _ in child.parameters()):
            _compile_in_place(child)
    return model


def is_compile_error(exc: BaseException) -> bool:
    """Whether `exc` says that torch.compile could not compile (dynamo or inductor failed),
    as opposed to an error of the computation itself (out of memory, a wrong shape)."""
    import torch._dynamo.exc as dynamo_exc

    inner = getattr(exc, "inner_exception", None)
    if isinstance(exc, torch.OutOfMemoryError) or isinstance(inner, torch.OutOfMemoryError):
        return False
    kinds = [dynamo_exc.TorchDynamoException, getattr(dynamo_exc, "TritonUnavailableError", None)]
    try:
        import torch._inductor.exc as inductor_exc
        kinds += [getattr(inductor_exc, name, None) for name in
                  ("InductorError", "CppCompileError", "InvalidCxxCompiler", "OperatorIssue")]
    except ImportError:                          # a build of torch without inductor
        pass
    return isinstance(exc, tuple(k for k in kinds if isinstance(k, type)))


def _compile_in_place(module: nn.Module) -> None:
    compiled = torch.compile(module._call_impl)
    backward_tried = False

    def guarded(*args, **kwargs):
        nonlocal backward_tried
        try:
            out = compiled(*args, **kwargs)
            if not backward_tried and module.training and torch.is_grad_enabled():
                _run_backward_once(module, out)   # compiles the backward now, inside this try
                backward_tried = True
            return out
        except Exception as exc:
            if not is_compile_error(exc):
                raise
            out = module._call_impl(*args, **kwargs)      # eager; an error of the computation raises here
            module._compiled_call_impl = None             # (BatchNorm's running statistics moved twice, once)
            reason = str(exc).strip().splitlines()[0][:160] if str(exc).strip() else type(exc).__name__
            print(f"torch.compile failed for {type(module).__name__} ({reason}); running it eagerly")
            return out

    module._compiled_call_impl = guarded


def _run_backward_once(module: nn.Module, out) -> None:
    """Backward of `out` to `module`'s parameters, keeping the graph and leaving `.grad` alone."""
    outputs = [t for t in (out if isinstance(out, (tuple, list)) else [out])
               if isinstance(t, torch.Tensor) and t.requires_grad and t.is_floating_point()]
    params = [p for p in module.parameters() if p.requires_grad]
    if outputs and params:
        total = sum(t.float().sum() for t in outputs)
        torch.autograd.grad(total, params, retain_graph=True, allow_unused=True)


# ---------------------------------------------------------------- progress line
class Progress:
    """One progress line per run that stays readable after the run.

    In a notebook the line is a display that is updated in place, so the stored
    output (on a code host, in nbval) is the final state, e.g.
    "SimCLR: 100%|██████████| 468/468 [00:41<00:00, 11.4step/s, epoch 12/12, loss 2.491]".
    In a terminal it is an ordinary tqdm bar. Updated only when the loop reads
    the loss on the host (every `log_every` steps).
    """

    def __init__(self, desc: str, total: int | None, enabled: bool = True):
        self.desc, self.total, self.enabled = desc, total, enabled
        self.start = time.perf_counter()
        self.handle = self.bar = None
        if not enabled:
            return
        if _in_notebook():
            from IPython.display import Pretty, display
            self.handle = display(Pretty(self._line(0, "")), display_id=True)
        else:
            from tqdm.auto import tqdm
            self.bar = tqdm(total=total, desc=desc, unit="step", file=sys.stderr, leave=True)

    def _line(self, n: int, postfix: str) -> str:
        from tqdm import tqdm
        return tqdm.format_meter(n, self.total, time.perf_counter() - self.start, prefix=self.desc,
                                 unit="step", postfix=postfix or None, ncols=100)

    def update(self, n: int, postfix: str) -> None:
        if self.handle is not None:
            from IPython.display import Pretty
            self.handle.update(Pretty(self._line(n, postfix)))
        elif self.bar is not None:
            self.bar.n = n
            self.bar.set_postfix_str(postfix, refresh=True)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()


def _in_notebook() -> bool:
    try:
        from IPython import get_ipython
    except ImportError:
        return False
    shell = get_ipython()
    return shell is not None and "IPKernelApp" in getattr(shell, "config", {})


# ---------------------------------------------------------------- the loop
CHECKPOINT_DIR_ENV = "CLAB_CHECKPOINT_DIR"
CHECKPOINT_EVERY_S = 300.0          # a run that checkpoints by time saves every 5 minutes


def checkpoint_folder() -> Path | None:
    """The folder named by $CLAB_CHECKPOINT_DIR (created when missing), or None when it is unset.

    The course's long runs (notebook 05's models) checkpoint there every
    CHECKPOINT_EVERY_S seconds and resume from it. On Colab, name a folder of your
    mounted Google Drive (it survives a runtime reset; the course's data/ does not):
    os.environ["CLAB_CHECKPOINT_DIR"] = "/content/drive/MyDrive/clab-checkpoints".
    """
    text = os.environ.get(CHECKPOINT_DIR_ENV, "").strip()
    if not text:
        return None
    folder = Path(text).expanduser()
    if folder.exists() and not folder.is_dir():
        raise ValueError(f"{CHECKPOINT_DIR_ENV}={text} is a file; name a folder for the checkpoints")
    folder.mkdir(parents=True, exist_ok=True)
    return folder


def fit(
    step: Callable,
    params: Iterable[torch.nn.Parameter] | torch.optim.Optimizer,
    batches: Callable[[int], Iterable],
    epochs: int,
    *,
    lr: float = 1e-3,
    weight_decay: float = 0.0,
    optimizer: str = "adam",
    schedule: str = "constant",
    warmup_steps: int = 0,
    steps_per_epoch: int | None = None,
    device: torch.device | str = "cpu",
    amp: bool = True,
    evaluate: Callable[[], dict[str, float]] | None = None,
    eval_every: int = 1,
    after_step: Callable[[], None] | None = None,
    checkpoint: str | os.PathLike | None = None,
    checkpoint_every_s: float | None = None,
    modules: dict[str, torch.nn.Module] | None = None,
    generators: dict[str, torch.Generator] | None = None,
    experiment: dict | None = None,
    history: History | None = None,
    log_every: int = 25,
    max_seconds: float | None = None,
    progress: bool = True,
    desc: str = "train",
) -> History:
    """Train for `epochs` epochs and return the History.

    Args:
        step: batch → loss (scalar tensor), or (loss, {name: tensor or float}) to log.
            It must not read tensor values on the host (see the module docstring).
        params: parameters to optimize, or a ready optimizer.
        batches: epoch → iterable of batches for that epoch.
        epochs: total epochs (a resumed run continues up to this number).
        lr, weight_decay, optimizer: for the optimizer built from `params`
            ("adam" or "adamw", fused where the device has the kernel).
        schedule, warmup_steps: the learning rate's shape over the run: linear
            warm-up, then "constant" or "cosine" decay to 0. The cosine needs the
            run's length: `steps_per_epoch` (also the progress line's total).
        device, amp: with amp, autocast in `device.amp_dtype(device)` (bf16 on sm_80+
            GPUs; fp16 on sm_7x, with a GradScaler: `make_grad_scaler`); nothing on CPU.
        evaluate: () → {metric: value}, run every `eval_every` epochs and after
            the last one; the model is whatever `step` closes over.
        after_step: called after every optimizer step (e.g. a momentum update).
        checkpoint: a file path; saved after every epoch (atomically) and, when it
            exists, resumed from. It holds `modules` (name → module, required),
            the optimizer, the schedule, the gradient scaler, the random state of
            every process (torch's CPU and device generators and `generators`,
            name → torch.Generator on any device), the epoch and the history, so a
            resumed run repeats the uninterrupted one exactly (on CPU; GPU kernels
            are not all deterministic). Resumed with fewer processes, or on another
            kind of device, what cannot be restored (a CUDA generator on the CPU, a
            process that was not there) is re-seeded and one line says so.
            Under torch.distributed only rank 0 writes it; every rank reads it.
            A bad path (a folder, a path under a file) fails before the first epoch;
            abandoned temporary files of killed saves in its folder are removed.
        checkpoint_every_s: also save inside an epoch when this many seconds passed
            since the last save (checked at the loss reads, every `log_every` steps);
            a resumed run then continues from that step, as if never stopped.
        experiment: plain JSON data naming what makes this run this run (method,
            model, data, batch size, learning rate, seed ...). Recorded in every
            checkpoint; resuming a checkpoint whose experiment differs raises
            CheckpointMismatchError naming the settings that differ (leave out what
            may change on resume, such as the device).
        history: continue an existing History.
        log_every: read the losses on the host every this many steps.
        max_seconds: stop at the first read after this much wall-clock time.
        progress: show the progress line (on rank 0 only, under torch.distributed).

    Raises FloatingPointError, naming the step, when the loss becomes NaN/Inf;
    the run so far is attached as `error.history` (the bad loss last).
    """
    if log_every < 1:
        raise ValueError(f"log_every must be >= 1, got {log_every}")
    if checkpoint_every_s is not None and not checkpoint_every_s > 0:
        raise ValueError(f"checkpoint_every_s must be > 0 seconds (or None), got {checkpoint_every_s}")
    device = torch.device(device)
    optimizer = params if isinstance(params, torch.optim.Optimizer) else \
        make_optimizer(params, optimizer, lr, weight_decay)
    total_steps = steps_per_epoch * epochs if steps_per_epoch else None
    if schedule != "constant" and total_steps is None:
        raise ValueError(f"schedule={schedule!r} needs steps_per_epoch (the run's length)")
    scheduler = make_schedule(optimizer, total_steps or 1, warmup_steps, schedule) \
        if schedule != "constant" or warmup_steps else None
    scaler = make_grad_scaler(device, amp)
    history = history or History()
    generators = generators or {}
    experiment = _plain_experiment(experiment)
    start_epoch, resumed = 0, None
    if checkpoint is not None:
        check_writable(checkpoint, "checkpoint")
        remove_stale_temp_files(Path(checkpoint).parent)
    if checkpoint is not None and os.path.exists(checkpoint):
        if not modules:
            raise ValueError("resuming a checkpoint needs `modules` (name → nn.Module)")
        resumed = _load_state(checkpoint, modules, optimizer, scheduler, generators, experiment, scaler)
        start_epoch, history = resumed["epoch"], History.from_dict(resumed["history"])
        note = _restore_random(resumed, "now", device, generators)
        if note and is_main_process():
            print(f"resuming {os.fspath(checkpoint)}: {note}", flush=True)
    bar = Progress(desc, total_steps, progress and start_epoch < epochs and is_main_process())
    done = len(history.loss)
    started = last_save = time.perf_counter()
    pending_loss: list[torch.Tensor] = []
    pending_extras: list[dict] = []
    epoch_values: list[float] = []

    def read(epoch: int) -> None:
        """Bring the pending losses (and step extras) to the host in one transfer; guard; log."""
        nonlocal done
        if not pending_loss:
            return
        values, extras = _read_to_host(pending_loss, pending_extras)
        first = done + 1
        for i, value in enumerate(values):
            history.loss.append(value)
            if not math.isfinite(value):
                error = FloatingPointError(
                    f"loss became {value} at epoch {epoch + 1}, step {len(epoch_values) + 1} "
                    f"(steps {first}–{first + len(values) - 1} were read together); "
                    "lower the learning rate or raise the temperature")
                error.history = history          # for diagnose.diagnose(error.history)
                raise error
            epoch_values.append(value)
            for name, v in extras[i].items():
                history.log(name, epoch + 1, v)
        done += len(values)
        pending_loss.clear()
        pending_extras.clear()
        bar.update(done, f"epoch {epoch + 1}/{epochs}, loss {values[-1]:.3f}")

    def save(epoch: int, steps_in_epoch: int, at_epoch_start: dict) -> None:
        """Every process hands rank 0 its random state; rank 0 writes the checkpoint."""
        nonlocal last_save
        mine = {"now": random_state(device, generators), "at_epoch_start": at_epoch_start}
        everyone = _all_gather_objects(mine)
        if is_main_process():
            in_epoch = None if not steps_in_epoch else {
                "steps": steps_in_epoch, "random_at_epoch_start": [r["at_epoch_start"] for r in everyone]}
            save_checkpoint(checkpoint, modules, optimizer, epoch, history, scheduler, generators,
                            experiment=experiment, scaler=scaler, random=[r["now"] for r in everyone],
                            in_epoch=in_epoch)
        last_save = time.perf_counter()

    try:
        for epoch in range(start_epoch, epochs):
            epoch_values = []
            stopped = False
            skip = 0
            if resumed is not None and resumed.get("in_epoch") and epoch == start_epoch:
                _restore_random(resumed, "at_epoch_start", device, generators)    # this epoch's batches again
                skip = resumed["in_epoch"]["steps"]
            at_epoch_start = random_state(device, generators) if checkpoint is not None else None
            epoch_batches = iter(batches(epoch))
            if skip:
                for _ in range(skip):                 # the steps done before the save, not trained again
                    next(epoch_batches)
                _restore_random(resumed, "now", device, generators)
                epoch_values = history.loss[len(history.loss) - skip:]
            for batch in epoch_batches:
                with training_step():
                    with value_checks(False), autocast_context(device, amp):
                        out = step(batch)
                    loss, extras = (out if isinstance(out, tuple) else (out, {}))
                    if loss.numel() != 1:
                        raise ValueError(f"the step must return a scalar loss, got shape {tuple(loss.shape)}; "
                                         "take the mean over the batch")
                    optimizer.zero_grad(set_to_none=True)
                    backward_and_step(loss, optimizer, scaler)    # fp16: inf/NaN steps skipped on the device
                    if scheduler is not None:
                        scheduler.step()
                    if after_step is not None:
                        after_step()
                pending_loss.append(loss.detach().reshape(()))
                pending_extras.append(extras)
                if len(pending_loss) == log_every:
                    read(epoch)
                    if max_seconds is not None and time.perf_counter() - started > max_seconds:
                        stopped = True
                        break
                    if checkpoint is not None and checkpoint_every_s is not None and modules and \
                            _agree(time.perf_counter() - last_save >= checkpoint_every_s):     # rank 0's clock
                        save(epoch, len(epoch_values), at_epoch_start)
            read(epoch)
            history.epoch_loss.append(sum(epoch_values) / max(len(epoch_values), 1))
            if evaluate is not None and ((epoch + 1) % eval_every == 0 or epoch + 1 == epochs or stopped):
                for name, value in evaluate().items():
                    history.log(name, epoch + 1, value)
            if checkpoint is not None and modules:
                save(epoch + 1, 0, at_epoch_start)
            if stopped:
                break
    finally:
        bar.close()
    return history


def _read_to_host(losses: list[torch.Tensor], extras: list[dict]) -> tuple[list[float], list[dict[str, float]]]:
    """The pending losses and the step extras (tensors or floats) as floats, in ONE host transfer."""
    names = [n for n, v in (extras[0] if extras else {}).items() if isinstance(v, torch.Tensor)]
    rows = [torch.stack(losses).float()]
    rows += [torch.stack([e[n].detach().float().reshape(()).to(rows[0].device) for e in extras]) for n in names]
    table = torch.stack(rows).tolist()                # (1 + names, steps): the one wait for the device
    out = [{} for _ in extras]
    for i, row in enumerate(out):
        for name, value in extras[i].items():
            row[name] = float(value) if not isinstance(value, torch.Tensor) else table[1 + names.index(name)][i]
    return table[0], out


def _agree(flag: bool) -> bool:
    """Rank 0's flag, on every process (a collective under torch.distributed; `flag` itself alone)."""
    if get_world_size() == 1:
        return bool(flag)
    box = [bool(flag)]
    torch.distributed.broadcast_object_list(box, src=0)
    return box[0]


def _all_gather_objects(obj) -> list:
    """[obj of rank 0, obj of rank 1, …] (a collective under torch.distributed; [obj] alone)."""
    if get_world_size() == 1:
        return [obj]
    out = [None] * get_world_size()
    torch.distributed.all_gather_object(out, obj)
    return out


# ---------------------------------------------------------------- random state, per process
def _device_rng_state(device: torch.device) -> torch.Tensor | None:
    if device.type == "cuda":
        return torch.cuda.get_rng_state(device)
    if device.type == "mps":
        return torch.mps.get_rng_state()
    return None


def _set_device_rng(device: torch.device, state: torch.Tensor | None, seed: int) -> None:
    """Restore the device's default generator from `state`, or seed it with `seed` when None."""
    if device.type == "cuda":
        torch.cuda.set_rng_state(state, device) if state is not None else torch.cuda.manual_seed(seed)
    elif device.type == "mps":
        torch.mps.set_rng_state(state) if state is not None else torch.mps.manual_seed(seed)


def random_state(device: torch.device | str, generators: dict[str, torch.Generator] | None = None) -> dict:
    """This process's random state: torch's CPU generator, the default generator of `device`
    (CUDA / MPS; the one this process draws from, not every visible GPU's), and `generators`
    (name → {"device": its device type, "state"}). Plain data for a checkpoint."""
    device = torch.device(device)
    return {"device": str(device), "cpu": torch.get_rng_state(), "device_rng": _device_rng_state(device),
            "generators": {name: {"device": g.device.type, "state": g.get_state()}
                           for name, g in (generators or {}).items()}}


def _derived_seed(*parts) -> int:
    """A seed made from `parts` (a checkpoint's identity and what is seeded): the same resume
    re-seeds the same way."""
    return int.from_bytes(hashlib.sha256(repr(parts).encode()).digest()[:8], "little") & (2 ** 63 - 1)


def set_random_state(saved: dict | None, device: torch.device | str,
                     generators: dict[str, torch.Generator] | None = None, *, salt: str = "") -> list[str]:
    """Restore what `random_state` saved, as far as this device allows; re-seed the rest.

    saved: one process's `random_state`, or None (no state saved for this process:
    everything is re-seeded). The CPU generator always restores. The device's
    generator restores when the state was saved on the same kind of device; a
    named generator when it lives on the same kind of device as when saved.
    Returns what was re-seeded, in words (empty when everything was restored).
    """
    device = torch.device(device)
    generators = generators or {}
    seed = lambda what: _derived_seed(salt, what)
    if saved is None:
        torch.manual_seed(seed("cpu"))
        _set_device_rng(device, None, seed("device"))
        for name, g in generators.items():
            g.manual_seed(seed(name))
        return ["all of it (the checkpoint holds none for this process)"]
    reseeded = []
    torch.set_rng_state(saved["cpu"])
    saved_type = torch.device(saved["device"]).type if saved.get("device") else None
    if device.type in ("cuda", "mps"):
        same = saved_type == device.type and saved.get("device_rng") is not None
        _set_device_rng(device, saved["device_rng"] if same else None, seed("device"))
        if not same:
            reseeded.append(f"{device.type}'s generator (saved on {saved.get('device') or 'an unknown device'})")
    elif saved_type not in (None, "cpu"):
        reseeded.append(f"nothing for {saved_type}'s generator, saved on {saved['device']}: its draws now come "
                        "from the CPU's")
    for name, g in generators.items():
        entry = saved.get("generators", {}).get(name)
        if entry is not None and entry.get("device") in (None, g.device.type):
            try:
                g.set_state(entry["state"])
                continue
            except (RuntimeError, TypeError):         # a state of another kind of generator
                pass
        g.manual_seed(seed(name))
        reseeded.append(f"generator {name!r} (saved on {entry.get('device') if entry else 'no device'}, "
                        f"here on {g.device.type})")
    return reseeded


def _saved_random(state: dict) -> list[dict]:
    """The per-process random states of a checkpoint (older checkpoints: one, read from their keys)."""
    if "random" in state:
        return state["random"]
    cuda = state.get("cuda_rng") or []
    return [{"device": "cuda:0" if cuda else "cpu", "cpu": state["torch_rng"],
             "device_rng": cuda[0] if cuda else None,
             "generators": {name: {"device": None, "state": s} for name, s in state.get("generators", {}).items()}}]


def _processes(first: int, last: int) -> str:
    return f"process {first}" if first == last else f"processes {first}–{last}"


def _restore_random(resumed: dict, which: str, device, generators) -> str:
    """Restore this process's random state `which` ("now" or "at_epoch_start") from a loaded
    checkpoint; the one line to print when something was re-seeded or left out ("" otherwise)."""
    saved = resumed["random"] if which == "now" else resumed["in_epoch"]["random_at_epoch_start"]
    rank, world = get_rank(), get_world_size()
    mine = saved[rank] if rank < len(saved) else None
    salt = f"{resumed.get('sha256', '')}/{resumed['epoch']}/{which}/rank{rank}"
    reseeded = set_random_state(mine, device, generators, salt=salt)
    notes = []
    if reseeded:
        notes.append("re-seeded " + "; ".join(reseeded))
    if world > len(saved):
        notes.append(f"{_processes(len(saved), world - 1)}: no random state saved, re-seeded")
    elif world < len(saved):
        notes.append(f"the random state of {_processes(world, len(saved) - 1)} is not used")
    if not notes:
        return ""
    where = f"{world} × {device.type}" if world > 1 else device.type
    was = sorted({torch.device(s["device"]).type for s in saved if s.get("device")}) or ["?"]
    return (f"saved by {len(saved)} process(es) on {'/'.join(was)}, resumed by {where}: " + "; ".join(notes)
            + ". The model, optimizer and schedule are restored; random draws from here on differ from an "
              "uninterrupted run's.")


# ---------------------------------------------------------------- checkpoints
CHECKPOINT_FORMAT = "contrastive-lab/checkpoint"
CHECKPOINT_FORMAT_VERSION = 1


class CheckpointMismatchError(ValueError):
    """The checkpoint belongs to another run: other modules, another architecture, or another
    experiment (`differences`: setting → (in the checkpoint, now))."""

    def __init__(self, message: str, differences: dict | None = None):
        super().__init__(message)
        self.differences = differences or {}


def _plain_experiment(experiment):
    """experiment as JSON would give it back (tuples become lists), or a clear TypeError."""
    if experiment is None:
        return None
    if not isinstance(experiment, dict):
        raise TypeError(f"experiment must be a dict of plain settings, got {type(experiment).__name__}")
    try:
        return json.loads(json.dumps(experiment, allow_nan=False))
    except (TypeError, ValueError) as exc:
        raise TypeError(f"experiment must be plain JSON data (str, numbers, bool, None, lists, dicts): {exc}") from None


def experiment_differences(saved: dict | None, current: dict | None) -> dict[str, tuple]:
    """The settings whose values differ between two experiments: {key: (saved value, current value)},
    None on a side that lacks the key; an empty dict when they agree. Both are compared as JSON
    gives them back (a tuple equals the list with the same items)."""
    saved, current = _plain_experiment(saved) or {}, _plain_experiment(current) or {}
    return {key: (saved.get(key), current.get(key)) for key in sorted(set(saved) | set(current))
            if key not in saved or key not in current or saved[key] != current[key]}


def read_checkpoint(path) -> dict:
    """The contents of a checkpoint file, verified (SHA-256, format): a dict with "epoch",
    "modules", "module_types", "experiment", "history", ... Raises integrity.CorruptFileError
    (damaged, truncated, not a checkpoint) or UnsafeFileError, each naming the file."""
    state = load_checked(path, what="checkpoint", fmt=CHECKPOINT_FORMAT,
                         fix="delete it to start the run afresh, or resume from another checkpoint")
    if state.get("format_version") != CHECKPOINT_FORMAT_VERSION or not isinstance(state.get("modules"), dict):
        raise CheckpointMismatchError(f"{os.fspath(path)} has checkpoint format_version "
                                      f"{state.get('format_version')!r}, this package reads "
                                      f"{CHECKPOINT_FORMAT_VERSION}; delete it to start afresh")
    return state


def checkpoint_experiment(path) -> dict | None:
    """The experiment recorded in a checkpoint (None when it records none). Compare it with the
    current one with `experiment_differences` before resuming."""
    return read_checkpoint(path).get("experiment")


def save_checkpoint(path, modules: dict[str, torch.nn.Module], optimizer: torch.optim.Optimizer | None,
                    epoch: int, history: History, scheduler=None,
                    generators: dict[str, torch.Generator] | None = None, *,
                    experiment: dict | None = None, scaler: torch.amp.GradScaler | None = None,
                    random: list[dict] | None = None, in_epoch: dict | None = None) -> None:
    """Write a checkpoint atomically: to a temporary file first, then renamed over `path`.

    An interrupted save never leaves a half-written checkpoint behind. The file carries
    a SHA-256 of its contents (checked on load), the class of every module, and the
    `experiment` (plain JSON data, see `fit`). `epoch`: epochs completed.
    random: every process's `random_state`, in rank order (default: this process's,
    on the current CUDA device or the CPU). in_epoch: for a save inside an epoch,
    {"steps": steps done in it, "random_at_epoch_start": every process's random
    state when the epoch began} (`fit` writes both).
    """
    if random is None:
        here = torch.device("cuda", torch.cuda.current_device()) if torch.cuda.is_available() else torch.device("cpu")
        random = [random_state(here, generators)]
    state = {
        "format": CHECKPOINT_FORMAT,
        "format_version": CHECKPOINT_FORMAT_VERSION,
        "epoch": epoch,
        "modules": {name: m.state_dict() for name, m in modules.items()},
        "module_types": {name: type(m).__name__ for name, m in modules.items()},
        "experiment": _plain_experiment(experiment),
        "optimizer": optimizer.state_dict() if optimizer is not None else None,
        "scheduler": scheduler.state_dict() if scheduler is not None else None,
        "scaler": scaler.state_dict() if scaler is not None else None,
        "random": random,
        "in_epoch": in_epoch,
        "history": history.as_dict(),
    }
    save_checked(state, path)


def _misfit(module: nn.Module, saved: dict) -> str | None:
    """Why `saved` (a state_dict) does not fit `module`, or None when it does."""
    own = module.state_dict()
    missing, extra = sorted(set(own) - set(saved)), sorted(set(saved) - set(own))
    shapes = [f"{k} {tuple(saved[k].shape)} vs {tuple(own[k].shape)}" for k in own
              if k in saved and isinstance(saved[k], torch.Tensor) and saved[k].shape != own[k].shape]
    parts = [f"missing {missing[:3]}" * bool(missing), f"unexpected {extra[:3]}" * bool(extra),
             f"other shapes: {shapes[:3]}" * bool(shapes)]
    return "; ".join(p for p in parts if p) or None


def _load_state(path, modules, optimizer, scheduler, generators, experiment, scaler) -> dict:
    """Check a checkpoint against this run, restore modules, optimizer, schedule and scaler; return
    {"epoch", "history", "random" (per process), "in_epoch", "sha256"} for the random state."""
    state = read_checkpoint(path)
    where = os.fspath(path)
    other_run = f"{where} belongs to another run"
    fix = "; resume from that run's own checkpoint, or delete this one (or choose another path) to start afresh"
    if experiment is not None:
        differences = experiment_differences(state.get("experiment"), experiment)
        if differences:
            listed = ", ".join(f"{k}: {a!r} in the checkpoint, {b!r} now" for k, (a, b) in differences.items())
            raise CheckpointMismatchError(f"{other_run}: its settings differ ({listed}){fix}", differences)
    missing = set(modules) - set(state["modules"])
    if missing:
        raise CheckpointMismatchError(f"{other_run}: it has no state for {sorted(missing)} (it holds "
                                      f"{sorted(state['modules'])}){fix}")
    types = state.get("module_types", {})
    for name, module in modules.items():
        if types.get(name, type(module).__name__) != type(module).__name__:
            raise CheckpointMismatchError(f"{other_run}: its {name!r} is a {types[name]}, this run's is a "
                                          f"{type(module).__name__}{fix}")
        problem = _misfit(module, state["modules"][name])
        if problem:
            raise CheckpointMismatchError(f"{other_run}: the weights of {name!r} do not fit this "
                                          f"{type(module).__name__} ({problem}){fix}")
    random = _saved_random(state)
    for name in generators or {}:
        if name not in random[0].get("generators", {}):
            raise CheckpointMismatchError(f"{other_run}: it has no state for generator {name!r}{fix}")
    for name, module in modules.items():
        module.load_state_dict(state["modules"][name])
    try:
        if optimizer is not None and state.get("optimizer") is not None:
            optimizer.load_state_dict(state["optimizer"])
        if scheduler is not None and state.get("scheduler") is not None:
            scheduler.load_state_dict(state["scheduler"])
        if scaler is not None and state.get("scaler") is not None:
            scaler.load_state_dict(state["scaler"])
    except (ValueError, KeyError, RuntimeError) as exc:
        raise CheckpointMismatchError(f"{other_run}: its optimizer or schedule does not fit this run's "
                                      f"({str(exc).splitlines()[0]}){fix}") from exc
    return {"epoch": state["epoch"], "history": state["history"], "random": random,
            "in_epoch": state.get("in_epoch"), "sha256": payload_sha256(state["history"])[:16]}


def load_checkpoint(path, modules: dict[str, torch.nn.Module],
                    optimizer: torch.optim.Optimizer | None = None, scheduler=None,
                    generators: dict[str, torch.Generator] | None = None, *,
                    experiment: dict | None = None, scaler: torch.amp.GradScaler | None = None,
                    device: torch.device | str | None = None) -> tuple[int, History]:
    """Load a checkpoint written by `save_checkpoint` (weights_only, SHA-256 verified).

    Restores each module, and the optimizer, schedule, gradient scaler, generators and
    this process's random state (on `device`; default the current CUDA device, else the
    CPU) when given; returns (epochs completed, history). What cannot be restored on this
    device is re-seeded (`set_random_state`); a save made inside an epoch is resumed
    where it stopped by `fit` only. A checkpoint of another run (other module names or
    classes, weights that do not fit, or, when `experiment` is given, another recorded
    experiment) raises CheckpointMismatchError before anything is restored; a damaged
    file raises integrity.CorruptFileError.
    """
    if device is None:
        device = torch.device("cuda", torch.cuda.current_device()) if torch.cuda.is_available() else "cpu"
    resumed = _load_state(path, modules, optimizer, scheduler, generators, _plain_experiment(experiment), scaler)
    note = _restore_random(resumed, "now", torch.device(device), generators or {})
    if note and is_main_process():
        print(f"loading {os.fspath(path)}: {note}", flush=True)
    return resumed["epoch"], History.from_dict(resumed["history"])
