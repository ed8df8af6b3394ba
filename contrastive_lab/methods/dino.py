"""DINO (Caron et al. 2021): self-distillation with no labels and no negatives.

A student network learns to give, for one view of an image, the distribution
over K output dimensions that a teacher network gives for another view. The
teacher takes no gradient: it is an exponential moving average (EMA) of the
student (`momentum.ema_update`, as BYOL's target). What is special about DINO,
and all this file adds to the shared loop (`views.train_on_views`):

- a head ending in K outputs: MLP → L2-normalize → a linear layer whose rows
  are unit vectors (DINO's weight-normalised last layer), so each output is a
  cosine in [−1, 1];
- `losses.dino_loss`: the cross-entropy between the teacher's CENTRED and
  SHARPENED softmax and the student's softmax, over pairs of different views;
- the centre: an EMA of the teacher's mean output over the batch (over every
  process's batch under torchrun: `distributed.gather`, a no-op on one process),
  updated after every loss.

Two guards against collapse, pulling in opposite directions:
- centring (subtract the running mean of the teacher's logits) stops one output
  dimension from winning for every image; without it one dimension takes over
  and the entropy of the mean output falls towards 0;
- sharpening (the teacher's temperature 0.04, below the student's 0.1) stops
  the output from going flat; without it every output drifts to the uniform
  distribution and each image's entropy rises towards ln K.

    model = DINO(make_encoder(profile), out_dim=256)
    history = train_dino(model, train_x, profile)              # teacher follows by EMA
    history.metrics["entropy of the mean output"]             # per step, from the teacher
"""
from __future__ import annotations

import math

import torch
import torch.nn as nn
import torch.nn.functional as F

from ..distributed import gather
from ..losses import dino_loss
from ..models import make_encoder
from ..train import History
from .momentum import ema_update, frozen_copy
from .registry import Method, Option
from .views import train_on_views


class DINOHead(nn.Module):
    """(N, in_dim) → (N, out_dim) cosines: a 3-layer MLP to a bottleneck, L2-normalized, then
    scored against out_dim unit-length prototype rows (DINO's weight-normalised last layer
    with its norm fixed at 1).

    batch_norm: a BatchNorm after each hidden layer of the MLP (the reference code's
    `use_bn_in_head`). A small CNN's pooled features point in nearly one direction for every
    image (they are ReLU outputs); the BatchNorm centres them over the batch, so the
    teacher's outputs differ between images from the first step."""

    def __init__(self, in_dim: int, out_dim: int = 256, hidden_dim: int = 256, bottleneck_dim: int = 64,
                 batch_norm: bool = False):
        super().__init__()
        if min(in_dim, out_dim, hidden_dim, bottleneck_dim) < 1:
            raise ValueError("DINOHead sizes must be positive")
        norm = (lambda: nn.BatchNorm1d(hidden_dim)) if batch_norm else nn.Identity
        self.mlp = nn.Sequential(nn.Linear(in_dim, hidden_dim), norm(), nn.GELU(), nn.Linear(hidden_dim, hidden_dim),
                                 norm(), nn.GELU(), nn.Linear(hidden_dim, bottleneck_dim))
        self.prototypes = nn.Parameter(torch.randn(out_dim, bottleneck_dim) / math.sqrt(bottleneck_dim))
        self.out_dim = out_dim

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.normalize(self.mlp(x), dim=-1) @ F.normalize(self.prototypes, dim=-1).T


class DINONetwork(nn.Module):
    """Encoder + DINOHead: images (N, C, H, W) → logits (N, K). `encoder` is what is evaluated."""

    def __init__(self, encoder: nn.Module, head: DINOHead):
        super().__init__()
        self.encoder, self.head = encoder, head

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.encoder(x))


class DINO(nn.Module):
    """A student (encoder + head), its EMA teacher, and the centre.

    Args:
        encoder: images → (N, feature_dim) features (exposes `feature_dim`).
        out_dim: K, the number of outputs the softmax runs over (the paper: 65,536).
        hidden_dim, bottleneck_dim: the head's MLP.
        head_batch_norm: BatchNorm in the head's MLP (`DINOHead(batch_norm=...)`).
        momentum: the teacher's EMA momentum (the paper: 0.996 rising to 1 over a long run).
        center_momentum: the centre's EMA momentum (the paper: 0.9).
        student_temperature, teacher_temperature: the paper's 0.1 and 0.04; a teacher
            temperature equal to the student's removes the sharpening.
    The centre (K,) is a buffer: saved with the model, never trained.
    """

    def __init__(self, encoder: nn.Module, out_dim: int = 256, hidden_dim: int = 256, bottleneck_dim: int = 64,
                 momentum: float = 0.996, center_momentum: float = 0.9, student_temperature: float = 0.1,
                 teacher_temperature: float = 0.04, head_batch_norm: bool = False):
        super().__init__()
        for name, value in (("momentum", momentum), ("center_momentum", center_momentum)):
            if not 0.0 <= value <= 1.0:
                raise ValueError(f"{name} must be in [0, 1], got {value}")
        for name, value in (("student_temperature", student_temperature),
                            ("teacher_temperature", teacher_temperature)):
            if not value > 0:
                raise ValueError(f"{name} must be > 0, got {value}")
        self.student = DINONetwork(encoder, DINOHead(encoder.feature_dim, out_dim, hidden_dim, bottleneck_dim,
                                                              head_batch_norm))
        self.teacher = frozen_copy(self.student)
        self.register_buffer("center", torch.zeros(out_dim))
        self.momentum, self.center_momentum = momentum, center_momentum
        self.student_temperature, self.teacher_temperature = student_temperature, teacher_temperature

    @property
    def encoder(self) -> nn.Module:
        """The student's encoder."""
        return self.student.encoder

    @torch.no_grad()
    def update_center(self, teacher_logits: torch.Tensor) -> None:
        """center ← m · center + (1 − m) · mean of teacher_logits (V, N, K) over its V·N rows and
        over every process's rows (`distributed.gather`; on one process, this process's)."""
        rows = gather(teacher_logits.reshape(-1, teacher_logits.shape[-1]).float())
        self.center.mul_(self.center_momentum).add_(rows.mean(0), alpha=1 - self.center_momentum)


