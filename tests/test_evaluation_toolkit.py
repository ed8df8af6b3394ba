"""The evaluation toolkit of notebook 11, as worked examples: hand-computed cases, and the same
numbers from scikit-learn (KNeighborsClassifier, LogisticRegression, ndcg_score) on the same features."""
import math
import re

import numpy as np
import pytest
import torch
import torch.nn as nn

from conftest import circle, unit
from contrastive_lab.data import ImageDataset
from contrastive_lab.evaluate import (Table, alignment, choose_knn_k, evaluate_encoder, fit_logistic_regression,
                                      knn_accuracy, knn_monitor, label_retrieval_metrics, label_subset,
                                      linear_probe_features, ndcg_at_k, raw_pixel_features, recall_at_k,
                                      retrieval_monitor, uniformity)


def blobs(n=300, d=8, classes=3, spread=1.5, seed=0):
    """Gaussian clusters: (features (n, d), labels (n,))."""
    g = torch.Generator().manual_seed(seed)
    y = torch.arange(n) % classes
    centres = 2 * torch.randn(classes, d, generator=g)
    return centres[y] + spread * torch.randn(n, d, generator=g), y


# ---------------------------------------------------------------- k-NN with temperature-weighted votes
def test_weighted_vote_by_hand_overrules_the_majority():
    # query at 0°: one class-0 neighbour at 0° (cos 1), two class-1 neighbours at ±60° (cos 0.5)
    train = circle(0, 60, -60)
    labels = torch.tensor([0, 1, 1])
    query, truth = circle(0), torch.tensor([0])
    assert knn_accuracy(train, labels, query, truth, k=3) == 0.0                   # majority: 2 votes for class 1
    # τ = 0.1: class 0 weighs e^(1/0.1) = e^10; class 1 weighs 2·e^(0.5/0.1) = 2e^5 ≈ e^5.7 → class 0
    assert knn_accuracy(train, labels, query, truth, k=3, temperature=0.1) == 1.0
    # τ = 1: e^1 = 2.72 against 2·e^0.5 = 3.30 → class 1 again
    assert knn_accuracy(train, labels, query, truth, k=3, temperature=1.0) == 0.0


def test_default_vote_is_unchanged_and_agrees_with_scikit_learn():
    from sklearn.neighbors import KNeighborsClassifier

    x, y = blobs(400, classes=2, spread=3.0)               # two classes and an odd k: no tied votes
    tr, te = slice(0, 300), slice(300, 400)
    ref = KNeighborsClassifier(n_neighbors=7, metric="cosine", algorithm="brute").fit(x[tr].numpy(), y[tr].numpy())
    assert knn_accuracy(x[tr], y[tr], x[te], y[te], k=7) == pytest.approx(ref.score(x[te].numpy(), y[te].numpy()))


@pytest.mark.parametrize("temperature", [0.05, 0.5])
def test_weighted_vote_agrees_with_scikit_learn(temperature):
    from sklearn.neighbors import KNeighborsClassifier

    x, y = blobs(400, classes=4, spread=2.5, seed=1)
    tr, te = slice(0, 300), slice(300, 400)
    # scikit-learn's cosine distance is 1 − cos, so exp(cos / τ) ∝ exp(−distance / τ)
    ref = KNeighborsClassifier(n_neighbors=15, metric="cosine", algorithm="brute",
                               weights=lambda d: np.exp(-d / temperature)).fit(x[tr].numpy(), y[tr].numpy())
    ours = knn_accuracy(x[tr], y[tr], x[te], y[te], k=15, temperature=temperature)
    assert ours == pytest.approx(ref.score(x[te].numpy(), y[te].numpy()))


def test_a_tiny_temperature_is_one_nearest_neighbour():
    x, y = blobs(200, classes=3, spread=3.0, seed=2)
    assert knn_accuracy(x[:150], y[:150], x[150:], y[150:], k=30, temperature=1e-3) == \
        knn_accuracy(x[:150], y[:150], x[150:], y[150:], k=1)


@pytest.mark.parametrize("bad", [0, -0.1, float("inf"), "0.1"])
def test_bad_temperature_is_named(bad):
    x, y = blobs(20)
    with pytest.raises(ValueError, match="temperature must be None"):
        knn_accuracy(x, y, x, y, k=3, temperature=bad)


