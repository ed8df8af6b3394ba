"""One fit loop for every method. The method supplies its step.

    def step(batch) -> loss tensor  (or (loss, {"name": tensor}))
    history = fit(step, params, batches, epochs=..., lr=...)

`batches` is a function epoch → iterable of batches (whatever `step` takes).
The loop owns what every method shares: the optimizer and its learning-rate
schedule, a progress line, bf16 autocast on CUDA, periodic evaluation, a
history of losses and metrics, and checkpoints that resume a run exactly.

**No host synchronisation inside a step.** On a GPU, reading a tensor's value
on the host (`.item()`, `float(t)`, `if t: …`) makes the host wait for the
device. The loop keeps each step's loss on the device and reads them all at
once every `log_every` steps (and at the end of each epoch); the NaN guard, the
progress line and the history are updated at those reads. Input checks that
read values (`validate.value_checks`) are switched off inside the step; shape
checks stay. The optimizers are the fused kernels, which keep their step
counters on the device too.

**Several processes (torchrun).** Under torch.distributed every process runs
this loop on its own shard of the data; only rank 0 shows the progress line
and writes the checkpoint, and every process resumes from it.
"""
from __future__ import annotations

import contextlib
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
from .device import is_main_process
from .integrity import load_checked, save_checked
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
    """bf16 autocast on CUDA when enabled; a no-op context elsewhere."""
    device = torch.device(device)
    if enabled and device.type == "cuda" and torch.cuda.is_bf16_supported():
        return torch.autocast("cuda", dtype=torch.bfloat16)
    return contextlib.nullcontext()


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
    compiling again; the state_dict does not change. If compilation fails (no
    compiler, an unsupported op), one line says so and the child runs eagerly.
    Returns `model`.
    """
    if not enabled:
        return model
    for child in model.children():
        if child._compiled_call_impl is None and any(True for _ in child.parameters()):
            _compile_in_place(child)
    return model


def _compile_in_place(module: nn.Module) -> None:
    compiled = torch.compile(module._call_impl)

    def guarded(*args, **kwargs):
        try:
            return compiled(*args, **kwargs)
        except Exception as exc:               # fall back to eager, once, and say so
            module._compiled_call_impl = None
            reason = str(exc).strip().splitlines()[0][:160] if str(exc).strip() else type(exc).__name__
            print(f"torch.compile failed for {type(module).__name__} ({reason}); running it eagerly")
            return module._call_impl(*args, **kwargs)

    module._compiled_call_impl = guarded


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
        device, amp: bf16 autocast is used when amp is on and device is CUDA.
        evaluate: () → {metric: value}, run every `eval_every` epochs and after
            the last one; the model is whatever `step` closes over.
        after_step: called after every optimizer step (e.g. a momentum update).
        checkpoint: a file path; saved after every epoch (atomically) and, when it
            exists, resumed from. It holds `modules` (name → module, required),
            the optimizer, the schedule, `generators` (name → torch.Generator, on
            any device), torch's global random state, the epoch and the history,
            so a resumed run repeats the uninterrupted one exactly (on CPU).
            Under torch.distributed only rank 0 writes it; every rank reads it.
            A bad path (a folder, a path under a file) fails before the first epoch;
            abandoned temporary files of killed saves in its folder are removed.
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
    optimizer = params if isinstance(params, torch.optim.Optimizer) else \
        make_optimizer(params, optimizer, lr, weight_decay)
    total_steps = steps_per_epoch * epochs if steps_per_epoch else None
    if schedule != "constant" and total_steps is None:
        raise ValueError(f"schedule={schedule!r} needs steps_per_epoch (the run's length)")
    scheduler = make_schedule(optimizer, total_steps or 1, warmup_steps, schedule) \
        if schedule != "constant" or warmup_steps else None
    history = history or History()
    generators = generators or {}
    experiment = _plain_experiment(experiment)
    start_epoch = 0
    if checkpoint is not None:
        check_writable(checkpoint, "checkpoint")
        remove_stale_temp_files(Path(checkpoint).parent)
    if checkpoint is not None and os.path.exists(checkpoint):
        if not modules:
            raise ValueError("resuming a checkpoint needs `modules` (name → nn.Module)")
        start_epoch, history = load_checkpoint(checkpoint, modules, optimizer, scheduler, generators,
                                               experiment=experiment)
    bar = Progress(desc, total_steps, progress and start_epoch < epochs and is_main_process())
    done = len(history.loss)
    started = time.perf_counter()
    pending_loss: list[torch.Tensor] = []
    pending_extras: list[dict] = []
    epoch_values: list[float] = []

    def read(epoch: int) -> None:
        """Bring the pending losses to the host in one transfer; guard; log."""
        nonlocal done
        if not pending_loss:
            return
        values = torch.stack(pending_loss).float().tolist()
        extras = _read_extras(pending_extras)
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

    try:
        for epoch in range(start_epoch, epochs):
            epoch_values = []
            stopped = False
            for batch in batches(epoch):
                with value_checks(False), autocast_context(device, amp):
                    out = step(batch)
                loss, extras = (out if isinstance(out, tuple) else (out, {}))
                if loss.numel() != 1:
                    raise ValueError(f"the step must return a scalar loss, got shape {tuple(loss.shape)}; "
                                     "take the mean over the batch")
                optimizer.zero_grad(set_to_none=True)
                loss.backward()
                optimizer.step()
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
            read(epoch)
            history.epoch_loss.append(sum(epoch_values) / max(len(epoch_values), 1))
            if evaluate is not None and ((epoch + 1) % eval_every == 0 or epoch + 1 == epochs or stopped):
                for name, value in evaluate().items():
                    history.log(name, epoch + 1, value)
            if checkpoint is not None and modules and is_main_process():
                save_checkpoint(checkpoint, modules, optimizer, epoch + 1, history, scheduler, generators,
                                experiment=experiment)
            if stopped:
                break
    finally:
        bar.close()
    return history


def _read_extras(pending: list[dict]) -> list[dict[str, float]]:
    """Step extras (tensors or floats) → floats, with one host transfer per name."""
    if not pending or not pending[0]:
        return [{} for _ in pending]
    out = [{} for _ in pending]
    for name in pending[0]:
        column = [e[name] for e in pending]
        if isinstance(column[0], torch.Tensor):
            column = torch.stack([c.detach().float().reshape(()) for c in column]).tolist()
        for row, value in zip(out, column):
            row[name] = float(value)
    return out


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
                    experiment: dict | None = None) -> None:
    """Write a checkpoint atomically: to a temporary file first, then renamed over `path`.

    An interrupted save never leaves a half-written checkpoint behind. The file carries
    a SHA-256 of its contents (checked on load), the class of every module, and the
    `experiment` (plain JSON data, see `fit`).
    """
    state = {
        "format": CHECKPOINT_FORMAT,
        "format_version": CHECKPOINT_FORMAT_VERSION,
        "epoch": epoch,
        "modules": {name: m.state_dict() for name, m in modules.items()},
        "module_types": {name: type(m).__name__ for name, m in modules.items()},
        "experiment": _plain_experiment(experiment),
        "optimizer": optimizer.state_dict() if optimizer is not None else None,
        "scheduler": scheduler.state_dict() if scheduler is not None else None,
        "generators": {name: g.get_state() for name, g in (generators or {}).items()},
        "torch_rng": torch.get_rng_state(),
        "cuda_rng": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else [],
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


def load_checkpoint(path, modules: dict[str, torch.nn.Module],
                    optimizer: torch.optim.Optimizer | None = None, scheduler=None,
                    generators: dict[str, torch.Generator] | None = None, *,
                    experiment: dict | None = None) -> tuple[int, History]:
    """Load a checkpoint written by `save_checkpoint` (weights_only, SHA-256 verified).

    Restores each module, and the optimizer, schedule, generators and torch's
    random state when given; returns (epoch, history). A checkpoint of another run
    (other module names or classes, weights that do not fit, or, when `experiment`
    is given, another recorded experiment) raises CheckpointMismatchError before
    anything is restored; a damaged file raises integrity.CorruptFileError.
    """
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
    for name, g in (generators or {}).items():
        if name not in state.get("generators", {}):
            raise CheckpointMismatchError(f"{other_run}: it has no state for generator {name!r}{fix}")
    for name, module in modules.items():
        module.load_state_dict(state["modules"][name])
    try:
        if optimizer is not None and state.get("optimizer") is not None:
            optimizer.load_state_dict(state["optimizer"])
        if scheduler is not None and state.get("scheduler") is not None:
            scheduler.load_state_dict(state["scheduler"])
    except (ValueError, KeyError, RuntimeError) as exc:
        raise CheckpointMismatchError(f"{other_run}: its optimizer or schedule does not fit this run's "
                                      f"({str(exc).splitlines()[0]}){fix}") from exc
    for name, g in (generators or {}).items():
        g.set_state(state["generators"][name])
    if "torch_rng" in state:
        torch.set_rng_state(state["torch_rng"])
    if state.get("cuda_rng") and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda_rng"])
    return state["epoch"], History.from_dict(state["history"])
