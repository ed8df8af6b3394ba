"""Notebook 09's text pieces: the identifier rule, the docstring corpus, the subword
tokenizer, BM25 / TF-IDF, hybrid fusion and the bi-encoder."""
import math

import pytest
import torch

from contrastive_lab.text import TextEncoder, Tokenizer  # the old names stay importable
from contrastive_lab.text.biencoder import BiEncoder, encode_texts
from contrastive_lab.text.corpus import (DocCorpus, DocEntry, build_docstring_corpus, relevance_matrix,
                                         drop_examples, same_operation, sort_string_sets, split_by_module,
                                         split_docstring, truncate_words)
from contrastive_lab.text.hybrid import mix_scores, ranks, reciprocal_rank_fusion, standardize_rows
from contrastive_lab.text.identifiers import identifier_parts, identifier_words
from contrastive_lab.text.lexical import BM25Index, bm25_scores, tfidf_scores
from contrastive_lab.text.subword import SubwordTokenizer


# ------------------------------------------------------------------ the identifier rule
def test_identifier_kept_whole_and_split_into_parts():
    assert identifier_words("Use np.nan_to_num here") == ["use", "np.nan_to_num", "np", "nan", "to", "num", "here"]


def test_camel_case_is_split_but_not_nan():
    assert identifier_words("LogisticRegression") == ["logisticregression", "logistic", "regression"]
    assert identifier_words("NaN") == ["nan"]
    assert identifier_parts("HTTPServer") == ["httpserver"]


def test_plain_words_lower_cased_and_punctuation_dropped():
    assert identifier_words("Compute the z-score, (fast)!") == ["compute", "the", "z", "score", "fast"]


def test_identifier_words_rejects_non_text():
    with pytest.raises(TypeError, match="str"):
        identifier_words(["a list"])


# ------------------------------------------------------------------ the corpus
NUMPY_LIKE = """add(x1, x2, /, out=None)

Add arguments element-wise. Both must broadcast.

Parameters
----------
x1, x2 : array_like
    The arrays to be added."""


def test_split_docstring_drops_the_signature_and_removes_the_summary():
    query, document = split_docstring(NUMPY_LIKE)
    assert query == "Add arguments element-wise."
    assert document.startswith("Both must broadcast. Parameters x1, x2 : array_like")
    assert "Add arguments" not in document and "----" not in document


def test_doctest_examples_and_their_heading_are_cut_off():
    doc = NUMPY_LIKE + "\n\nExamples\n--------\n>>> rng.random(2)\narray([0.37, 0.95])  # may vary"
    assert drop_examples(doc) == NUMPY_LIKE
    assert drop_examples("Sum.\n\nExample::\n\n    >>> torch.sum(x)") == "Sum."
    assert drop_examples(NUMPY_LIKE) == NUMPY_LIKE                       # nothing to cut
    assert "may vary" not in split_docstring(doc)[1]


def test_sets_printed_into_docstrings_are_sorted():
    # a docstring built at import time from a set lists it in a per-process order
    assert sort_string_sets("Use of {'weights', 'normalize'} by position") == "Use of {'normalize', 'weights'} by position"
    assert sort_string_sets("a dict {'a': 1} and {'x'} stay") == "a dict {'a': 1} and {'x'} stay"


def test_the_corpus_is_the_same_in_a_jupyter_kernel(monkeypatch):
    # a kernel puts IPython's display among the builtins: it is not the standard library's
    import builtins

    def display(*objects):
        """Display objects in all frontends. Each object is shown the rich way (IPython)."""
    display.__module__ = "IPython.core.display_functions"
    before = build_docstring_corpus({"stdlib": ("builtins",)}, min_document_words=1, min_query_words=1)
    monkeypatch.setattr(builtins, "display", display, raising=False)

    def kernel_input(prompt=""):
        """Forward raw_input to frontends. Raises StdinNotImplementedError if the frontend says so."""
    kernel_input.__module__ = "ipykernel.kernelbase"
    monkeypatch.setattr(builtins, "input", kernel_input)
    after = build_docstring_corpus({"stdlib": ("builtins",)}, min_document_words=1, min_query_words=1)
    assert before.fingerprint() == after.fingerprint()


