"""Notebooks 12 and 13's builders: threshold calibration by hand, jittered copies at the asked distance, the
shipped service rebuilt (export and load back, Recall@K and MRR of edited copies)."""
import math

import pytest
import torch
import torch.nn.functional as F

from contrastive_lab.production import (jittered_copies, median_nn_distance, near_duplicates, production_settings,
                                        threshold_for_precision)
from contrastive_lab.evaluate import accepts
from contrastive_lab.profiles import FULL, QUICK


def test_threshold_for_precision_by_hand():
    scores = torch.tensor([0.9, 0.8, 0.7, 0.6, 0.5])
    match = torch.tensor([True, True, False, True, False])
    # flag top 1: P 1, top 2: P 1, top 3: P 2/3, top 4: P 3/4, top 5: P 3/5
    assert threshold_for_precision(scores, match, 1.0) == pytest.approx(0.75)    # between 0.8 and 0.7: 2 matches
    assert threshold_for_precision(scores, match, 0.75) == pytest.approx(0.55)   # keeps 0.6: 3 matches at P 3/4
    assert threshold_for_precision(scores, match, 0.5) == pytest.approx(0.55)    # flagging 0.5 too adds no match


def test_the_threshold_flags_score_at_or_above_it_as_evaluate_accepts():
    scores = torch.tensor([0.9, 0.8, 0.7, 0.6, 0.5])
    match = torch.tensor([True, True, False, True, False])
    t = threshold_for_precision(scores, match, 1.0)
    assert accepts(scores, t).tolist() == [True, True, False, False, False]
    # a new pair scoring exactly t is flagged; one a float step below is not (the verification rule too)
    at = torch.tensor(t, dtype=torch.float64)
    below = torch.nextafter(at, torch.tensor(-1.0, dtype=torch.float64))
    assert accepts(torch.stack([at, below]), t).tolist() == [True, False]


def test_threshold_is_inf_when_the_target_cannot_be_met():
    assert threshold_for_precision(torch.tensor([0.9, 0.1]), torch.tensor([False, True]), 0.9) == math.inf


def test_tied_scores_cannot_be_split():
    scores = torch.tensor([0.9, 0.9, 0.5])
    match = torch.tensor([True, False, True])
    # 0.9 and 0.9 go together (P 1/2); adding 0.5 gives P 2/3, just below the lowest score
    assert threshold_for_precision(scores, match, 0.6) == pytest.approx(0.5 - 1e-6)
    assert threshold_for_precision(scores, match, 0.7) == math.inf


def test_jittered_copies_keep_the_real_rows_and_sit_at_the_asked_distance():
    real = F.normalize(torch.randn(50, 64, generator=torch.Generator().manual_seed(0)), dim=1)
    out = jittered_copies(real, 500, torch.Generator().manual_seed(1), distance=0.02)
    assert out.shape == (500, 64)
    torch.testing.assert_close(out[:50], real)
    torch.testing.assert_close(out.norm(dim=1), torch.ones(500))
    to_source = 1 - (out[50:] * real[torch.arange(450) % 50]).sum(1)
    assert to_source.mean().item() == pytest.approx(0.02, rel=0.15)


def test_median_nn_distance_by_hand():
    z = torch.tensor([[1.0, 0.0], [math.cos(0.1), math.sin(0.1)], [-1.0, 0.0]])
    # nearest others: 0↔1 at 1 − cos 0.1 (twice), 2 → 1 at 1 − cos(π − 0.1)
    assert median_nn_distance(z) == pytest.approx(1 - math.cos(0.1), rel=1e-5)


def test_near_duplicates_are_seeded_and_keep_the_shape():
    x = torch.rand(4, 3, 32, 32)
    a = near_duplicates(x, torch.Generator().manual_seed(0))
    assert a.shape == x.shape and a.min() >= 0 and a.max() <= 1
    torch.testing.assert_close(a, near_duplicates(x, torch.Generator().manual_seed(0)))
    assert not torch.allclose(a, x)


def test_settings_for_both_profiles():
    quick, full = production_settings(QUICK), production_settings(FULL)
    assert quick.n_corpus >= 100_000 and full.n_corpus > quick.n_corpus
    assert quick.train_size >= 39 * quick.ivf_nlist           # faiss wants ≥ 39 points per k-means cell
    assert full.train_size >= 39 * full.ivf_nlist
    assert quick.n_single <= quick.n_queries and quick.n_duplicates <= quick.n_catalogue