# ---------------------------------------------------------------- k chosen on validation
def test_choose_knn_k_by_hand():
    # two tight class-0 points at 0°/5° and three class-1 points near 90°; a class-0 query at 40°
    train = circle(0, 5, 80, 85, 90)
    labels = torch.tensor([0, 0, 1, 1, 1])
    val, val_y = circle(40), torch.tensor([0])
    # k=1: nearest is 5° (35° away; 80° is 40° away) → right; k=5: 3 votes to 2 for class 1 → wrong
    best, scores = choose_knn_k(train, labels, val, val_y, ks=(1, 5))
    assert scores == {1: 1.0, 5: 0.0} and best == 1


def test_choose_knn_k_breaks_ties_towards_the_smaller_k_and_skips_ks_too_large():
    x, y = blobs(60, classes=2, spread=0.1)                # so separable that every k scores 1.0
    best, scores = choose_knn_k(x[:40], y[:40], x[40:], y[40:], ks=(20, 5, 1, 100))
    assert set(scores) == {1, 5, 20} and best == 1
    with pytest.raises(ValueError, match="no k in"):
        choose_knn_k(x[:3], y[:3], x[40:], y[40:], ks=(5, 10))


# ---------------------------------------------------------------- class-balanced label fractions
def test_label_subset_is_class_balanced_and_without_repeats():
    labels = torch.tensor([0] * 500 + [1] * 300 + [2] * 200)         # unbalanced on purpose
    idx = label_subset(labels, 0.03, seed=0)                          # 3 % of 1,000 = 30 → 10 per class
    assert torch.bincount(labels[idx]).tolist() == [10, 10, 10]
    assert len(idx.unique()) == len(idx) and torch.equal(idx, idx.sort().values)
    assert torch.equal(idx, label_subset(labels, 0.03, seed=0))
    assert not torch.equal(idx, label_subset(labels, 0.03, seed=1))
    assert torch.equal(label_subset(labels, 1.0), torch.arange(1000))


def test_unbalanced_subset_keeps_the_fraction_and_tiny_fractions_keep_one_per_class():
    labels = torch.arange(1000) % 10
    assert len(label_subset(labels, 0.1, balanced=False)) == 100
    assert torch.bincount(labels[label_subset(labels, 0.001)]).tolist() == [1] * 10


@pytest.mark.parametrize("fraction", [0, 1.5, -0.1, True])
def test_bad_fraction_is_named(fraction):
    with pytest.raises(ValueError, match=r"fraction must be in \(0, 1\]"):
        label_subset(torch.arange(10) % 2, fraction)


def test_a_class_too_small_for_the_fraction_is_named():
    labels = torch.tensor([0] * 98 + [1] * 2)
    with pytest.raises(ValueError, match="class 1 has only 2 examples"):
        label_subset(labels, 0.1)                                    # 5 per class asked


# ---------------------------------------------------------------- the probe against scikit-learn
def test_probe_matches_scikit_learns_logistic_regression_on_the_same_features():
    """linear_probe_features standardizes with the training statistics and picks its L2 on
    validation; refit scikit-learn with that L2 (C = 1 / (l2 · N)) and the test accuracy agrees."""
    from sklearn.linear_model import LogisticRegression

    x, y = blobs(600, d=10, classes=4, spread=2.5, seed=3)
    tr, va, te = slice(0, 300), slice(300, 400), slice(400, 600)
    result = linear_probe_features(x[tr], y[tr], x[te], y[te], val_f=x[va], val_y=y[va], details=True)
    mean, std = x[tr].mean(0), x[tr].std(0) + 1e-6
    scale = lambda f: ((f - mean) / std).double().numpy()
    ref = LogisticRegression(C=1 / (result.l2 * 300), tol=1e-10, max_iter=10_000).fit(scale(x[tr]), y[tr].numpy())
    assert result.converged
    assert result.accuracy == pytest.approx(ref.score(scale(x[te]), y[te].numpy()), abs=1 / 200)


# ---------------------------------------------------------------- retrieval with labels as relevance
def test_label_retrieval_metrics_by_hand():
    gallery = circle(0, 30, 90, 180)
    g_labels = torch.tensor([1, 0, 1, 0])
    query, q_labels = circle(10), torch.tensor([0])
    # ranking by angle from 10°: 0° (label 1), 30° (0), 90° (1), 180° (0) → relevant at ranks 2 and 4
    m = label_retrieval_metrics(gallery_emb=gallery, gallery_labels=g_labels, query_emb=query, query_labels=q_labels,
                                ks=(1, 2), k_rank=4)
    assert m["R@1"] == 0.0 and m["R@2"] == 1.0
    assert m["MRR@4"] == pytest.approx(1 / 2)
    dcg = 1 / math.log2(3) + 1 / math.log2(5)
    ideal = 1 / math.log2(2) + 1 / math.log2(3)
    assert m["nDCG@4"] == pytest.approx(dcg / ideal)


