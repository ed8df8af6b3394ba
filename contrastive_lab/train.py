"""One fit loop for every method. The method supplies its step.

    def step(batch) -> loss tensor  (or (loss, {"name": value}))
    history = fit(step, params, batches, epochs=..., lr=...)

`batches` is a function epoch → iterable of batches (whatever `step` takes).
The loop owns what every method shares: the optimizer, tqdm progress bars,
bf16 autocast on CUDA, periodic evaluation, a history of losses and metrics,
and checkpoints that can be resumed. Methods (SimCLR, MoCo, …) stay small
files that say only what is special about them.
"""
from __future__ import annotations

import contextlib
import math
import os
import tempfile
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

import torch
from tqdm.auto import tqdm


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


def fit(
    step: Callable,
    params: Iterable[torch.nn.Parameter] | torch.optim.Optimizer,
    batches: Callable[[int], Iterable],
    epochs: int,
    *,
    lr: float = 1e-3,
    weight_decay: float = 0.0,
    device: torch.device | str = "cpu",
    amp: bool = True,
    evaluate: Callable[[], dict[str, float]] | None = None,
    eval_every: int = 1,
    after_step: Callable[[], None] | None = None,
    checkpoint: str | os.PathLike | None = None,
    modules: dict[str, torch.nn.Module] | None = None,
    history: History | None = None,
    progress: bool = True,
    desc: str = "train",
) -> History:
    """Train for `epochs` epochs and return the History.

    Args:
        step: batch → loss (scalar tensor), or (loss, dict of floats to log).
        params: parameters to optimize (Adam) or a ready optimizer.
        batches: epoch → iterable of batches for that epoch.
        epochs: total epochs (a resumed run continues up to this number).
        lr, weight_decay: for the Adam optimizer built from `params`.
        device, amp: bf16 autocast is used when amp is on and device is CUDA.
        evaluate: () → {metric: value}, run every `eval_every` epochs and after
            the last one; the model is whatever `step` closes over.
        after_step: called after every optimizer step (e.g. a momentum update).
        checkpoint: a file path; saved after every epoch (atomically) and, when it
            exists, resumed from. Needs `modules` (name → module) to save.
        history: continue an existing History.
        progress: show tqdm bars (one per epoch, with the running loss).

    Raises FloatingPointError, naming the step, when the loss becomes NaN/Inf;
    the run so far is attached as `error.history` (the bad loss last).
    """
    optimizer = params if isinstance(params, torch.optim.Optimizer) else \
        torch.optim.Adam(list(params), lr=lr, weight_decay=weight_decay)
    history = history or History()
    start_epoch = 0
    if checkpoint is not None and os.path.exists(checkpoint):
        if not modules:
            raise ValueError("resuming a checkpoint needs `modules` (name → nn.Module)")
        start_epoch, history = load_checkpoint(checkpoint, modules, optimizer)
    for epoch in range(start_epoch, epochs):
        total, count = 0.0, 0
        bar = tqdm(batches(epoch), desc=f"{desc} {epoch + 1}/{epochs}", leave=False,
                   disable=not progress)
        for batch in bar:
            with autocast_context(device, amp):
                out = step(batch)
            loss, extras = (out if isinstance(out, tuple) else (out, {}))
            value = loss.item()
            if not math.isfinite(value):
                history.loss.append(value)
                error = FloatingPointError(
                    f"loss became {value} at epoch {epoch + 1}, step {count + 1}; "
                    "lower the learning rate or raise the temperature")
                error.history = history          # for diagnose.diagnose(error.history)
                raise error
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            if after_step is not None:
                after_step()
            history.loss.append(value)
            for name, v in extras.items():
                history.log(name, epoch + 1, v)
            total, count = total + value, count + 1
            bar.set_postfix(loss=f"{value:.3f}")
        history.epoch_loss.append(total / max(count, 1))
        if evaluate is not None and ((epoch + 1) % eval_every == 0 or epoch + 1 == epochs):
            for name, value in evaluate().items():
                history.log(name, epoch + 1, value)
        if checkpoint is not None and modules:
            save_checkpoint(checkpoint, modules, optimizer, epoch + 1, history)
    return history


def save_checkpoint(path, modules: dict[str, torch.nn.Module], optimizer: torch.optim.Optimizer | None,
                    epoch: int, history: History) -> None:
    """Write a checkpoint atomically: to a temporary file first, then renamed over `path`.

    An interrupted save never leaves a half-written checkpoint behind.
    """
    path = os.fspath(path)
    state = {
        "epoch": epoch,
        "modules": {name: m.state_dict() for name, m in modules.items()},
        "optimizer": optimizer.state_dict() if optimizer is not None else None,
        "history": history.as_dict(),
    }
    folder = os.path.dirname(os.path.abspath(path))
    os.makedirs(folder, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=folder, prefix=".tmp-", suffix=".pt")
    os.close(fd)
    try:
        torch.save(state, tmp)
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.remove(tmp)
        raise


def load_checkpoint(path, modules: dict[str, torch.nn.Module],
                    optimizer: torch.optim.Optimizer | None = None) -> tuple[int, History]:
    """Load a checkpoint written by `save_checkpoint` (with weights_only=True).

    Restores each module (and the optimizer when given); returns (epoch, history).
    """
    state = torch.load(path, map_location="cpu", weights_only=True)
    missing = set(modules) - set(state["modules"])
    if missing:
        raise KeyError(f"checkpoint {path} has no state for {sorted(missing)}")
    for name, module in modules.items():
        module.load_state_dict(state["modules"][name])
    if optimizer is not None and state["optimizer"] is not None:
        optimizer.load_state_dict(state["optimizer"])
    return state["epoch"], History.from_dict(state["history"])
