"""diagnose(): the too-sharp-logits, VICReg scale-collapse and dimensional-collapse signatures (notebook 07)."""
import math

import torch

from contrastive_lab.diagnose import diagnose, effective_rank, std_ratio
from contrastive_lab.train import History


def test_first_loss_far_above_chance_names_a_too_low_temperature():
    chance = math.log(2 * 64 - 1)                           # ≈ 4.84 for N = 64
    sharp = History(loss=[3.2 * chance] + [4.0] * 30)       # starts at 3.2 × chance, then learns
    assert [f.name for f in diagnose(sharp, loss="nt_xent", batch_size=64)] == ["temperature too low"]
    usual = History(loss=[1.1 * chance] + [4.0] * 30)        # a usual start: no finding
    assert diagnose(usual, loss="nt_xent", batch_size=64) == []
    # without the loss kind there is no chance level to compare with
    assert diagnose(sharp) == []


def test_vicreg_projections_shrinking_onto_one_vector_are_collapse():
    g = torch.Generator().manual_seed(0)
    offset = torch.randn(32, generator=g)                   # |offset| ≈ 5.7
    z = 0.1 * (offset + 0.3 * torch.randn(400, 32, generator=g))   # raw std 0.03 ≪ γ = 1 ...
    assert std_ratio(z) > 0.25                              # ... but the scale-free meter sees a cone
    assert diagnose(embeddings=z) == []                      # so without loss="vicreg" it is missed
    assert [f.name for f in diagnose(embeddings=z, loss="vicreg")] == ["complete collapse"]
    healthy = torch.randn(400, 32, generator=g) * 1.2        # std ≥ γ: what the variance term holds
    assert diagnose(embeddings=healthy, loss="vicreg") == []


def _subspace(k, d=64, n=1000, seed=0):
    """n points spread over a random k-dimensional subspace of R^d."""
    g = torch.Generator().manual_seed(seed)
    basis = torch.linalg.qr(torch.randn(d, k, generator=g))[0].T          # (k, d), orthonormal rows
    return torch.randn(n, k, generator=g) @ basis + 1e-3 * torch.randn(n, d, generator=g)


def test_dimensional_collapse_is_named_below_fifteen_percent_of_the_dimensions():
    # VICReg without its covariance term used about 10 % of 64 dimensions in notebook 07;
    # healthy projections there used 20-50 %.
    assert 5 < effective_rank(_subspace(6)) < 0.15 * 64
    assert [f.name for f in diagnose(embeddings=_subspace(6))] == ["dimensional collapse"]
    assert effective_rank(_subspace(16)) > 0.15 * 64
    assert diagnose(embeddings=_subspace(16)) == []
