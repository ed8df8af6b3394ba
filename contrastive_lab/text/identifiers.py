"""The one pre-tokenisation rule for text about code, shared by BM25, TF-IDF and the subword tokenizer.

    >>> identifier_words("Replace NaN with zero: np.nan_to_num(x)")
    ['replace', 'nan', 'with', 'zero', 'np.nan_to_num', 'np', 'nan', 'to', 'num', 'x']

The rule, stated once:
1. a word is a run of letters, digits and underscores, with inner dots allowed
   (`np.nan_to_num`, `os.path.join`, `float32`); everything else separates words;
2. every word is lower-cased;
3. a word that contains `_` or `.`, or a change from lower to upper case
   between pieces of at least two letters (`LogisticRegression`, not `NaN`),
   is kept WHOLE and then followed by its PARTS (split at `_`, `.` and those
   case changes): the whole word lets an exact match on a rare identifier
   count, the parts let `nan_to_num` meet the word "nan".

No stemming and no stop-word list: BM25's and TF-IDF's inverse document
frequency already give "the" and "of" almost no weight.
"""
from __future__ import annotations

import re

_WORD = re.compile(r"[A-Za-z0-9_]+(?:\.[A-Za-z0-9_]+)*")
_CASE_CHANGE = re.compile(r"(?<=[a-z])(?=[A-Z])")


def _case_pieces(chunk: str) -> list[str]:
    """Split at lower→upper changes when every piece has ≥ 2 characters, else keep whole."""
    pieces = _CASE_CHANGE.split(chunk)
    return pieces if all(len(p) >= 2 for p in pieces) else [chunk]


def identifier_parts(word: str) -> list[str]:
    """The lower-cased parts of one identifier: "nan_to_num" → ["nan", "to", "num"],
    "sklearn.LogisticRegression" → ["sklearn", "logistic", "regression"], "NaN" → ["nan"]."""
    return [p.lower() for chunk in re.split(r"[_.]+", word) if chunk for p in _case_pieces(chunk)]


def identifier_words(text: str) -> list[str]:
    """Words of `text` under the rule above, in order (see the module docstring).

    "fit_transform(X)" → ["fit_transform", "fit", "transform", "x"];
    "LogisticRegression" → ["logisticregression", "logistic", "regression"];
    a plain word ("Compute") → ["compute"]; punctuation and markup are dropped.
    """
    if not isinstance(text, str):
        raise TypeError(f"identifier_words expects a str, got {type(text).__name__}")
    out: list[str] = []
    for word in _WORD.findall(text):
        whole = word.strip("_").lower()
        if not whole:
            continue
        out.append(whole)
        parts = identifier_parts(word)
        if len(parts) > 1:
            out.extend(parts)
    return out
