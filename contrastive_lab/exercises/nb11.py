"""Self-checks for notebook 11 (evaluation and choosing a method)."""
from __future__ import annotations

import math

from . import passed, self_check

# Exercise 1's ranking: the relevance grades (0-3) of the documents in the order a system ranked them,
# and the grades of every document in the collection for that query.
RANKED_RELEVANCE = (0, 3, 1, 2, 0)
COLLECTION_RELEVANCE = (3, 2, 1, 0, 0)


def _dcg(gains, k):
    return sum(g / math.log2(rank + 1) for rank, g in enumerate(gains[:k], start=1))


@self_check
def check_ndcg_at_3(answer) -> None:
    """Exercise 1: nDCG@3 by hand for RANKED_RELEVANCE (linear gain, discount 1 / log2(1 + rank))."""
    if isinstance(answer, bool) or not isinstance(answer, (int, float)):
        raise AssertionError("set `ndcg3` to a number (your nDCG@3), e.g. ndcg3 = 0.42")
    ideal = sorted(COLLECTION_RELEVANCE, reverse=True)
    right = _dcg(RANKED_RELEVANCE, 3) / _dcg(ideal, 3)
    if abs(answer - right) < 5e-3:
        passed(f"nDCG@3 = DCG {_dcg(RANKED_RELEVANCE, 3):.3f} / ideal DCG {_dcg(ideal, 3):.3f} = {right:.3f}")
        return
    binary = [min(g, 1) for g in RANKED_RELEVANCE], [min(g, 1) for g in ideal]
    exponential = [2 ** g - 1 for g in RANKED_RELEVANCE], [2 ** g - 1 for g in ideal]
    mistakes = [
        (_dcg(RANKED_RELEVANCE, 3), "that is DCG@3 itself; divide by the DCG@3 of the ideal order "
                                    "(the collection's grades sorted best first) so a perfect ranking scores 1"),
        (_dcg(RANKED_RELEVANCE, 3) / _dcg(sorted(RANKED_RELEVANCE[:3], reverse=True), 3),
         "your ideal order re-sorts only the three documents the system returned; the ideal is the best "
         "three of the whole collection (grades 3, 2, 1)"),
        (_dcg(binary[0], 3) / _dcg(binary[1], 3),
         "you counted every relevant document as 1: nDCG uses the grades (3, 2, 1) as gains"),
        (_dcg(exponential[0], 3) / _dcg(exponential[1], 3),
         "that is the exponential gain 2^rel − 1 (another convention); the course, like scikit-learn's "
         "ndcg_score, uses the grade itself as the gain"),
        (_dcg(RANKED_RELEVANCE, 5) / _dcg(ideal, 5),
         "that is nDCG over all five ranks; @3 stops after the third"),
        (sum(g / (rank + 1) for rank, g in enumerate(RANKED_RELEVANCE[:3])) /
         sum(g / (rank + 1) for rank, g in enumerate(ideal[:3])),
         "the discount is 1 / log2(1 + rank) (1, 0.631, 0.5 for ranks 1-3), not 1 / rank"),
    ]
    for value, hint in mistakes:
        if abs(answer - value) < 5e-3:
            raise AssertionError(f"{answer:.3f}: {hint}.")
    raise AssertionError(f"{answer:.3f} is not nDCG@3 here. Write the gains in rank order {RANKED_RELEVANCE[:3]}, "
                         "divide each by log2(1 + rank), sum; do the same for the ideal order and divide.")


def early_stopping(values: list[tuple[int, float]], patience: int) -> tuple[int, int]:
    """(epoch the run stops at, epoch whose weights are kept) for early stopping on a metric that
    should rise: stop after `patience` evaluations in a row without a new best; keep the best
    (the earliest, on ties). values: [(epoch, validation metric)] in order."""
    best_epoch, best, waited = values[0][0], values[0][1], 0
    for epoch, value in values[1:]:
        if value > best:
            best_epoch, best, waited = epoch, value, 0
        else:
            waited += 1
            if waited == patience:
                return epoch, best_epoch
    return values[-1][0], best_epoch


