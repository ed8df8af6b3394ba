"""Self-checks for notebook 04 — positive pairs."""
from __future__ import annotations

import torch

from . import passed, self_check


def _expected_false_negative_fraction(n_images: int, n_classes: int) -> float:
    return (n_images / n_classes - 1) / (n_images - 1)


@self_check
def check_expected_false_negatives(expected_false_negative_fraction, measured: float, n_images: int,
                                   n_classes: int) -> None:
    """Exercise 1: expected_false_negative_fraction(n_images, n_classes) → the expected fraction of an
    anchor's in-batch negatives that share its class, for batches drawn without replacement from
    n_images images in n_classes balanced classes. `measured` is the fraction the notebook counted
    over its batches of `n_images` images."""
    for m, k in ((2000, 10), (100, 2), (10, 10), (60000, 10), (40, 4)):
        want, got = _expected_false_negative_fraction(m, k), float(expected_false_negative_fraction(m, k))
        assert abs(got - want) < 1e-9, (
            f"for {m} images in {k} classes expected {want:.5f}, got {got:.5f}. The anchor's batch-mates are "
            "a uniform draw from the OTHER images (M − 1 of them); how many of those share its class?")
    want = _expected_false_negative_fraction(n_images, n_classes)
    assert abs(measured - want) < 0.01, (
        f"the notebook's batches measure {measured:.4f}, far from the formula's {want:.4f} for {n_images} "
        f"images in {n_classes} classes: is `measured` the mean fraction over the notebook's batches?")
    passed(f"derived {want:.4f}, measured {measured:.4f}. The batch size is not in the formula: a batch of B "
           f"holds about (B − 1) · {want:.3f} false negatives per anchor, so a larger batch gives SimCLR more "
           "of them, not fewer.")


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
