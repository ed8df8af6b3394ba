"""Notebook 11's self-checks accept the right answers and explain wrong ones."""
import math

import pytest
import torch

from contrastive_lab.evaluate import knn_accuracy, ndcg_at_k
from contrastive_lab.exercises.nb11 import (COLLECTION_RELEVANCE, RANKED_RELEVANCE, check_knn_choice,
                                            check_ndcg_at_3, check_stopping, early_stopping)
from contrastive_lab.train import History

# DCG@3 = 0/1 + 3/log2(3) + 1/2 = 2.3928; ideal (3, 2, 1): 3 + 2/log2(3) + 1/2 = 4.7619
RIGHT_NDCG = (3 / math.log2(3) + 0.5) / (3 + 2 / math.log2(3) + 0.5)


def test_ndcg_by_hand_matches_the_package_and_is_accepted(capsys):
    assert RIGHT_NDCG == pytest.approx(0.50249, abs=1e-4)
    # the package on the same ranking: scores decreasing along the ranked order, the collection's
    # two zero-grade documents appended at the end
    relevance = torch.tensor([list(RANKED_RELEVANCE)], dtype=torch.float)
    assert sorted(RANKED_RELEVANCE, reverse=True) == sorted(COLLECTION_RELEVANCE, reverse=True)
    assert ndcg_at_k(torch.tensor([[5.0, 4, 3, 2, 1]]), relevance, 3) == pytest.approx(RIGHT_NDCG)
    check_ndcg_at_3(RIGHT_NDCG)
    assert "✓" in capsys.readouterr().out


@pytest.mark.parametrize("answer, hint", [
    (3 / math.log2(3) + 0.5, "DCG@3 itself"),
    ((1 / math.log2(3) + 0.5) / (1 + 1 / math.log2(3) + 0.5), "counted every relevant document as 1"),
    ((3 / 2 + 1 / 3) / (3 + 2 / 2 + 1 / 3), "not 1 / rank"),
    ("0.5", "set `ndcg3` to a number"),
    (0.9, "is not nDCG@3"),
])
def test_ndcg_by_hand_explains_a_wrong_answer(answer, hint):
    with pytest.raises(AssertionError, match=hint):
        check_ndcg_at_3(answer)


def _history():
    h = History(epoch_loss=[3.0, 2.5, 2.0, 1.8, 1.6, 1.5, 1.4, 1.3])
    for epoch, value in enumerate([0.20, 0.30, 0.28, 0.31, 0.29, 0.30, 0.27, 0.26], start=1):
        h.log("val R@1", epoch, value)
    return h


def test_early_stopping_by_hand():
    # best 0.31 at epoch 4; epochs 5, 6, 7 bring nothing new → with patience 3 it stops at 7
    values = _history().metrics["val R@1"]
    assert early_stopping(values, 3) == (7, 4)
    assert early_stopping(values, 10) == (8, 4)          # never runs out of patience: ends at the last epoch


def test_stopping_accepts_the_right_answer(capsys):
    check_stopping(7, 4, _history(), metric="val R@1", patience=3)
    assert "stops at epoch 7" in capsys.readouterr().out


@pytest.mark.parametrize("answer, hint", [((7, 8), "lowest training loss"), ((7, 2), "best val R@1"),
                                          ((8, 4), "stopped_at 8 is not"), ((7, 99), "one of the evaluated")])
def test_stopping_explains_a_wrong_answer(answer, hint):
    with pytest.raises(AssertionError, match=hint):
        check_stopping(*answer, _history(), metric="val R@1", patience=3)


def _features():
    g = torch.Generator().manual_seed(0)
    centres = torch.randn(3, 8, generator=g)

    def draw(n):
        y = torch.arange(n) % 3
        return centres[y] + 1.2 * torch.randn(n, 8, generator=g), y
    return (*draw(30), *draw(60), *draw(60))


def test_knn_choice_accepts_the_validation_choice(capsys):
    train_f, train_y, val_f, val_y, test_f, test_y = _features()
    grid = {(k, t): knn_accuracy(train_f, train_y, val_f, val_y, k, temperature=t)
            for t in (None, 0.05, 0.1) for k in (1, 5, 10, 20)}
    order = list(grid)
    best = max(order, key=lambda c: (grid[c], -order.index(c)))
    test = knn_accuracy(train_f, train_y, test_f, test_y, best[0], temperature=best[1])
    check_knn_choice(best, test, train_f, train_y, val_f, val_y, test_f, test_y, ks=(1, 5, 10, 20))
    assert "✓" in capsys.readouterr().out


def test_knn_choice_explains_a_wrong_answer():
    train_f, train_y, val_f, val_y, test_f, test_y = _features()
    args = (train_f, train_y, val_f, val_y, test_f, test_y)
    with pytest.raises(AssertionError, match="choice = \\(k, temperature\\)"):
        check_knn_choice(20, 0.5, *args)
    with pytest.raises(AssertionError, match="not in the grid"):
        check_knn_choice((3, None), 0.5, *args)
    grid = {(k, t): knn_accuracy(train_f, train_y, val_f, val_y, k, temperature=t)
            for t in (None, 0.05, 0.1) for k in (1, 5, 10, 20, 50) if k <= 30}
    worst = min(grid, key=grid.get)
    with pytest.raises(AssertionError, match="on validation"):
        check_knn_choice(worst, 0.5, *args)


def test_open_exercises_say_not_done_yet(capsys):
    check_ndcg_at_3(...)
    check_stopping(..., ..., _history(), metric="val R@1", patience=3)
    assert capsys.readouterr().out.count("○ not done yet") == 2
