"""The geometry of an embedding on the unit sphere (Wang & Isola 2020): alignment and uniformity.

    alignment(z1, z2)   how close positive pairs sit (lower = closer)
    uniformity(z)       how evenly the points cover the sphere (lower = more uniform)
"""
from __future__ import annotations

import torch

from ..validate import check_matrix, check_same_shape, check_unit_norm


def alignment(z1: torch.Tensor, z2: torch.Tensor, alpha: float = 2.0) -> float:
    """Mean ‖z1_i − z2_i‖^alpha over positive pairs (lower = positives closer).

    z1, z2: (N, D), rows L2-normalized. Range [0, 2^alpha]; 0 when every pair coincides.
    """
    check_same_shape(z1, z2, "z1", "z2")
    check_unit_norm(z1, "z1")
    check_unit_norm(z2, "z2")
    return (z1 - z2).norm(dim=1).pow(alpha).mean().item()


def uniformity(z: torch.Tensor, t: float = 2.0) -> float:
    """log mean_{i<j} exp(−t ‖z_i − z_j‖²): how evenly z covers the sphere (lower = more uniform).

    z: (N, D), N ≥ 2, rows L2-normalized. 0 when every point is the same (collapse);
    about −t·2 = −4 for points spread uniformly on a high-dimensional sphere.
    """
    check_matrix(z, "z")
    check_unit_norm(z, "z")
    if z.shape[0] < 2:
        raise ValueError("uniformity needs at least 2 points")
    sq = torch.pdist(z.float(), p=2).pow(2)
    return torch.logsumexp(-t * sq, dim=0).item() - torch.log(torch.tensor(float(sq.numel()))).item()
