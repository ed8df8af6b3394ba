"""Self-checks for notebook 09 (sentence embeddings)."""
from __future__ import annotations

import math

import torch

from ..evaluate import ndcg_at_k
from . import passed, self_check


@self_check
def check_loss_with_hard_negatives(answer, batch_size: int = 64) -> None:
    """Exercise 1: MNRL with one hard negative per query, when every similarity is equal."""
    value = float(answer)
    expected = math.log(2 * batch_size)
    if abs(value - expected) > 1e-3:
        n = batch_size
        hints = {
            math.log(n): "That counts the N in-batch documents only: the N hard negatives are candidates too.",
            math.log(n + 1): "Each query sees EVERY hard negative of the batch, not only its own "
                             "(sentence-transformers stacks them under the documents).",
            math.log(2 * n - 1): "Nothing is masked out: the query's own document is one of the 2N candidates.",
            20 * math.log(2 * n): "The scale multiplies every logit by the same amount; with equal logits it cancels.",
        }
        hint = next((h for v, h in hints.items() if abs(value - v) < 1e-3), "")
        raise AssertionError(f"got {value:.4f}, expected a different value for N = {batch_size}. {hint} "
                             "With equal logits the softmax is uniform over all candidates; count them.")
    passed(f"ln(2 · {batch_size}) = {expected:.3f}: {batch_size} documents + {batch_size} hard negatives, "
           "a uniform guess among them; the scale does not matter")


def _check_choice_on_validation(parameter: str, best, val_ndcg: dict, grid) -> None:
    """A BM25 parameter chosen on VALIDATION by nDCG@10: val_ndcg {value: nDCG@10} covers `grid`."""
    if not isinstance(val_ndcg, dict) or not all(any(abs(v - k) < 1e-9 for k in val_ndcg) for v in grid):
        raise AssertionError(f"val_ndcg must be a dict {{{parameter}: nDCG@10 on validation}} for every "
                             f"{parameter} in {list(grid)}")
    if best is None:
        raise AssertionError(f"Set best_{parameter} to the value of {parameter} you choose.")
    values = {float(k): float(v) for k, v in val_ndcg.items()}
    if not all(0.0 <= v <= 1.0 for v in values.values()):
        raise AssertionError("nDCG@10 lies in [0, 1]; did you store something else (a score matrix, a rank)?")
    winner = max(values, key=values.get)
    if abs(float(best) - winner) > 1e-9:
        raise AssertionError(f"{parameter} = {best} scored {values.get(float(best), float('nan')):.3f} on validation, "
                             f"but {parameter} = {winner} scored {values[winner]:.3f}: choose the best on validation "
                             "(and only then look at test)")
    spread = max(values.values()) - min(values.values())
    passed(f"{parameter} = {winner} is best on validation (nDCG@10 {values[winner]:.3f}); across {parameter} "
           f"the score moved {spread:.3f}")


@self_check
def check_bm25_k1(best_k1, val_ndcg: dict, k1s=(0.5, 0.9, 1.2, 1.5, 2.0)) -> None:
    """Exercise 2: BM25's term-frequency saturation k1, chosen on VALIDATION by nDCG@10.

    val_ndcg: {k1: validation nDCG@10} as the learner measured it (it must cover `k1s`).
    """
    _check_choice_on_validation("k1", best_k1, val_ndcg, k1s)


def _cases():
    g = torch.Generator().manual_seed(9)
    cases = [
        (torch.tensor([0.9, 0.7, 0.4, 0.2]), torch.tensor([0.0, 2.0, 0.0, 1.0]), 10),
        (torch.tensor([0.9, 0.7, 0.4, 0.2]), torch.tensor([0.0, 2.0, 0.0, 1.0]), 2),
        (torch.tensor([0.1, 0.2, 0.3]), torch.tensor([1.0, 0.0, 0.0]), 3),
    ]
    for _ in range(5):
        cases.append((torch.randn(12, generator=g), torch.randint(0, 3, (12,), generator=g).float(), 5))
    return cases