def entry(name, query="q one two three", document="d"):
    module, short = name.rsplit(".", 1)
    return DocEntry(name, module.split(".")[0], module, query, document)


def test_same_operation_is_the_same_public_name_in_another_module():
    assert same_operation(entry("numpy.cumsum"), entry("torch.cumsum"))
    assert same_operation(entry("sklearn.cluster.KMeans"), entry("scipy.cluster.vq.kmeans"))
    assert not same_operation(entry("numpy.cumsum"), entry("numpy.cumsum"))     # the same module
    assert not same_operation(entry("numpy.cumsum"), entry("numpy.cumprod"))


def test_relevance_matrix_grades_own_document_2_and_same_operation_1():
    corpus = DocCorpus([entry("numpy.cumsum"), entry("torch.cumsum"), entry("numpy.mean")])
    assert relevance_matrix(corpus).tolist() == [[2, 1, 0], [1, 2, 0], [0, 0, 2]]


def test_split_by_module_never_cuts_a_module_group():
    entries = [entry(f"lib.mod{i % 40}.f{i}") for i in range(400)]     # 40 groups of 10
    splits = split_by_module(DocCorpus(entries), {"val": 0.15, "test": 0.2}, seed=3)
    assert sum(len(s) for s in splits.values()) == 400
    groups = {name: {e.group for e in s} for name, s in splits.items()}
    assert not groups["train"] & groups["test"] and not groups["train"] & groups["val"]
    assert not groups["val"] & groups["test"]
    assert 0.1 * 400 <= len(splits["test"]) <= 0.22 * 400


def test_split_by_library_gives_every_library_its_share_of_test():
    # "big" is one module of 300 entries (it can only go to train); "small" is 30 modules of 10
    entries = [entry(f"big.f{i}") for i in range(300)] + [entry(f"small.m{i % 30}.f{i}") for i in range(300)]
    pooled = split_by_module(DocCorpus(entries), {"val": 0.15, "test": 0.2}, seed=0, by_library=False)
    per_library = split_by_module(DocCorpus(entries), {"val": 0.15, "test": 0.2}, seed=0)
    assert pooled["train"].libraries.count("small") < 0.5 * 300             # pooled: small is mostly held out
    assert per_library["train"].libraries.count("small") >= 0.55 * 300      # its own deal keeps ~65 % in train


def test_split_by_module_rejects_a_train_fraction():
    with pytest.raises(ValueError, match="train gets the rest"):
        split_by_module(DocCorpus([entry("a.b.c")]), {"train": 0.7, "test": 0.3})


def test_mirror_modules_share_a_group():
    assert entry("numpy.linalg.norm").group == entry("torch.linalg.norm").group == "linalg"
    assert entry("numpy.ma.inner").group == entry("numpy.inner").group == "numpy"


def test_corpus_from_the_standard_library_is_deterministic():
    first = build_docstring_corpus({"stdlib": ("json", "textwrap")})
    second = build_docstring_corpus({"stdlib": ("json", "textwrap")})
    assert len(first) >= 3 and first.fingerprint() == second.fingerprint()
    assert "python" in first.versions
    for e in first:
        assert 4 <= len(e.query.split()) <= 40 and len(e.document.split()) >= 20
        assert e.query not in e.document[:len(e.query)]       # the summary is not at the document's start


def test_a_missing_module_is_skipped_not_fatal():
    corpus = build_docstring_corpus({"stdlib": ("json", "no_such_module_here")})
    assert corpus.skipped_modules == ["no_such_module_here"]


