"""Self-checks for notebook 04 — positive pairs."""
from __future__ import annotations

import torch

from . import passed, self_check


def _reference_false_negative_fraction(labels: torch.Tensor) -> float:
    same = labels[:, None] == labels[None, :]
    n = len(labels)
    return (same.sum().item() - n) / (n * (n - 1))


@self_check
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


@self_check
def check_expected_homophily(expected_homophily, measured: float) -> None:
    """Exercise 2: expected_homophily(p_same, n_classes) → the fraction of links that join two
    items of the same class, for the generator of the notebook: with probability p_same a link
    goes to a random item of the same class, otherwise to any item (n_classes balanced classes,
    so a random item shares the class with probability 1 / n_classes)."""
    for p_same, n_classes in ((0.8, 10), (0.0, 10), (1.0, 10), (0.5, 4), (0.1, 10)):
        want = p_same + (1 - p_same) / n_classes
        got = float(expected_homophily(p_same, n_classes))
        assert abs(got - want) < 1e-9, (
            f"for p_same = {p_same}, {n_classes} classes expected {want:.4f}, got {got:.4f}. Two kinds of "
            "link: a same-class one (probability p_same, always same class) and a random one "
            "(probability 1 − p_same, same class by luck with probability 1 / n_classes).")
    want = 0.8 + 0.2 / 10
    assert abs(measured - want) < 0.03, (
        f"the graph of the notebook measures {measured:.3f}, far from your formula's {want:.3f}: "
        "is `measured` the homophily of the notebook's graph?")
    passed(f"expected {want:.3f}, measured {measured:.3f}. At p_same = 0 it is 1 / 10 = 0.10, exactly what "
           "links drawn at random give: such a graph carries no class information at all.")


_SAFE_FOR_DIGITS = {
    "horizontal_flip": (False, "a mirrored 2, 3, 4, 5, 7 or 9 is not that digit (nor any digit)"),
    "rotate_15_degrees": (True, "a slightly tilted digit is still the same digit"),
    "rotate_180_degrees": (False, "upside down a 6 reads as a 9 (and a 9 as a 6)"),
    "colour_jitter": (True, "the class of a digit does not depend on its colour"),
    "crop_5_percent_area": (False, "a crop of 5 % of the canvas often shows clutter and no digit at all"),
    "gaussian_blur": (True, "mild blur keeps the shape readable"),
}


@self_check
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
