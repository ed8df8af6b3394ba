"""Sentence-BERT training pieces: the MNRL loss, hard-negative mining, length batches, a tiny run."""
import math

import pytest
import torch

from contrastive_lab import validate
from contrastive_lab.device import count_host_syncs
from contrastive_lab.losses import info_nce, multiple_negatives_ranking_loss
from contrastive_lab.methods.sentence_bert import (length_batches, mine_hard_negatives, mnrl_step,
                                                   sentence_settings, train_biencoder)
from contrastive_lab.profiles import get_profile
from contrastive_lab.text.biencoder import BiEncoder, encode_texts
from contrastive_lab.text.subword import SubwordTokenizer
from conftest import unit


# ------------------------------------------------------------------ the loss
def test_mnrl_is_info_nce_with_temperature_one_over_scale():
    gen = torch.Generator().manual_seed(0)
    q, d = torch.randn(8, 16, generator=gen), torch.randn(8, 16, generator=gen)
    torch.testing.assert_close(multiple_negatives_ranking_loss(q, d, scale=20.0), info_nce(q, d, temperature=0.05))


def test_mnrl_with_a_hard_negative_by_hand():
    # two queries on the unit circle; documents and hard negatives at known angles, scale 1
    q = torch.tensor([unit(0), unit(90)])
    d = torch.tensor([unit(0), unit(90)])
    h = torch.tensor([unit(90), unit(0)])       # each query's hard negative is the other's answer
    # query 0 candidates (d0, d1, h0, h1): cos 1, 0, 0, 1 → −log e / (2e + 2)
    expected = -math.log(math.e / (2 * math.e + 2))
    assert multiple_negatives_ranking_loss(q, d, h, scale=1.0).item() == pytest.approx(expected)


def test_mnrl_at_equal_similarities_is_log_of_the_candidates():
    same = torch.ones(6, 4)
    assert multiple_negatives_ranking_loss(same, same).item() == pytest.approx(math.log(6))
    assert multiple_negatives_ranking_loss(same, same, same).item() == pytest.approx(math.log(12))


def test_symmetric_mnrl_averages_both_directions():
    gen = torch.Generator().manual_seed(0)
    q, d = torch.randn(8, 16, generator=gen), torch.randn(8, 16, generator=gen)
    logits = 20.0 * torch.nn.functional.normalize(q, dim=1) @ torch.nn.functional.normalize(d, dim=1).T
    target = torch.arange(8)
    by_hand = (torch.nn.functional.cross_entropy(logits, target) + torch.nn.functional.cross_entropy(logits.T, target)) / 2
    torch.testing.assert_close(multiple_negatives_ranking_loss(q, d, symmetric=True), by_hand)


def test_symmetric_mnrl_with_a_hard_negative_by_hand():
    # as above: query 0's candidates (d0, d1, h0, h1) have cos 1, 0, 0, 1; document 0's (q0, q1): 1, 0
    q = torch.tensor([unit(0), unit(90)])
    d = torch.tensor([unit(0), unit(90)])
    h = torch.tensor([unit(90), unit(0)])
    forward = -math.log(math.e / (2 * math.e + 2))
    backward = -math.log(math.e / (math.e + 1))            # hard negatives are documents: not in this half
    loss = multiple_negatives_ranking_loss(q, d, h, scale=1.0, symmetric=True)
    assert loss.item() == pytest.approx((forward + backward) / 2)
    same = torch.ones(6, 4)
    assert multiple_negatives_ranking_loss(same, same, same, symmetric=True).item() == pytest.approx(
        (math.log(12) + math.log(6)) / 2)


def test_mnrl_stays_float32_under_bf16_autocast():
    # aligned pairs (the case where a bf16 similarity matrix shows its error)
    gen = torch.Generator().manual_seed(0)
    q = torch.randn(64, 32, generator=gen)
    d = q + 0.3 * torch.randn(64, 32, generator=gen)
    for symmetric in (False, True):
        exact = multiple_negatives_ranking_loss(q, d, symmetric=symmetric)
        with torch.autocast("cpu", dtype=torch.bfloat16):
            under = multiple_negatives_ranking_loss(q, d, symmetric=symmetric)
        assert under.dtype == torch.float32
        assert under.item() == pytest.approx(exact.item(), rel=1e-5)


def test_mnrl_bad_input():
    with pytest.raises(ValueError, match="same shape"):
        multiple_negatives_ranking_loss(torch.randn(4, 8), torch.randn(4, 6))
    with pytest.raises(ValueError, match="scale must be > 0"):
        multiple_negatives_ranking_loss(torch.randn(4, 8), torch.randn(4, 8), scale=0.0)


# ------------------------------------------------------------------ mining and batches
def test_mine_hard_negatives_takes_the_best_wrong_document():
    scores = torch.tensor([[9.0, 5.0, 7.0],
                           [1.0, 9.0, 2.0],
                           [3.0, 8.0, 9.0]])
    assert mine_hard_negatives(scores).tolist() == [2, 2, 1]
    exclude = torch.tensor([[False, False, True], [False, False, False], [False, False, False]])
    assert mine_hard_negatives(scores, exclude=exclude).tolist() == [1, 2, 1]     # a known false negative skipped