def test_truncate_words():
    assert truncate_words("a b  c d", 2) == "a b"
    assert truncate_words("a b", 5) == "a b"


# ------------------------------------------------------------------ the subword tokenizer
TEXTS = ["Compute the cumulative sum of the elements.", "Return the cumulative product.",
         "Replace NaN with zero using nan_to_num.", "Compute the arithmetic mean along an axis."] * 5


def test_subword_tokenizer_pads_with_zero_and_cuts_at_max_len():
    tok = SubwordTokenizer.train(TEXTS, vocab_size=200, min_frequency=1)
    ids = tok(["the cumulative sum", "mean"], max_len=2)
    assert ids.shape == (2, 2) and ids.dtype == torch.long
    assert ids[1, 1] == 0 and ids[0].ne(0).all()


def test_subword_tokenizer_splits_unseen_words_into_known_pieces():
    tok = SubwordTokenizer.train(TEXTS, vocab_size=200, min_frequency=1)
    pieces = tok.tokens("cumulatives")
    assert len(pieces) >= 2 and pieces[0] != "[UNK]"
    assert tok.decode(tok("the cumulative sum")[0]) == "the cumulative sum"


def test_subword_training_is_deterministic():
    a = SubwordTokenizer.train(TEXTS, vocab_size=200, min_frequency=1)
    b = SubwordTokenizer.train(TEXTS, vocab_size=200, min_frequency=1)
    assert a.hf.get_vocab() == b.hf.get_vocab()


def test_empty_text_becomes_one_unknown_token():
    tok = SubwordTokenizer.train(TEXTS, vocab_size=200, min_frequency=1)
    assert tok(["", "mean"])[0].tolist()[0] == tok.unk_id


# ------------------------------------------------------------------ BM25 and TF-IDF
def test_bm25_score_by_hand():
    # docs "a b" and "a c c", query "c": N = 2, df(c) = 1, Lucene idf = ln(1 + (2 − 1 + 0.5) / (1 + 0.5)) = ln 2
    # doc 1: tf = 2, |d| = 3, avgdl = 2.5 → 2 / (2 + k1 (1 − b + b · 3 / 2.5)); Lucene's BM25 drops the
    # textbook factor (k1 + 1) from the numerator: the same ranking, smaller numbers
    k1, b = 1.5, 0.75
    expected = math.log(2) * 2 / (2 + k1 * (1 - b + b * 3 / 2.5))
    scores = bm25_scores(["c"], ["a b", "a c c"], k1, b)
    assert scores.shape == (1, 2)
    assert scores[0, 0] == 0 and scores[0, 1].item() == pytest.approx(expected, rel=1e-5)


def test_bm25_reads_identifiers_with_the_shared_rule():
    index = BM25Index(["use nan_to_num to clean", "the mean of an array"])
    assert index.scores("nan").argmax().item() == 0                 # a part of nan_to_num
    assert index.scores(["unseenword"]).abs().sum() == 0            # no shared word, no score


def test_tfidf_identical_texts_have_cosine_one():
    scores = tfidf_scores(["the cumulative sum"], ["the cumulative sum", "matrix norm"])
    assert scores[0, 0].item() == pytest.approx(1.0) and scores[0, 1] == 0


# ------------------------------------------------------------------ hybrid fusion
def test_ranks_are_one_based_best_first():
    assert ranks(torch.tensor([[0.1, 0.9, 0.5]])).tolist() == [[3, 1, 2]]


def test_reciprocal_rank_fusion_by_hand():
    a = torch.tensor([[3.0, 2.0, 1.0]])           # ranks 1, 2, 3
    b = torch.tensor([[1.0, 3.0, 2.0]])           # ranks 3, 1, 2
    fused = reciprocal_rank_fusion([a, b], k=1)
    expected = [1 / 2 + 1 / 4, 1 / 3 + 1 / 2, 1 / 4 + 1 / 3]
    assert fused[0].tolist() == pytest.approx(expected)


