"""Self-checks for notebook 04 — positive pairs."""
from __future__ import annotations

import torch

from . import passed


def _reference_false_negative_fraction(labels: torch.Tensor) -> float:
    same = labels[:, None] == labels[None, :]
    n = len(labels)
    return (same.sum().item() - n) / (n * (n - 1))


def check_false_negative_fraction(false_negative_fraction) -> None:
    """Exercise 1: false_negative_fraction(labels (N,)) → the fraction of ordered pairs
    (i, j), i ≠ j, in a batch whose labels agree — negatives that are really positives."""
    cases = [torch.tensor([0, 0, 1, 1]), torch.tensor([3, 3, 3]), torch.tensor([0, 1, 2, 3, 4]),
             torch.randint(10, (128,), generator=torch.Generator().manual_seed(4))]
    for labels in cases:
        got = float(false_negative_fraction(labels))
        want = _reference_false_negative_fraction(labels)
        assert abs(got - want) < 1e-6, (
            f"for labels {labels.tolist()[:8]}{'…' if len(labels) > 8 else ''} expected {want:.4f}, got {got:.4f}. "
            "Count ordered pairs (i, j) with i ≠ j and labels[i] == labels[j], and divide by N·(N − 1) "
            "(leave out the diagonal: an image is not its own negative).")
    passed("false-negative fraction right: with 10 balanced classes about 1 in 10 in-batch "
           "negatives shares the anchor's class.")


def check_homophily(homophily, src: torch.Tensor, dst: torch.Tensor, labels: torch.Tensor) -> None:
    """Exercise 2: homophily(src (E,), dst (E,), labels (N,)) → fraction of links joining
    two items of the same class."""
    small = homophily(torch.tensor([0, 1, 2, 3]), torch.tensor([1, 0, 3, 0]), torch.tensor([5, 5, 7, 8]))
    assert abs(float(small) - 0.5) < 1e-6, (
        f"on links 0→1, 1→0, 2→3, 3→0 with labels [5, 5, 7, 8] two of four links join equal labels: "
        f"expected 0.5, got {float(small):.4f}. Compare labels[src] with labels[dst].")
    got = float(homophily(src, dst, labels))
    want = (labels[src] == labels[dst]).float().mean().item()
    assert abs(got - want) < 1e-6, f"on the notebook's graph expected {want:.4f}, got {got:.4f}"
    passed(f"homophily {want:.2f}: that fraction of the graph's positives are really same-class.")


_SAFE_FOR_DIGITS = {
    "horizontal_flip": (False, "a mirrored 2, 3, 4, 5, 7 or 9 is not that digit (nor any digit)"),
    "rotate_15_degrees": (True, "a slightly tilted digit is still the same digit"),
    "rotate_180_degrees": (False, "upside down a 6 reads as a 9 (and a 9 as a 6)"),
    "colour_jitter": (True, "the class of a digit does not depend on its colour"),
    "crop_5_percent_area": (False, "a crop of 5 % of the canvas often shows clutter and no digit at all"),
    "gaussian_blur": (True, "mild blur keeps the shape readable"),
}


def check_safe_augmentations(answer: dict) -> None:
    """Exercise 3: answer maps each augmentation name to True (keeps a digit's label) or False."""
    missing = set(_SAFE_FOR_DIGITS) - set(answer)
    assert not missing, f"answer every augmentation; missing {sorted(missing)}"
    for name, (safe, why) in _SAFE_FOR_DIGITS.items():
        assert bool(answer[name]) == safe, (
            f"{name}: think again. Hint: does the augmented image still show the same digit? "
            f"Try it on a few images with contrastive_lab.augment and look.")
    passed("all six right. A positive pair is a claim that two inputs share a meaning; "
           "an augmentation that changes the meaning teaches the model a falsehood.")