def test_label_retrieval_agrees_with_scikit_learn_and_recall_at_k():
    from sklearn.metrics import ndcg_score

    x, y = blobs(160, d=6, classes=5, spread=2.0, seed=4)
    q, qy, g, gy = x[:40], y[:40], x[40:], y[40:]
    sets = dict(gallery_emb=g, gallery_labels=gy, query_emb=q, query_labels=qy)
    m = label_retrieval_metrics(**sets, ks=(1, 5), k_rank=10)
    scores = (torch.nn.functional.normalize(q, dim=1) @ torch.nn.functional.normalize(g, dim=1).T).numpy()
    relevance = (qy[:, None] == gy[None, :]).float().numpy()
    assert m["nDCG@10"] == pytest.approx(ndcg_score(relevance, scores, k=10))
    assert m["nDCG@10"] == pytest.approx(ndcg_at_k(scores, relevance, 10))
    assert m["R@1"] == pytest.approx(recall_at_k(**sets, k=1))
    assert m["R@5"] == pytest.approx(recall_at_k(**sets, k=5))


def test_retrieval_takes_its_four_sets_by_name_only():
    # four tensors of the same shapes in a row are easy to swap silently: a positional call is refused
    x, y = blobs(60, d=6, classes=3, seed=1)
    with pytest.raises(TypeError, match="positional"):
        recall_at_k(x[:20], y[:20], x[20:], y[20:], 1)
    with pytest.raises(TypeError, match="positional"):
        label_retrieval_metrics(x[:20], y[:20], x[20:], y[20:])
    # by name, the gallery is the set searched whatever the order of the keywords
    a = recall_at_k(query_emb=x[:20], query_labels=y[:20], gallery_emb=x[20:], gallery_labels=y[20:], k=1)
    b = recall_at_k(gallery_emb=x[20:], gallery_labels=y[20:], query_emb=x[:20], query_labels=y[:20], k=1)
    assert a == b


def test_exclude_self_removes_the_trivial_answer():
    z = circle(0, 5, 90, 95)
    y = torch.tensor([0, 1, 1, 0])
    itself = dict(gallery_emb=z, gallery_labels=y, query_emb=z, query_labels=y)
    assert label_retrieval_metrics(**itself, ks=(1,))["R@1"] == 1.0               # each finds itself
    # without itself: 0° → 5° (other label), 5° → 0° (other), 90° → 95° (other), 95° → 90° (other)
    assert label_retrieval_metrics(**itself, ks=(1,), exclude_self=True)["R@1"] == 0.0
    with pytest.raises(ValueError, match="same set"):
        label_retrieval_metrics(gallery_emb=z[:3], gallery_labels=y[:3], query_emb=z, query_labels=y,
                                exclude_self=True)


def test_retrieval_bad_input_is_named():
    with pytest.raises(ValueError, match="differ in dimension"):
        label_retrieval_metrics(gallery_emb=torch.randn(5, 2), gallery_labels=torch.zeros(5, dtype=torch.long),
                                query_emb=torch.randn(3, 4), query_labels=torch.zeros(3, dtype=torch.long))
    with pytest.raises(ValueError, match=r"gallery_labels of shape \(5,\)"):
        label_retrieval_metrics(gallery_emb=torch.randn(5, 4), gallery_labels=torch.zeros(4, dtype=torch.long),
                                query_emb=torch.randn(3, 4), query_labels=torch.zeros(3, dtype=torch.long))


# ---------------------------------------------------------------- the table
def test_table_prints_aligned_and_looks_rows_up():
    table = Table([{"encoder": "SimCLR", "probe": 0.6712, "k": 20},
                   {"encoder": "raw pixels", "probe": 0.118, "k": 5}])
    assert str(table) == ("encoder     probe   k\n"
                          "SimCLR      0.671  20\n"
                          "raw pixels  0.118   5")
    assert table.row("raw pixels")["k"] == 5 and table.column("probe") == [0.6712, 0.118]
    both = table + Table([{"encoder": "MAE", "probe": 0.3, "k": 1}])
    assert len(both) == 3 and both.column("encoder")[-1] == "MAE"
    two = Table([{"encoder": "a", "probe": 0.5}], digits=1, details={"a": "k=5"}) + \
        Table([{"encoder": "b", "probe": 0.25}], details={"b": "l2=0.01"})
    assert two.digits == 1 and two.details == {"a": "k=5", "b": "l2=0.01"}
    assert str(two) == "encoder  probe\na          0.5\nb          0.2"      # the left table's digits
    assert str(Table([{"name": "a"}, {"name": "long"}])) == "name\na\nlong"    # no trailing spaces


