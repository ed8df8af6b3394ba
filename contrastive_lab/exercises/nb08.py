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
