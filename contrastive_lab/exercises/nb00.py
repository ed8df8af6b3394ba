"""Self-checks for notebook 00 (welcome).

    check_nuisance(acc_no_clutter, acc_no_clutter_gray, verdict)  which nuisance beats raw pixels
    check_majority_baseline(accuracy, train_y, test_y) the "always guess the commonest label" accuracy
"""
from __future__ import annotations

import torch

from . import passed, self_check


def _raw_knn(n_clutter: int, gray: bool, k: int = 20) -> float:
    from ..data import make_cluttered_digits
    from ..evaluate import knn_accuracy, raw_pixel_features

    def features(x):
        return raw_pixel_features(x.mean(1, keepdim=True) if gray else x)
    tr_x, tr_y = make_cluttered_digits(5000, "train", seed=0, n_clutter=n_clutter)
    te_x, te_y = make_cluttered_digits(1000, "test", seed=0, n_clutter=n_clutter)
    return knn_accuracy(features(tr_x), tr_y, features(te_x), te_y, k)


@self_check
def check_nuisance(acc_no_clutter, acc_no_clutter_gray, verdict) -> None:
    """Exercise 1: raw-pixel 20-NN accuracy on cluttered digits made with n_clutter=0 (5,000 train,
    1,000 test, seed 0), the same on their gray versions (x.mean(1, keepdim=True)), and a
    verdict: "clutter" or "colour" — which nuisance is it that raw pixels fail on?"""
    want_plain, want_gray = _raw_knn(0, False), _raw_knn(0, True)
    for name, got, want, how in (("acc_no_clutter", acc_no_clutter, want_plain, "make_cluttered_digits(..., n_clutter=0)"),
                                 ("acc_no_clutter_gray", acc_no_clutter_gray, want_gray,
                                  "the same images averaged over the colour channels")):
        assert got is not None, f"set {name} to the accuracy you measured"
        assert abs(float(got) - want) < 1e-6, (
            f"{name}: expected {want:.3f}, got {float(got):.3f}. Use {how}, 5,000 training and 1,000 test "
            "images with seed 0, raw_pixel_features and knn_accuracy with k = 20.")
    assert verdict in ("clutter", "colour"), 'verdict must be "clutter" or "colour"'
    assert verdict == "colour", (
        f"removing the clutter left raw pixels at {want_plain:.2f}; removing the colour took them to "
        f"{want_gray:.2f}. Which of the two was in the way?")
    passed(f"without clutter raw pixels still score {want_plain:.2f}; without colour {want_gray:.2f}. Colour is "
           "the nuisance that beats raw pixels here — which is why the course's positive pairs jitter colour")


@self_check
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
