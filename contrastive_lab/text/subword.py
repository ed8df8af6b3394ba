"""A subword (BPE) tokenizer trained with Hugging Face `tokenizers` (the library Sentence-BERT models use).

    tok = SubwordTokenizer.train(train_texts, vocab_size=4000)   # about a second
    tok.tokens("LogisticRegression")   # ['logistic', 'regression', 'logistic', 'regression']: the whole word, then its parts
    ids = tok(["Compute the cumulative sum", "np.nan_to_num"], max_len=64)   # (2, L) int64

Text is first cut into words by `identifier_words` (the same rule BM25 and
TF-IDF read with), then byte-pair encoding (BPE) splits each word into pieces
from a vocabulary learned on the training texts: a frequent word is one piece,
a rare identifier several. No word is ever unknown as a whole, so a learner's
query always gets an embedding. Id 0 is [PAD], id 1 is [UNK] (only for
characters never seen in training).

Why BPE without WordPiece's "##" continuation marks: the library's trainer
gives "##" pieces their ids in hash-map order, so WordPiece (or BPE with a
continuation prefix or end-of-word suffix) learns a slightly different
vocabulary on every run (huggingface/tokenizers issue #1794). Plain BPE is
deterministic, and a course notebook must repeat exactly. The price: a piece
does not say whether it starts a word, so `decode` puts a space between pieces.
"""
from __future__ import annotations

import os
from collections.abc import Iterable

import torch

from .identifiers import identifier_words
from .words import pad_rows

# deterministic, and polite on a shared 2-core machine; set it before the library starts its threads
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

PAD, UNK = "[PAD]", "[UNK]"


class SubwordTokenizer:
    """A trained `tokenizers.Tokenizer` (BPE) behind the package's tokenizer interface.

    Calling it on a list of texts gives (B, L) int64 ids padded with 0, where L
    is the longest text or `max_len` (longer texts are cut to their first pieces).
    """

    def __init__(self, hf_tokenizer):
        self.hf = hf_tokenizer
        if self.hf.token_to_id(PAD) != 0 or self.hf.token_to_id(UNK) != 1:
            raise ValueError(f"the tokenizer must have {PAD} at id 0 and {UNK} at id 1")

    @classmethod
    def train(cls, texts: Iterable[str], vocab_size: int = 4000, min_frequency: int = 2) -> "SubwordTokenizer":
        """Learn a BPE vocabulary of at most `vocab_size` pieces from `texts`.

        Train it on the TRAINING split only: pieces learned from test documents
        would leak which words the test set uses.
        """
        from tokenizers import Tokenizer, models, pre_tokenizers, trainers

        if vocab_size < 100:
            raise ValueError(f"vocab_size must be at least 100 (letters and digits need room), got {vocab_size}")
        hf = Tokenizer(models.BPE(unk_token=UNK))
        hf.pre_tokenizer = pre_tokenizers.WhitespaceSplit()
        trainer = trainers.BpeTrainer(vocab_size=vocab_size, min_frequency=min_frequency,
                                      special_tokens=[PAD, UNK], show_progress=False)
        hf.train_from_iterator((" ".join(identifier_words(t)) for t in texts), trainer)
        return cls(hf)

    @property
    def vocab_size(self) -> int:
        return self.hf.get_vocab_size()

    @property
    def pad_id(self) -> int:
        return 0

    @property
    def unk_id(self) -> int:
        return 1

    def tokens(self, text: str) -> list[str]:
        """The pieces of one text, e.g. ['log', 'istic', 'regression']."""
        return self.hf.encode(identifier_words(text), is_pretokenized=True).tokens

    def encode(self, text: str) -> list[int]:
        """The ids of one text's pieces (no padding)."""
        return self.hf.encode(identifier_words(text), is_pretokenized=True).ids

    def decode(self, ids) -> str:
        """The pieces of a list/tensor of ids, separated by spaces, padding dropped."""
        ids = ids.tolist() if isinstance(ids, torch.Tensor) else list(ids)
        return self.hf.decode([i for i in ids if i != self.pad_id])

    def lengths(self, texts: list[str], max_len: int | None = None) -> list[int]:
        """Number of pieces of each text (capped at max_len), at least 1."""
        out = [max(1, len(e.ids)) for e in self._encode_all(texts)]
        return [min(n, max_len) for n in out] if max_len else out

    def _encode_all(self, texts):
        return self.hf.encode_batch([identifier_words(t) for t in texts], is_pretokenized=True)

    def __call__(self, texts: str | list[str], max_len: int | None = None) -> torch.Tensor:
        """Texts → (B, L) int64 ids, padded with [PAD] (0). A text with no words
        becomes a single [UNK], so every row has at least one real token."""
        if isinstance(texts, str):
            texts = [texts]
        if max_len is not None and max_len < 1:
            raise ValueError(f"max_len must be >= 1, got {max_len}")
        return pad_rows([e.ids or [self.unk_id] for e in self._encode_all(texts)], max_len, self.pad_id)

    def __len__(self) -> int:
        return self.vocab_size

    def __repr__(self) -> str:
        return f"SubwordTokenizer(BPE, {self.vocab_size} pieces)"