@self_check
def check_stopping(stopped_at, kept_epoch, history, metric: str = "val R@10", patience: int = 5) -> None:
    """Exercise 2: early stopping with `patience` on history.metrics[metric], read from the curves."""
    values = history.metrics[metric]
    want_stop, want_keep = early_stopping(values, patience)
    epochs = [e for e, _ in values]
    for name, value in (("stopped_at", stopped_at), ("kept_epoch", kept_epoch)):
        if not isinstance(value, int) or isinstance(value, bool) or value not in epochs:
            raise AssertionError(f"{name} must be one of the evaluated epochs ({epochs[0]}…{epochs[-1]}), got {value!r}")
    loss_best = min(range(len(history.epoch_loss)), key=lambda i: history.epoch_loss[i]) + 1
    if kept_epoch == loss_best and loss_best != want_keep:
        raise AssertionError(f"epoch {kept_epoch} has the lowest training loss — the very number this section "
                             f"shows is not the metric. Keep the weights of the best {metric}.")
    if kept_epoch != want_keep:
        best = max(v for _, v in values)
        raise AssertionError(f"the weights to keep are those of the best {metric} seen before stopping "
                             f"({best:.3f}); epoch {kept_epoch} scored {dict(values)[kept_epoch]:.3f}.")
    if stopped_at != want_stop:
        raise AssertionError(f"keep count: after the best epoch ({want_keep}) the run waits {patience} evaluations "
                             f"without a new best, then stops — stopped_at {stopped_at} is not that epoch.")
    passed(f"patience {patience}: the run stops at epoch {want_stop} and keeps epoch {want_keep}'s weights "
           f"({dict(values)[want_keep]:.3f} {metric}), {len(history.epoch_loss) - want_stop} epochs of compute saved")


KNN_VOTES = (None, 0.05, 0.1)         # exercise 3: one vote per neighbour, or weights exp(cos / τ)


def _knn_grid(train_f, train_y, eval_f, eval_y, ks, votes) -> dict[tuple, float]:
    from ..evaluate import knn_accuracy

    return {(k, t): knn_accuracy(train_f, train_y, eval_f, eval_y, k, temperature=t)
            for t in votes for k in ks if k <= len(train_f)}


@self_check
def check_knn_choice(choice, test_accuracy, train_f, train_y, val_f, val_y, test_f, test_y,
                     ks=(1, 5, 10, 20, 50), votes=KNN_VOTES) -> None:
    """Exercise 3: (k, temperature) of a k-NN classifier chosen on validation, the test set scored once.

    train_f/train_y: the labelled memory (10 % of the labels); val_f/val_y: the validation
    subset to choose on; test_f/test_y: scored once with the choice. Best validation accuracy
    wins; ties go to the earlier vote in `votes`, then the smaller k.
    """
    if not (isinstance(choice, tuple) and len(choice) == 2):
        raise AssertionError("set `choice = (k, temperature)`, e.g. (20, None) or (10, 0.1)")
    k, t = choice
    on_val = _knn_grid(train_f, train_y, val_f, val_y, ks, votes)
    if (k, t) not in on_val:
        raise AssertionError(f"{choice!r} is not in the grid: k from {tuple(ks)}, temperature from {votes}")
    order = [(kk, tt) for tt in votes for kk in ks if (kk, tt) in on_val]
    best = max(order, key=lambda c: (on_val[c], -order.index(c)))
    on_test = _knn_grid(train_f, train_y, test_f, test_y, ks, votes)
    if (k, t) != best:
        best_test = max(order, key=lambda c: (on_test[c], -order.index(c)))
        if (k, t) == best_test and on_val[best_test] < on_val[best]:
            raise AssertionError(f"{choice} is the best on the TEST set ({on_test[best_test]:.3f}); choose on "
                                 "validation — a choice made on the test set makes its score optimistic.")
        raise AssertionError(f"{choice} scores {on_val[(k, t)]:.3f} on validation; the grid's best there is "
                             f"{best} with {on_val[best]:.3f}. Try every k with every vote on (val_f, val_y).")
    if not isinstance(test_accuracy, float) or abs(test_accuracy - on_test[best]) > 1e-6:
        raise AssertionError(f"the choice is right; now score it once on the test set: "
                             f"knn_accuracy(train_f, train_y, test_f, test_y, {k}, temperature={t}) "
                             f"(your test_accuracy: {test_accuracy!r})")
    vote = "one vote per neighbour" if t is None else f"votes weighted by exp(cos / {t})"
    plain = max(on_val[c] for c in order if c[1] is None)
    passed(f"k = {k}, {vote}: validation {on_val[best]:.3f} (best plain vote {plain:.3f}), "
           f"test {on_test[best]:.3f}, read once")