def forward_views(net: nn.Module, views) -> torch.Tensor:
    """net's outputs for each view, stacked: (V, N, K). Consecutive views of one size go through
    in one forward pass (so BatchNorm sees them together, as DINO groups its crops by size)."""
    outputs, start = [], 0
    while start < len(views):
        end = start + 1
        while end < len(views) and views[end].shape == views[start].shape:
            end += 1
        outputs += net(torch.cat(views[start:end])).chunk(end - start)
        start = end
    return torch.stack(outputs)


def output_entropies(teacher_logits: torch.Tensor, center: torch.Tensor, temperature: float) -> dict:
    """The two numbers that tell DINO's collapses apart, from the teacher's softmax (V, N, K) → p:

        "entropy of the mean output": H(mean over images of p) → 0 when one dimension
            takes over (no centring); ln K when every dimension is used equally often;
        "mean entropy per image": mean over images of H(p) → ln K when every output is
            uniform (no sharpening); low when each image picks a few dimensions.
    Both in nats, as 0-dim tensors (no host sync)."""
    p = F.softmax((teacher_logits.float() - center.float()) / temperature, -1).reshape(-1, center.shape[0])
    mean = p.mean(0)
    return {"entropy of the mean output": -(mean * mean.clamp_min(1e-12).log()).sum(),
            "mean entropy per image": -(p * p.clamp_min(1e-12).log()).sum(1).mean()}


def dino_views_loss(model: DINO, centering: bool = True, teacher_views: int = 2, student: nn.Module | None = None):
    """(*views) → (dino_loss, {the two entropies of the teacher's output}).

    The first `teacher_views` views (the global crops) go through the teacher
    (no gradient) and every view through the student. With centering=False the
    centre is left at zero: the collapse in which one output dimension takes over.
    student: the module that runs the student (model.student, the default; its
    DDP-wrapped copy on several processes).
    """
    student_net = student if student is not None else model.student

    def loss_fn(*views: torch.Tensor):
        if len(views) < max(2, teacher_views):
            raise ValueError(f"DINO needs at least {max(2, teacher_views)} views, got {len(views)}")
        student = forward_views(student_net, views)                            # (V_s, N, K)
        with torch.no_grad():
            teacher = forward_views(model.teacher, views[:teacher_views])      # (V_t, N, K)
        loss = dino_loss(student, teacher, model.center, model.student_temperature, model.teacher_temperature)
        extras = output_entropies(teacher, model.center, model.teacher_temperature)
        if centering:
            model.update_center(teacher)
        return loss, extras
    return loss_fn


def train_dino(model: DINO, train_x: torch.Tensor, profile, *, centering: bool = True, desc: str = "DINO",
               **kwargs) -> History:
    """Train DINO on unlabelled images (N, C, H, W); the teacher follows the student by EMA after
    every step. Keyword arguments go to `views.train_on_views` (batch_size, epochs, augment, ...).
    history.metrics holds the teacher's two output entropies at every step."""
    return train_on_views(dino_views_loss(model, centering), model, train_x, profile, desc=desc,
                          after_step=lambda: ema_update(model.teacher, model.student, model.momentum), **kwargs)


METHOD = Method(
    name="dino", title="DINO",
    options=(Option("momentum", 0.996, "m of the teacher's EMA"),
             Option("out_dim", 256, "K, the number of outputs the softmax runs over")),
    build=lambda profile, options, data: DINO(make_encoder(profile, in_channels=data.channels),
                                              out_dim=options.out_dim, momentum=options.momentum),
    trainable_part=lambda model: model.student,
    loss=lambda run: dino_views_loss(run.model, student=run.part),
    after_step=lambda model: (lambda: ema_update(model.teacher, model.student, model.momentum)),
)