def test_mix_scores_ends_are_the_two_rankings():
    lexical = torch.tensor([[5.0, 0.0, 1.0]])
    dense = torch.tensor([[0.1, 0.9, 0.2]])
    assert mix_scores(lexical, dense, 0.0).argmax().item() == 0
    assert mix_scores(lexical, dense, 1.0).argmax().item() == 1
    torch.testing.assert_close(mix_scores(lexical, dense, 0.0), standardize_rows(lexical))


def test_hybrid_bad_input():
    with pytest.raises(ValueError, match="same shape"):
        reciprocal_rank_fusion([torch.zeros(2, 3), torch.zeros(2, 4)])
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        mix_scores(torch.zeros(1, 2), torch.zeros(1, 2), 1.5)


# ------------------------------------------------------------------ the bi-encoder
def test_biencoder_is_notebook_08s_encoder_with_mean_pooling():
    torch.manual_seed(0)
    model = BiEncoder(50, width=16, layers=1, heads=2, max_len=8)
    assert isinstance(model.encoder, TextEncoder) and model.encoder.pooling == "mean"
    assert model(torch.tensor([[2, 3, 4], [5, 0, 0]])).shape == (2, 16)


def test_biencoder_ignores_padding():
    torch.manual_seed(0)
    model = BiEncoder(50, width=16, layers=1, heads=2, max_len=8).eval()
    short = model(torch.tensor([[2, 3, 4]]))
    padded = model(torch.tensor([[2, 3, 4, 0, 0]]))
    torch.testing.assert_close(short, padded, atol=1e-5, rtol=1e-5)


def test_encode_texts_keeps_the_order_and_unit_length():
    tok = SubwordTokenizer.train(TEXTS, vocab_size=200, min_frequency=1)
    torch.manual_seed(0)
    model = BiEncoder(tok.vocab_size, width=16, layers=1, heads=2, max_len=16).eval()
    texts = ["a much longer text about the cumulative sum of elements", "mean", "the cumulative product"]
    emb = encode_texts(model, tok, texts, max_len=16, batch_size=2)
    one_by_one = torch.cat([torch.nn.functional.normalize(model(tok([t], max_len=16)), dim=1) for t in texts])
    torch.testing.assert_close(emb, one_by_one, atol=1e-5, rtol=1e-5)
    assert emb.norm(dim=1).sub(1).abs().max() < 1e-5


def test_biencoder_needs_a_layer():
    with pytest.raises(ValueError, match="at least one Transformer layer"):
        BiEncoder(50, layers=0)


def test_word_tokenizer_still_works_from_the_package():
    assert Tokenizer.from_texts(["a red circle"]).vocab_size == 5


# ------------------------------------------------------------------ optional downloads, never required
def test_paraphrase_set_reports_why_it_is_missing(monkeypatch):
    import sys
    from contrastive_lab.text.corpus import load_paraphrase_set

    monkeypatch.setitem(sys.modules, "datasets", None)          # as if not installed
    pairs, reason = load_paraphrase_set()
    assert pairs is None and "datasets" in reason


def test_paraphrase_set_through_a_loader(monkeypatch):
    import sys
    import types
    from contrastive_lab.text.corpus import load_paraphrase_set

    fake = types.SimpleNamespace(load_dataset=lambda name, split: {
        "sentence1": ["a cat sits"], "sentence2": ["a cat is sitting"], "score": [0.9]})
    monkeypatch.setitem(sys.modules, "datasets", fake)
    assert load_paraphrase_set() == ([("a cat sits", "a cat is sitting", 0.9)], "")

    def offline(name, split):
        raise ConnectionError("no network")
    monkeypatch.setitem(sys.modules, "datasets", types.SimpleNamespace(load_dataset=offline))
    pairs, reason = load_paraphrase_set()
    assert pairs is None and "ConnectionError" in reason

