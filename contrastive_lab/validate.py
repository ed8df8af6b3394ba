"""Input checks shared by losses, miners and metrics.

Each raises an error that names the problem and the fix, so a learner sees
"expected z1 and z2 of the same shape (N, D), got (8, 128) and (8, 64)" at the
call instead of a NaN a thousand steps later.

Two kinds of check:
- **shape checks** look only at `.shape`, `.ndim`, `.dtype`: free, always on;
- **value checks** read tensor values (NaN/Inf, unit norm, a tensor
  temperature). On a GPU each one makes the device wait for the host, so a
  training step must not do them. `fit` turns them off for its steps:

    >>> with value_checks(False):      # what fit does around every step
    ...     loss = nt_xent(z1, z2)      # shapes still checked, values not read

A learner who calls a loss directly keeps every check.
"""
from __future__ import annotations

import contextlib
import math
import numbers
import threading

import torch

_state = threading.local()
FLOAT32_MAX = float(torch.finfo(torch.float32).max)       # ≈ 3.4e38: losses compute in float32


def value_checks_enabled() -> bool:
    """True unless inside `value_checks(False)`."""
    return getattr(_state, "enabled", True)


@contextlib.contextmanager
def value_checks(enabled: bool):
    """Turn the checks that read tensor values on or off inside a `with` block."""
    before = value_checks_enabled()
    _state.enabled = bool(enabled)
    try:
        yield
    finally:
        _state.enabled = before


def check_matrix(x: torch.Tensor, name: str) -> None:
    """x must be a non-empty (N, D) tensor; finite too, when value checks are on."""
    if not isinstance(x, torch.Tensor):
        raise TypeError(f"{name} must be a torch.Tensor, got {type(x).__name__}")
    if x.ndim != 2:
        raise ValueError(f"expected {name} of shape (N, D), got {tuple(x.shape)}")
    if x.shape[0] == 0 or x.shape[1] == 0:
        raise ValueError(f"{name} is empty (shape {tuple(x.shape)}); need at least one row and column")
    if value_checks_enabled() and not torch.isfinite(x).all():
        raise ValueError(f"{name} contains NaN or Inf; check the model output and learning rate")


def check_same_shape(a: torch.Tensor, b: torch.Tensor, name_a: str, name_b: str) -> None:
    check_matrix(a, name_a)
    check_matrix(b, name_b)
    if a.shape != b.shape:
        raise ValueError(f"expected {name_a} and {name_b} of the same shape (N, D), "
                         f"got {tuple(a.shape)} and {tuple(b.shape)}")


def check_labels(labels: torch.Tensor, n: int, name: str = "labels") -> None:
    if not isinstance(labels, torch.Tensor) or labels.ndim != 1 or labels.shape[0] != n:
        shape = tuple(labels.shape) if isinstance(labels, torch.Tensor) else type(labels).__name__
        raise ValueError(f"expected {name} of shape ({n},), got {shape}")


def check_class_labels(labels: torch.Tensor, n: int, name: str = "labels") -> None:
    """labels (n,) integer class ids (any integer dtype, or bool), each >= 0.

    The dtype is a shape check (always on); the sign is a value check."""
    check_labels(labels, n, name)
    if labels.dtype.is_floating_point or labels.dtype.is_complex:
        raise ValueError(f"{name} must be integer class ids, got dtype {labels.dtype}; "
                         f"convert whole-number labels with {name}.long()")
    if value_checks_enabled() and n > 0 and labels.dtype != torch.bool and int(labels.min()) < 0:
        raise ValueError(f"{name} must be class ids >= 0, got {int(labels.min())}; leave out the "
                         f"unlabelled samples first (keep = {name} >= 0)")


def check_embedding_set(emb: torch.Tensor, labels: torch.Tensor, name: str, *, classes: bool = False) -> None:
    """emb (N, D) and its labels (N,), named `{name}_emb` and `{name}_labels` in errors.

    classes=True: the labels must be class ids >= 0 (as `check_class_labels`)."""
    check_matrix(emb, f"{name}_emb")
    (check_class_labels if classes else check_labels)(labels, emb.shape[0], f"{name}_labels")


def check_same_dim(a: torch.Tensor, b: torch.Tensor, name_a: str, name_b: str) -> None:
    """Two sets of embeddings (N, D) and (M, D) must share D: one model embedded both."""
    if a.shape[1] != b.shape[1]:
        raise ValueError(f"{name_a} and {name_b} embeddings differ in dimension: {a.shape[1]} vs {b.shape[1]}; "
                         "embed both with the same model")


def _number(value, name: str) -> float:
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise TypeError(f"{name} must be a number, got {value!r} ({type(value).__name__})")
    return float(value)


def check_positive(value, name: str) -> None:
    """value > 0, finite, and a finite float32 (≤ 3.4e38). A tensor value is read only when
    value checks are on."""
    if isinstance(value, torch.Tensor):
        if value.numel() != 1:
            raise ValueError(f"{name} must be a single number, got shape {tuple(value.shape)}")
        if not value_checks_enabled():
            return
        value = float(value.detach())
    value = _number(value, name)
    if not (math.isfinite(value) and value > 0):
        raise ValueError(f"{name} must be > 0 and finite, got {value}")
    if value > FLOAT32_MAX:
        raise ValueError(f"{name} = {value:g} does not fit in float32 (largest {FLOAT32_MAX:.3g}), "
                         "in which the loss is computed; use a smaller value")


def check_temperature(value, name: str = "temperature") -> None:
    """A temperature τ: `check_positive`, and 1/τ must fit in float32 too (the logits are cos / τ;
    τ = 1e-45 passes "> 0" but its logits overflow to inf and the loss is NaN)."""
    check_positive(value, name)
    if isinstance(value, torch.Tensor):
        if not value_checks_enabled():
            return
        value = float(value.detach())
    if 1.0 / float(value) > FLOAT32_MAX:
        raise ValueError(f"{name} = {value:g} is too small: cos / {name} overflows float32 (largest "
                         f"{FLOAT32_MAX:.3g}); use a {name} of at least 1e-38 (0.05 to 0.5 in practice)")


def check_non_negative(value: float, name: str) -> None:
    if isinstance(value, torch.Tensor) and value.numel() == 1:
        if not value_checks_enabled():
            return
        value = float(value.detach())
    value = _number(value, name)
    if not (math.isfinite(value) and value >= 0):
        raise ValueError(f"{name} must be >= 0, got {value}")


def check_unit_norm(x: torch.Tensor, name: str, atol: float = 1e-3) -> None:
    """Rows of x must have length 1 (call F.normalize(x, dim=1) first). A value check."""
    if not value_checks_enabled():
        return
    norms = x.float().norm(dim=1)
    worst = (norms - 1).abs().max().item()
    if worst > atol:
        raise ValueError(f"{name} must be L2-normalized (rows of length 1); a row has length "
                         f"{norms[(norms - 1).abs().argmax()].item():.3f}. "
                         f"Use torch.nn.functional.normalize({name}, dim=1)")