def test_table_errors_name_the_problem():
    with pytest.raises(ValueError, match="every row must have the columns"):
        Table([{"a": 1, "b": 2}, {"a": 1}])
    with pytest.raises(ValueError, match="at least one row"):
        Table([])
    table = Table([{"name": "x", "v": 1.0}])
    with pytest.raises(KeyError, match="no row 'y'"):
        table.row("y")
    with pytest.raises(KeyError, match="no column 'w'"):
        table.column("w")


# ---------------------------------------------------------------- evaluate_encoder
def tiny_dataset(seed=0):
    """Images whose class is the brightness of one colour channel: learnable, 3 classes."""
    g = torch.Generator().manual_seed(seed)

    def images(n):
        y = torch.arange(n) % 3
        x = 0.3 * torch.rand(n, 3, 8, 8, generator=g)
        x[torch.arange(n), y] += 0.6
        return x, y
    (tr_x, tr_y), (va_x, va_y), (te_x, te_y) = images(300), images(60), images(90)
    return ImageDataset("tiny", tr_x, tr_y, te_x, te_y, ("r", "g", "b"), va_x, va_y)


def channel_means(x):
    return x.mean((2, 3))


def test_evaluate_encoder_gives_one_row_with_every_metric():
    data = tiny_dataset()
    table = evaluate_encoder(channel_means, data, name="channel means", fractions=(0.1, 1.0))
    assert table.columns == ["encoder", "probe 10%", "probe 100%", "k-NN 10%", "k-NN 100%",
                             "R@1", "R@10", "MRR@10", "nDCG@10"]
    row = table.row("channel means")
    assert all(v == pytest.approx(1.0) for k, v in row.items() if k != "encoder")   # the features give the class away
    details = table.details["channel means"]
    assert details["dim"] == 3 and set(details["knn_k"]) == {0.1, 1.0}


def test_evaluate_encoder_probe_equals_the_probe_called_directly():
    data = tiny_dataset(1)
    table = evaluate_encoder(raw_pixel_features, data, name="raw", fractions=(1.0,))
    f = [raw_pixel_features(x) for x in (data.train_x, data.val_x, data.test_x)]
    direct = linear_probe_features(f[0], data.train_y, f[2], data.test_y, val_f=f[1], val_y=data.val_y)
    assert table.row("raw")["probe 100%"] == pytest.approx(direct)


class SelfEditing(nn.Module):
    """A broken encoder that changes its own weights when called."""

    def __init__(self):
        super().__init__()
        self.fc = nn.Linear(3 * 8 * 8, 4)

    def forward(self, x):
        with torch.no_grad():
            self.fc.bias.add_(0.01)
        return self.fc(x.flatten(1))


def test_evaluate_encoder_refuses_an_encoder_that_changes():
    with pytest.raises(RuntimeError, match="must stay frozen"):
        evaluate_encoder(SelfEditing(), tiny_dataset(), name="broken", fractions=(1.0,))


def test_evaluate_encoder_leaves_a_module_unchanged_and_in_its_mode():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Flatten(), nn.Linear(3 * 8 * 8, 6), nn.BatchNorm1d(6))
    model.train()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    evaluate_encoder(model, tiny_dataset(), name="mlp", fractions=(1.0,))
    assert model.training
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())


def test_evaluate_encoder_bad_input_is_named():
    data = tiny_dataset()
    no_val = ImageDataset("tiny", data.train_x, data.train_y, data.test_x, data.test_y, data.classes)
    with pytest.raises(ValueError, match="no validation split"):
        evaluate_encoder(channel_means, no_val, name="x")
    with pytest.raises(TypeError, match="must be an ImageDataset"):
        evaluate_encoder(channel_means, (data.train_x, data.train_y), name="x")
    with pytest.raises(TypeError, match="encoder must be an nn.Module or a function"):
        evaluate_encoder("simclr", data, name="x")


