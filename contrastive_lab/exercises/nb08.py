"""Self-checks for notebook 08 (CLIP)."""
from __future__ import annotations

import torch

from . import passed, self_check


@self_check
def check_prompts(prompts_for, tokenizer, colour: str = "green", shape: str = "triangle",
                  n_expected: int | None = None) -> None:
    """Exercise 2: a prompt-ensemble builder that speaks the training captions' language."""
    from ..data.shapes import PLACES, SIZES

    if not callable(prompts_for):
        raise AssertionError("Define a function prompts_for(colour, shape) that returns a list of strings.")
    prompts = prompts_for(colour, shape)
    if not isinstance(prompts, (list, tuple)) or not all(isinstance(p, str) for p in prompts):
        raise AssertionError(f"prompts_for must return a list of strings, got {type(prompts).__name__}")
    n_expected = n_expected or len(SIZES) * len(PLACES)
    if len(set(prompts)) < n_expected:
        raise AssertionError(f"got {len(set(prompts))} distinct prompts; cover every size ({len(SIZES)}) "
                             f"and every place ({len(PLACES)}): at least {n_expected}")
    for p in prompts:
        words = p.split()
        if colour not in words or shape not in words:
            raise AssertionError(f"prompt {p!r} must name the class: {colour!r} and {shape!r}")
        ids = tokenizer.encode(p)
        if tokenizer.unk_id in ids:
            unknown = [w for w in words if w not in tokenizer.index]
            raise AssertionError(f"prompt {p!r} has words the model never read: {unknown}; "
                                 "they all map to <unk>")
    for size in SIZES:
        if not any(f" {size} " in f" {p} " for p in prompts):
            raise AssertionError(f"no prompt says the size {size!r}")
    for place in PLACES:
        if not any(place in p for p in prompts):
            raise AssertionError(f"no prompt says the place {place!r}")
    passed(f"{len(set(prompts))} prompts for a {colour} {shape}, every word known to the tokenizer")


@self_check
def check_top_captions(top_captions, image_emb: torch.Tensor, text_emb: torch.Tensor,
                       images=(0, 1, 2), ks=(1, 5)) -> None:
    """Exercise 3: image → text retrieval returns the indices of the k most similar captions."""
    if not callable(top_captions):
        raise AssertionError("Define top_captions(i, k) returning the indices of the k best captions "
                             "for gallery image i.")
    for i in images:
        for k in ks:
            got = top_captions(i, k)
            got = got.tolist() if isinstance(got, torch.Tensor) else list(got)
            expected = (image_emb[i] @ text_emb.T).topk(k).indices.tolist()
            if len(got) != k:
                raise AssertionError(f"top_captions({i}, {k}) returned {len(got)} indices, expected {k}")
            if [int(j) for j in got] != expected:
                raise AssertionError(
                    f"top_captions({i}, {k}) gave {got}, expected {expected}. Score image i against "
                    "every caption embedding with a dot product (both are unit length) and take "
                    "topk, best first.")
    passed("image → text retrieval: the captions most similar to the image, best first")


@self_check
def check_prompt_decision(use_mine, mine_val: float, chosen_val: float, chosen_name: str) -> None:
    """Exercise 1, second part: use_mine = True if your prompt set should replace the chosen one.
    The decision is made on VALIDATION accuracy (mine_val against chosen_val), never on the test set."""
    if not isinstance(use_mine, bool):
        raise AssertionError("set use_mine to True or False")
    want = mine_val > chosen_val
    if use_mine != want:
        raise AssertionError(
            f"on the validation images your prompts score {mine_val:.3f} and the chosen set ({chosen_name}) "
            f"{chosen_val:.3f}: decide on those numbers. (The test numbers may point the other way; "
            "choosing on them would make the test set part of the training of the choice.)")
    verdict = "replace" if want else "keep"
    passed(f"{verdict} the {chosen_name} — decided on validation ({mine_val:.3f} vs {chosen_val:.3f}); "
           "the test set stays untouched by the choice")


def _loss_at_constant_logit(bias: float, n: int) -> float:
    """SigLIP's loss per image when every logit equals `bias` (all cosines 0): one positive,
    n − 1 negatives, log σ written as −softplus(−x)."""
    t = torch.tensor(float(bias), dtype=torch.float64)
    return (torch.nn.functional.softplus(-t) + (n - 1) * torch.nn.functional.softplus(t)).item()


@self_check
def check_best_bias(best_bias, sizes=(2, 8, 128, 32768)) -> None:
    """Exercise 3: best_bias(n) = the constant logit that minimises SigLIP's loss of a batch of n
    pairs when every cosine is 0, i.e. at initialisation. Checked against a numerical minimum."""
    if not callable(best_bias):
        raise AssertionError("Define a function best_bias(n) that returns a number (the bias for batch size n).")
    for n in sizes:
        got = best_bias(n)
        if isinstance(got, torch.Tensor):
            got = got.item()
        if not isinstance(got, (int, float)):
            raise AssertionError(f"best_bias({n}) must return a number, got {type(got).__name__}")
        lo, hi = -30.0, 30.0                        # the loss is convex in the bias: ternary search
        for _ in range(200):
            a, b = lo + (hi - lo) / 3, hi - (hi - lo) / 3
            if _loss_at_constant_logit(a, n) < _loss_at_constant_logit(b, n):
                hi = b
            else:
                lo = a
        want = (lo + hi) / 2
        if abs(got - want) > 1e-3:
            raise AssertionError(
                f"best_bias({n}) = {got:.4f}, but the loss is smallest at {want:.4f}. Write the loss of one "
                "image when every logit is b (one positive, n − 1 negatives), set its derivative in b to 0 "
                "(σ'(x) = σ(x)σ(−x) helps) and solve for b.")
    passed(f"best_bias matches the numerical minimum for n = {', '.join(map(str, sizes))}; "
           f"at the paper's batch of 32,768 it is {best_bias(32768):.2f}")
