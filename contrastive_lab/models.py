"""Encoders, projection heads and `embed`.

- `SmallCNN`: four conv blocks, fast on a laptop CPU (quick profile).
- `resnet18_cifar`: torchvision's ResNet-18 with the CIFAR stem (3×3 first conv,
  no max-pool), for 32×32 images on a GPU (full profile).
- `ProjectionHead`: the MLP that SimCLR-style methods put after the encoder.
- `embed`: L2-normalized features of a whole tensor of images, without gradients.

Every encoder exposes `feature_dim`, the size of the vector it returns.
"""
from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F

from .images import as_float_images


class SmallCNN(nn.Module):
    """Conv(3×3)-BN-ReLU blocks, each followed by 2×2 max-pool, then global average pool.

    Input (N, C, H, W); output (N, widths[-1]) features, or (N, out_dim) when
    `out_dim` is given (a final linear layer).
    """

    def __init__(self, widths=(16, 32, 64, 128), in_channels: int = 3, out_dim: int | None = None):
        super().__init__()
        layers, c = [], in_channels
        for w in widths:
            layers += [nn.Conv2d(c, w, 3, padding=1, bias=False), nn.BatchNorm2d(w),
                       nn.ReLU(inplace=True), nn.MaxPool2d(2)]
            c = w
        self.features = nn.Sequential(*layers)
        self.fc = nn.Linear(c, out_dim) if out_dim else nn.Identity()
        self.feature_dim = out_dim or c

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(self.features(x).mean((2, 3)))


def resnet18_cifar(out_dim: int | None = None) -> nn.Module:
    """ResNet-18 with the CIFAR stem: 3×3 stride-1 first conv and no max-pool.

    Input (N, 3, 32, 32); output (N, 512) features, or (N, out_dim).
    """
    from torchvision.models import resnet18

    net = resnet18(weights=None)
    net.conv1 = nn.Conv2d(3, 64, 3, stride=1, padding=1, bias=False)
    net.maxpool = nn.Identity()
    net.fc = nn.Linear(512, out_dim) if out_dim else nn.Identity()
    net.feature_dim = out_dim or 512
    return net


class ProjectionHead(nn.Module):
    """Linear → BatchNorm → ReLU → Linear. (N, in_dim) → (N, out_dim)."""

    def __init__(self, in_dim: int, hidden_dim: int = 256, out_dim: int = 64):
        super().__init__()
        self.net = nn.Sequential(nn.Linear(in_dim, hidden_dim), nn.BatchNorm1d(hidden_dim),
                                 nn.ReLU(inplace=True), nn.Linear(hidden_dim, out_dim))
        self.out_dim = out_dim

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)


def make_encoder(profile, out_dim: int | None = None, in_channels: int = 3) -> nn.Module:
    """The encoder a profile asks for ("small_cnn" or "resnet18")."""
    if profile.backbone == "small_cnn":
        return SmallCNN(profile.cnn_widths, in_channels=in_channels, out_dim=out_dim)
    if profile.backbone == "resnet18":
        if in_channels != 3:
            raise ValueError("resnet18_cifar expects 3-channel images")
        return resnet18_cifar(out_dim)
    raise ValueError(f"unknown backbone {profile.backbone!r}; use 'small_cnn' or 'resnet18'")


def prepare_model(model: nn.Module, device, channels_last: bool = False) -> nn.Module:
    """Move a model to `device`; with `channels_last`, in that memory format, inputs included.

    channels_last (N, H, W, C in memory) makes convolutions faster on GPUs and on
    most CPUs. This is the one place the course applies it: the weights are
    converted here, and every Conv2d converts its input on the way in when it is
    not channels_last yet (only the first one of a network ever has to), so no
    training step has to remember it. Returns the model (moved in place).
    """
    model = model.to(device)
    if channels_last:
        model = model.to(memory_format=torch.channels_last)
        for module in model.modules():
            if isinstance(module, nn.Conv2d) and not getattr(module, "_clab_channels_last", False):
                module.register_forward_pre_hook(_channels_last_input)
                module._clab_channels_last = True
    return model


def _channels_last_input(module: nn.Module, args: tuple):
    x = args[0]
    if x.ndim == 4 and not x.is_contiguous(memory_format=torch.channels_last):
        return (x.contiguous(memory_format=torch.channels_last),) + args[1:]
    return None


@torch.no_grad()
def embed(model: nn.Module, x: torch.Tensor, batch_size: int = 512, normalize: bool = True,
          device=None) -> torch.Tensor:
    """Features of every image in `x`, computed in eval mode without gradients.

    x: (N, C, H, W) on any device, float in [0, 1] or uint8. Returns (N, D) on the CPU, L2-normalized
    (unit length rows) unless normalize=False. The model's train/eval mode is
    restored afterwards.
    """
    if device is None:
        device = next(model.parameters()).device
    was_training = model.training
    model.eval()
    try:
        chunks = []
        for start in range(0, len(x), batch_size):
            z = model(as_float_images(x[start:start + batch_size].to(device))).float()
            chunks.append(F.normalize(z, dim=1) if normalize else z)
        return torch.cat(chunks).cpu()
    finally:
        model.train(was_training)
