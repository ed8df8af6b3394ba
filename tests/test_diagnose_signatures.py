"""diagnose(): the too-sharp-logits and VICReg scale-collapse signatures (notebook 07)."""
import math

import torch

from contrastive_lab.diagnose import diagnose, std_ratio
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