def test_fit_logistic_regression_is_the_same_on_one_thread():
    from contrastive_lab.evaluate import single_thread

    x, y = blobs(200, d=5, classes=3, seed=5)
    a, _, _ = fit_logistic_regression(x, y, 3, 1e-2)
    threads = torch.get_num_threads()
    with single_thread():
        assert torch.get_num_threads() == 1
        b, _, _ = fit_logistic_regression(x, y, 3, 1e-2)
    assert torch.get_num_threads() == threads
    torch.testing.assert_close(a.weight, b.weight, atol=1e-4, rtol=0)


# ---------------------------------------------------------------- monitors for fit(evaluate=...)
class Scale(nn.Module):
    """An 'encoder' that flattens 2×2 images and weighs each pixel by a weight the test can change."""

    def __init__(self):
        super().__init__()
        self.w = nn.Parameter(torch.ones(4))

    def forward(self, x):
        return self.w * x.flatten(1)


def images(n, seed):
    return torch.rand(n, 1, 2, 2, generator=torch.Generator().manual_seed(seed))


def test_knn_monitor_scores_the_encoder_as_it_is_when_called():
    enc = Scale()
    tr_x, te_x = images(30, 0), images(10, 1)
    tr_y, te_y = torch.arange(30) % 3, torch.arange(10) % 3
    monitor = knn_monitor(enc, tr_x, tr_y, te_x, te_y, k=5, name="kNN")
    before = knn_accuracy(tr_x.flatten(1), tr_y, te_x.flatten(1), te_y, 5)
    assert monitor() == {"kNN": before}
    w = torch.tensor([1.0, 0.0, 0.0, 3.0])
    with torch.no_grad():
        enc.w.copy_(w)                                  # the encoder trains on: the monitor sees it
    after = knn_accuracy(w * tr_x.flatten(1), tr_y, w * te_x.flatten(1), te_y, 5)
    assert after != before and monitor() == {"kNN": after}
    assert knn_monitor(enc, tr_x, tr_y, te_x, te_y)() == {
        "knn": knn_accuracy(w * tr_x.flatten(1), tr_y, w * te_x.flatten(1), te_y, 20)}


def test_retrieval_monitor_lets_each_image_query_the_others():
    enc = Scale()
    x, y = images(20, 2), torch.arange(20) % 4
    z = x.flatten(1)
    itself = dict(gallery_emb=z, gallery_labels=y, query_emb=z, query_labels=y)
    want = recall_at_k(**itself, k=[1, 5], exclude_self=True)
    assert retrieval_monitor(enc, x, y, ks=(1, 5), name="held-out")() == {"held-out R@1": want[1],
                                                                           "held-out R@5": want[5]}
    default = recall_at_k(**itself, k=[1, 10], exclude_self=True)
    assert retrieval_monitor(enc, x, y)() == {"val R@1": default[1], "val R@10": default[10]}


# ---------------------------------------------------------------- alignment and uniformity, details
def test_alignment_by_hand_on_unequal_distances_and_alpha():
    z1 = torch.tensor([unit(0), unit(0)])
    z2 = torch.tensor([unit(60), unit(180)])                     # distances 1 and 2
    assert alignment(z1, z2) == pytest.approx((1 + 4) / 2, abs=1e-5)
    assert alignment(z1, z2, alpha=1.0) == pytest.approx((1 + 2) / 2, abs=1e-5)


@pytest.mark.parametrize("call, words", [
    (lambda: alignment(torch.tensor([unit(0)]),
                                                                       torch.tensor([unit(0), unit(9)])),
     "expected z1 and z2 of the same shape"),
    (lambda: alignment(torch.tensor([[2.0, 0.0]]),
                                                                       torch.tensor([unit(0)])),
     "z1 must be L2-normalized"),
    (lambda: alignment(torch.tensor([unit(0)]),
                                                                       torch.tensor([[2.0, 0.0]])),
     "z2 must be L2-normalized"),
    (lambda: uniformity(torch.tensor(unit(0))),
     "expected z of shape (N, D)"),
    (lambda: uniformity(torch.tensor([[2.0, 0.0], unit(0)])),
     "z must be L2-normalized"),
    (lambda: uniformity(torch.tensor([unit(0)])),
     "uniformity needs at least 2 points"),
])
def test_alignment_and_uniformity_errors_name_the_argument(call, words):
    with pytest.raises(ValueError, match=re.escape(words)):
        call()
