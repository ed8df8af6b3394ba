"""diagnose(): the too-sharp-logits, VICReg scale-collapse and dimensional-collapse signatures (notebook 07),
and DINO's two collapses read from the teacher's output entropies."""
import math

import pytest
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


def _dino_history(mean_output, per_image, steps=50):
    history = History(loss=[1.0] * steps)
    for step in range(steps):
        history.log("entropy of the mean output", step, mean_output)
        history.log("mean entropy per image", step, per_image)
    return history


def test_dino_collapses_are_read_from_the_teachers_output_entropies():
    top = math.log(64)                                           # K = 64 outputs: ln K ≈ 4.16
    names = lambda h: [f.name for f in diagnose(h, loss="dino", n_outputs=64)]
    assert names(_dino_history(3.5, 1.0)) == []                  # many dimensions used, each image sharp
    assert names(_dino_history(0.1 * top, 0.05 * top)) == ["one output dimension takes over"]
    assert names(_dino_history(0.99 * top, 0.97 * top)) == ["uniform output"]
    # only the end of the run counts: a run that recovers from an early takeover is healthy
    recovering = _dino_history(3.5, 1.0)
    recovering.metrics["entropy of the mean output"][:10] = [(s, 0.0) for s in range(10)]
    assert names(recovering) == []


def test_diagnosing_dino_needs_k_and_the_logged_entropies():
    with pytest.raises(ValueError, match="needs n_outputs = K"):
        diagnose(_dino_history(3.5, 1.0), loss="dino")
    with pytest.raises(ValueError, match="train_dino"):
        diagnose(History(loss=[1.0]), loss="dino", n_outputs=64)