def test_mine_hard_negatives_with_more_queries_than_documents():
    # queries 2 and 3 are second phrasings of documents 0 and 1
    scores = torch.tensor([[9.0, 5.0], [1.0, 9.0], [9.0, 8.0], [3.0, 2.0]])
    assert mine_hard_negatives(scores, answers=torch.tensor([0, 1, 0, 1])).tolist() == [1, 0, 1, 0]


def test_mine_hard_negatives_needs_answers_for_a_rectangle():
    with pytest.raises(ValueError, match="square"):
        mine_hard_negatives(torch.zeros(3, 4))


def test_length_batches_give_each_batch_its_longest_text():
    q_len, d_len = [3, 5, 2, 7], [10, 4, 8, 6]
    batches = list(length_batches(q_len, d_len, 2, torch.Generator().manual_seed(0), hard_negatives=[1, 0, 3, 2]))
    assert len(batches) == 2
    for idx, lq, ld, ln in batches:
        rows = idx.tolist()
        assert lq == max(q_len[i] for i in rows) and ld == max(d_len[i] for i in rows)
        assert ln == max(d_len[[1, 0, 3, 2][i]] for i in rows)
    assert sorted(i for b in batches for i in b[0].tolist()) == [0, 1, 2, 3]


def test_settings_come_from_the_profile():
    quick, full = sentence_settings(get_profile("quick")), sentence_settings(get_profile("full"))
    assert quick.layers <= 2 and quick.doc_len <= 64 and quick.doc_words < quick.doc_len
    assert full.layers > quick.layers and full.doc_len > quick.doc_len
    assert quick.replace(epochs=1).epochs == 1


# ------------------------------------------------------------------ a tiny run
PAIRS = [("Compute the cumulative sum.", "Return the running total of the elements along an axis."),
         ("Matrix or vector norm.", "The length of a vector, or the Frobenius size of a matrix."),
         ("Sort an array in place.", "Reorder the elements from the smallest to the largest."),
         ("Open a file for reading.", "Return a stream object for the file at the given path."),
         ("Split a string on a separator.", "Break the text into a list of pieces at each separator."),
         ("Compute the arithmetic mean.", "Add the values and divide by how many there are."),
         ("Draw random samples from a normal distribution.", "Gaussian random numbers with a mean and a spread."),
         ("Remove a directory tree.", "Delete the folder and every file below it.")]


def tiny_setup():
    queries, documents = [p[0] for p in PAIRS], [p[1] for p in PAIRS]
    tok = SubwordTokenizer.train(queries + documents, vocab_size=150, min_frequency=1)
    settings = sentence_settings(get_profile("quick")).replace(batch_size=8, width=32, heads=2, layers=1,
                                                              query_len=12, doc_len=16, dropout=0.0, warmup=0.1)
    torch.manual_seed(0)
    model = BiEncoder(tok.vocab_size, settings.width, settings.layers, settings.heads, settings.doc_len, 0.0)
    return queries, documents, tok, settings, model


def test_training_memorises_a_few_pairs():
    queries, documents, tok, settings, model = tiny_setup()
    history = train_biencoder(model, tok, queries, documents, settings, epochs=60, lr=3e-3, progress=False)
    assert history.loss[-1] < 0.25 * history.loss[0]
    sim = encode_texts(model, tok, queries, 12) @ encode_texts(model, tok, documents, 16).T
    assert (sim.argmax(1) == torch.arange(len(PAIRS))).float().mean() >= 0.75


def test_training_with_hard_negatives_runs():
    queries, documents, tok, settings, model = tiny_setup()
    hard = torch.tensor([1, 2, 3, 4, 5, 6, 7, 0])
    history = train_biencoder(model, tok, queries, documents, settings, hard_negatives=hard, epochs=2,
                              progress=False)
    assert len(history.loss) == 2 and all(math.isfinite(v) for v in history.loss)


def test_the_step_reads_no_tensor_on_the_host():
    queries, documents, tok, settings, model = tiny_setup()
    step = mnrl_step(model, tok(queries, max_len=12), tok(documents, max_len=16), 20.0,
                     hard_negatives=torch.tensor([1, 2, 3, 4, 5, 6, 7, 0]), symmetric=True)
    batch = next(length_batches(tok.lengths(queries, 12), tok.lengths(documents, 16), 8,
                                hard_negatives=[1, 2, 3, 4, 5, 6, 7, 0]))
    with validate.value_checks(False), count_host_syncs() as syncs:
        step(batch).backward()
    assert syncs.total == 0, dict(syncs.by_op)


def test_train_biencoder_needs_one_document_per_query():
    queries, documents, tok, settings, model = tiny_setup()
    with pytest.raises(ValueError, match="one document per query"):
        train_biencoder(model, tok, queries, documents[:-1], settings, progress=False)