@self_check
def check_ndcg_one_query(my_ndcg) -> None:
    """Exercise 3: nDCG@k for ONE query with distinct scores: my_ndcg(scores (D,), relevance (D,), k) → float."""
    if not callable(my_ndcg):
        raise AssertionError("pass the function itself: check_ndcg_one_query(my_ndcg)")
    for scores, relevance, k in _cases():
        want = ndcg_at_k(scores[None], relevance[None], k)
        got = float(my_ndcg(scores.clone(), relevance.clone(), k))
        if abs(got - want) < 1e-6:
            continue
        order = scores.argsort(descending=True)
        gains = relevance[order][:k]
        ranks = torch.arange(1, len(gains) + 1, dtype=torch.float32)
        dcg = (gains / torch.log2(ranks + 1)).sum().item()
        hint = "sort the documents by score, best first; DCG = Σ relevance / log2(1 + rank) over the top k"
        if abs(got - dcg) < 1e-6:
            hint = "that is the DCG: divide by the DCG of the ideal order (relevances sorted, best first)"
        elif abs(got - (gains[1:] / torch.log2(ranks[1:])).sum().item() - gains[0].item()) < 1e-6 and k > 1:
            hint = "the discount of rank r is 1 / log2(1 + r), so rank 1 counts fully and rank 2 by 1 / log2(3)"
        elif abs(got - ndcg_at_k(scores[None], relevance[None], len(scores))) < 1e-6:
            hint = "only the top k documents count, in the ranking and in the ideal ranking"
        raise AssertionError(f"scores {scores.tolist()[:6]}…, relevance {relevance.tolist()[:6]}…, k = {k}: "
                             f"you gave {got:.4f}, expected {want:.4f}. Hint: {hint}")
    passed("your nDCG@k equals ndcg_at_k (and scikit-learn's ndcg_score) on every case")


def _padded_batches():
    """(token_states (B, L, D), mask (B, L)) cases with padding at the end of the shorter texts."""
    g = torch.Generator().manual_seed(11)
    cases = []
    for batch, length, dim in ((3, 5, 4), (4, 7, 8), (1, 3, 2)):
        states = torch.randn(batch, length, dim, generator=g) + 2.0       # not centred: padding changes the mean
        real = torch.randint(1, length + 1, (batch,), generator=g)
        real[0] = length                                                 # one text fills the batch
        mask = (torch.arange(length)[None, :] < real[:, None]).long()
        cases.append((states, mask))
    return cases


@self_check
def check_mean_pooling(my_mean_pool) -> None:
    """Exercise 4: mean pooling over the real tokens, then unit length: (B, L, D), (B, L) → (B, D)."""
    if not callable(my_mean_pool):
        raise AssertionError("pass the function itself: check_mean_pooling(my_mean_pool)")
    for states, mask in _padded_batches():
        m = mask.unsqueeze(-1).float()
        want = torch.nn.functional.normalize((states * m).sum(1) / m.sum(1), dim=1)
        got = torch.as_tensor(my_mean_pool(states.clone(), mask.clone())).float()
        if got.shape != want.shape:
            raise AssertionError(f"expected one ({want.shape[1]},) vector per text, shape {tuple(want.shape)}; "
                                 f"got {tuple(got.shape)}: average over the token axis (dim 1)")
        if torch.allclose(got, want, atol=1e-5):
            continue
        hint = "average only where the mask is 1, then divide each vector by its length"
        if torch.allclose(got, torch.nn.functional.normalize(states.mean(1), dim=1), atol=1e-5):
            hint = "that averages the padding too: multiply by the mask before summing, divide by the mask's sum"
        elif torch.allclose(got, (states * m).sum(1) / m.sum(1), atol=1e-5):
            hint = "right mean, but not unit length: normalise each row (F.normalize(x, dim=1))"
        raise AssertionError(f"on a batch of {tuple(states.shape)} with {mask.sum(1).tolist()} real tokens your "
                             f"vectors differ from the masked mean. Hint: {hint}")
    passed("masked mean, then unit length: padding does not move a text's embedding")
