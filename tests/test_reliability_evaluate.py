"""Metrics take labels of any integer dtype, refuse float or negative ones, and name every other mistake.

Each test is a case of the reliability probe (shared/reviews/reliability.md, row numbers in the names)."""
import time

import pytest
import torch

from contrastive_lab.evaluate import auc, far_frr, knn_accuracy, linear_probe_features, recall_at_k


def emb(n, d=8, seed=0):
    return torch.randn(n, d, generator=torch.Generator().manual_seed(seed))


def labels(n, c=3, seed=0):
    return torch.randint(c, (n,), generator=torch.Generator().manual_seed(seed))


@pytest.mark.parametrize("dtype", [torch.int8, torch.int16, torch.int32, torch.uint8])
def test_row_35_knn_labels_of_any_integer_dtype_give_the_int64_answer(dtype):
    tr, te, ytr, yte = emb(60), emb(20, seed=1), labels(60), labels(20, seed=1)
    want = knn_accuracy(tr, ytr, te, yte, k=5)
    assert knn_accuracy(tr, ytr.to(dtype), te, yte.to(dtype), k=5) == want


def test_row_35_knn_float_labels_are_refused_with_the_fix():
    with pytest.raises(ValueError, match=r"train_labels must be integer class ids, got dtype torch.float32; "
                                         r"convert whole-number labels with train_labels.long\(\)"):
        knn_accuracy(emb(10), labels(10).float(), emb(4, seed=1), labels(4, seed=1), k=3)


def test_row_36_knn_negative_labels_are_refused_with_the_fix():
    y = labels(10)
    y[3] = -1
    with pytest.raises(ValueError, match=r"train_labels must be class ids >= 0, got -1; leave out the unlabelled"):
        knn_accuracy(emb(10), y, emb(4, seed=1), labels(4, seed=1), k=3)


def test_row_40_a_huge_label_id_costs_no_memory_and_changes_nothing():
    tr, te = emb(2000, 16), emb(1024, 16, seed=1)
    ytr, yte = labels(2000, 10), labels(1024, 10, seed=1)
    want = knn_accuracy(tr, ytr, te, yte, k=20)
    big = {9: 10**9}                                   # a one-hot over 10**9 classes would need 80 TB
    ytr_big, yte_big = ytr.clone(), yte.clone()
    ytr_big[ytr == 9], yte_big[yte == 9] = big[9], big[9]
    start = time.perf_counter()
    assert knn_accuracy(tr, ytr_big, te, yte_big, k=20) == want
    assert time.perf_counter() - start < 30            # seconds, generous for a loaded machine (0.1 s idle)


def test_row_40_gaps_in_label_ids_do_not_change_the_vote():
    tr, te, ytr, yte = emb(80), emb(30, seed=1), labels(80, 4), labels(30, 4, seed=1)
    spread = torch.tensor([3, 70, 71, 500])
    for temperature in (None, 0.1):
        assert knn_accuracy(tr, spread[ytr], te, spread[yte], k=7, temperature=temperature) == \
            knn_accuracy(tr, ytr, te, yte, k=7, temperature=temperature)


def sets(n_query, n_gallery, gallery_d=8):
    """recall_at_k's four tensors, by name: n_query queries and a gallery of n_gallery."""
    return dict(gallery_emb=emb(n_gallery, d=gallery_d, seed=1), gallery_labels=labels(n_gallery, seed=1),
                query_emb=emb(n_query), query_labels=labels(n_query))


@pytest.mark.parametrize("k", [[], True, 2.0, [1, True], "1"])
def test_row_42_recall_k_must_be_whole_numbers(k):
    with pytest.raises(ValueError, match="k must be a whole number"):
        recall_at_k(**sets(10, 20), k=k)


def test_row_42_recall_k_as_a_tuple_gives_a_dict():
    assert set(recall_at_k(**sets(10, 20), k=(1, 5))) == {1, 5}


def test_row_43_recall_names_a_dimension_mismatch():
    with pytest.raises(ValueError, match="query and gallery embeddings differ in dimension: 8 vs 7"):
        recall_at_k(**sets(20, 50, gallery_d=7), k=1)


def probe(**overrides):
    args = dict(train_f=emb(40), train_y=labels(40), test_f=emb(12, seed=1), test_y=labels(12, seed=1))
    args.update(overrides)
    return linear_probe_features(**args)


def test_row_46_probe_float_labels_are_refused_and_int32_work():
    with pytest.raises(ValueError, match="train_labels must be integer class ids, got dtype torch.float32"):
        probe(train_y=labels(40).float())
    assert probe(train_y=labels(40).int(), test_y=labels(12, seed=1).to(torch.int16)) == probe()


def test_row_47_probe_negative_labels_are_refused():
    y = labels(12, seed=1)
    y[0] = -1
    with pytest.raises(ValueError, match="test_labels must be class ids >= 0, got -1"):
        probe(test_y=y)


def test_row_48_probe_names_a_dimension_mismatch():
    with pytest.raises(ValueError, match="train and test embeddings differ in dimension: 8 vs 7"):
        probe(test_f=emb(12, d=7, seed=1))
    with pytest.raises(ValueError, match="train and val embeddings differ in dimension: 8 vs 7"):
        probe(val_f=emb(10, d=7, seed=2), val_y=labels(10, seed=2))


def test_row_49_probe_needs_two_training_samples_and_a_non_negative_l2():
    with pytest.raises(ValueError, match="needs at least 2 training samples"):
        probe(train_f=emb(1), train_y=labels(1))
    with pytest.raises(ValueError, match=r"l2_grid must be a non-empty sequence of penalties >= 0, got \(-1\.0,\)"):
        probe(l2_grid=(-1.0,))


def test_row_50_probe_refuses_an_empty_l2_grid():
    with pytest.raises(ValueError, match=r"l2_grid must be a non-empty sequence of penalties >= 0, got \(\)"):
        probe(l2_grid=())


def test_row_51_val_features_without_labels_are_named():
    with pytest.raises(ValueError, match=r"give val_y \(val_labels\)"):
        probe(val_f=emb(10, seed=2))


def test_row_55_verification_same_must_be_bool_or_0_1():
    scores = torch.tensor([0.9, 0.8, 0.2, 0.1])
    with pytest.raises(ValueError, match="same must hold only True/False or 0/1"):
        auc(scores, torch.tensor([0.5, 0.2, 0.0, 0.0]))
    assert auc(scores, torch.tensor([1.0, 1.0, 0.0, 0.0])) == auc(scores, torch.tensor([True, True, False, False]))
    assert far_frr(scores, torch.tensor([1, 1, 0, 0]), 0.5) == (0.0, 0.0)
