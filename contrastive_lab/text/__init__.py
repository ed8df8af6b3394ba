"""Text for contrastive models.

    words       a word-level Tokenizer and a small TextEncoder (CLIP's captions, notebook 08)
    identifiers the pre-tokenisation rule for code words: `nan_to_num` → nan_to_num, nan, to, num
    corpus      a retrieval corpus built from the docstrings of installed libraries (notebook 09)
    subword     a BPE subword tokenizer trained with Hugging Face `tokenizers`
    lexical     lexical retrieval: BM25 (the `bm25s` library) and TF-IDF (scikit-learn)
    hybrid      one ranking from a lexical and a dense score matrix
    pretrained  all-MiniLM-L6-v2, a pretrained Sentence-BERT encoder, loaded offline, checksum-pinned
    biencoder   a small Transformer encoder shared by queries and documents (Sentence-BERT)

Only `words` is imported here (its names stay importable as `contrastive_lab.text.Tokenizer`);
import the others by their module, e.g. `from contrastive_lab.text.corpus import build_docstring_corpus`.
"""
from .words import PAD, UNK, TextEncoder, Tokenizer, split_words

__all__ = ["PAD", "UNK", "TextEncoder", "Tokenizer", "split_words"]
