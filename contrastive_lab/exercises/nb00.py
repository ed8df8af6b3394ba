"""Self-checks for notebook 00 (welcome).

    check_smoke_profile(profile)                      the quick profile, cut to 2 epochs
    check_majority_baseline(accuracy, train_y, test_y) the "always guess the commonest label" accuracy
"""
from __future__ import annotations

import dataclasses

import torch

from . import passed


def check_smoke_profile(profile) -> None:
    """`profile` must be the quick profile with epochs=2 and every other field unchanged."""
    from ..profiles import QUICK, Profile

    assert isinstance(profile, Profile), (
        f"expected a Profile, got {type(profile).__name__}; start from get_profile('quick')")
    assert profile.name == "quick", (
        f"start from the quick profile (get_profile('quick')), not {profile.name!r}")
    assert profile.epochs == 2, (
        f"epochs should be 2, got {profile.epochs}; use profile.replace(epochs=2)")
    changed = [f.name for f in dataclasses.fields(QUICK)
               if f.name != "epochs" and getattr(profile, f.name) != getattr(QUICK, f.name)]
    assert not changed, f"only epochs should change, but {changed} differ from the quick profile"
    passed("a 2-epoch smoke-test profile; every other setting is the quick one")


def check_majority_baseline(accuracy, train_y: torch.Tensor, test_y: torch.Tensor) -> None:
    """`accuracy`: test accuracy of always predicting the most frequent TRAINING label."""
    assert accuracy is not None, "set majority_accuracy to a number"
    value = float(accuracy)
    assert 0.0 <= value <= 1.0, f"an accuracy lies in [0, 1], got {value:.3f}"
    majority = torch.bincount(train_y).argmax()
    expected = (test_y == majority).float().mean().item()
    if abs(value - 1 / len(train_y.unique())) < 1e-9 and abs(value - expected) > 1e-6:
        raise AssertionError(
            f"{value:.3f} is 1/#classes, the chance level of a uniform guess; the exercise "
            f"asks for the most frequent training label, predicted for every test image")
    assert abs(value - expected) < 1e-6, (
        f"got {value:.3f}; find the most frequent label with torch.bincount(train_y).argmax(), "
        f"then the fraction of test labels equal to it")
    passed(f"majority-class accuracy {expected:.3f}: the floor every model must beat")
