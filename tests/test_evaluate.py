"""Metrics against values worked out by hand, and their bad-input errors."""
import math

import pytest
import torch
import torch.nn as nn

from contrastive_lab.evaluate import (alignment, knn_accuracy, linear_probe, linear_probe_features,
                                      raw_pixel_features, recall_at_k, uniformity)


def unit(deg):
    r = math.radians(deg)
    return [math.cos(r), math.sin(r)]


def test_knn_accuracy_by_hand():
    # class 0 around 0°, class 1 around 180°
    train = torch.tensor([unit(0), unit(10), unit(-10), unit(180), unit(170)])
    labels = torch.tensor([0, 0, 0, 1, 1])
    test = torch.tensor([unit(5), unit(175), unit(100)])
    # 1-NN: 5° → 0°/10° class 0; 175° → class 1; 100° → nearest 170° (70° away) → class 1
    assert knn_accuracy(train, labels, test, torch.tensor([0, 1, 1]), k=1) == pytest.approx(1.0)
    # 5-NN votes over all points: 3 × class 0 beat 2 × class 1 for every query
    assert knn_accuracy(train, labels, test, torch.tensor([0, 1, 1]), k=5) == pytest.approx(1 / 3)


def test_knn_tie_goes_to_the_more_similar_class():
    train = torch.tensor([unit(0), unit(90)])
    labels = torch.tensor([0, 1])
    assert knn_accuracy(train, labels, torch.tensor([unit(30)]), torch.tensor([0]), k=2) == 1.0
    assert knn_accuracy(train, labels, torch.tensor([unit(60)]), torch.tensor([1]), k=2) == 1.0


def test_knn_is_cosine_so_scale_does_not_matter():
    train, test = torch.randn(50, 8), torch.randn(20, 8)
    ytr, yte = torch.randint(0, 3, (50,)), torch.randint(0, 3, (20,))
    assert knn_accuracy(train, ytr, test, yte, 5) == knn_accuracy(7 * train, ytr, 0.1 * test, yte, 5)


def test_recall_at_k_by_hand():
    gallery = torch.tensor([unit(0), unit(90), unit(180)])
    g_labels = torch.tensor([0, 1, 0])
    queries = torch.tensor([unit(80), unit(100)])
    q_labels = torch.tensor([0, 1])
    # query 0 (label 0): ranking 90°(1), 0°(0) → miss@1, hit@2; query 1 (label 1): hit@1
    sets = dict(gallery_emb=gallery, gallery_labels=g_labels, query_emb=queries, query_labels=q_labels)
    assert recall_at_k(**sets, k=[1, 2]) == {1: 0.5, 2: 1.0}
    assert recall_at_k(**sets, k=1) == 0.5


def test_recall_at_k_defaults_to_k_1_and_accepts_k_up_to_the_gallery_size():
    gallery = torch.tensor([unit(0), unit(90), unit(180)])
    sets = dict(gallery_emb=gallery, gallery_labels=torch.tensor([0, 1, 0]),
                query_emb=torch.tensor([unit(80), unit(100)]), query_labels=torch.tensor([0, 1]))
    assert recall_at_k(**sets) == recall_at_k(**sets, k=1) == 0.5
    assert recall_at_k(**sets, k=3) == 1.0                          # k = G: every item retrieved
    with pytest.raises(ValueError, match=r"between 1 and 3 \(gallery size\), got 4"):
        recall_at_k(**sets, k=4)
    itself = dict(gallery_emb=gallery, gallery_labels=torch.tensor([0, 1, 0]),
                  query_emb=gallery, query_labels=torch.tensor([0, 1, 0]))
    # without itself a query has G − 1 = 2 items to retrieve: 180° finds 0° (label 0) at rank 2, 90° none
    assert recall_at_k(**itself, k=2, exclude_self=True) == pytest.approx(2 / 3)
    with pytest.raises(ValueError, match=r"between 1 and 2 \(gallery size\), got 3"):
        recall_at_k(**itself, k=3, exclude_self=True)


def test_recall_exclude_self():
    z = torch.tensor([unit(0), unit(5), unit(90)])
    y = torch.tensor([0, 1, 1])
    # without exclusion every point finds itself; with it, point 0 finds 5° (label 1): miss
    assert recall_at_k(gallery_emb=z, gallery_labels=y, query_emb=z, query_labels=y, k=1) == 1.0
    assert recall_at_k(gallery_emb=z, gallery_labels=y, query_emb=z, query_labels=y, k=1,
                       exclude_self=True) == pytest.approx(1 / 3)


def test_alignment_and_uniformity_by_hand():
    z1 = torch.tensor([unit(0), unit(90)])
    z2 = torch.tensor([unit(0), unit(270)])
    # distances 0 and 2 → mean of squares = (0 + 4) / 2
    assert alignment(z1, z2) == pytest.approx(2.0, abs=1e-5)
    # two antipodal points: ‖a − b‖² = 4 → log e^(−2·4) = −8
    assert uniformity(torch.tensor([unit(0), unit(180)])) == pytest.approx(-8.0, abs=1e-4)
    # collapsed points: every distance 0 → log 1 = 0
    assert uniformity(torch.tensor([unit(30)] * 5)) == pytest.approx(0.0, abs=1e-6)


def test_uniformity_prefers_spread_points():
    spread = torch.tensor([unit(a) for a in range(0, 360, 30)])
    bunched = torch.tensor([unit(a) for a in range(0, 36, 3)])
    assert uniformity(spread) < uniformity(bunched)


def test_non_normalized_vectors_are_refused():
    with pytest.raises(ValueError, match="must be L2-normalized"):
        uniformity(torch.tensor([[3.0, 0.0], [0.0, 1.0]]))
    with pytest.raises(ValueError, match="must be L2-normalized"):
        alignment(torch.tensor([[1.0, 0.0]]), torch.tensor([[2.0, 0.0]]))


def test_metric_bad_input_is_named():
    with pytest.raises(ValueError, match="k must be between 1 and"):
        knn_accuracy(torch.randn(3, 2), torch.zeros(3, dtype=torch.long), torch.randn(1, 2),
                     torch.zeros(1, dtype=torch.long), k=4)
    with pytest.raises(ValueError, match=r"train_labels of shape \(3,\)"):
        knn_accuracy(torch.randn(3, 2), torch.zeros(2, dtype=torch.long), torch.randn(1, 2),
                     torch.zeros(1, dtype=torch.long), k=1)
    with pytest.raises(ValueError, match="differ in dimension"):
        knn_accuracy(torch.randn(3, 2), torch.zeros(3, dtype=torch.long), torch.randn(1, 4),
                     torch.zeros(1, dtype=torch.long), k=1)


def test_logistic_regression_converges_to_scikit_learns_solution():
    """The same convex objective: sklearn's C is 1 / (l2 · N). Same weights, same predictions."""
    from sklearn.linear_model import LogisticRegression

    from contrastive_lab.evaluate import fit_logistic_regression

    g = torch.Generator().manual_seed(0)
    x = torch.randn(300, 6, generator=g)
    y = (x[:, :3] @ torch.tensor([1.0, -2.0, 0.5]) > 0).long() + (x[:, 3] > 1).long()   # 3 classes
    l2 = 1e-2
    clf, iterations, converged = fit_logistic_regression(x, y, 3, l2)
    ref = LogisticRegression(C=1 / (l2 * len(x)), tol=1e-10, max_iter=10_000).fit(x.double().numpy(), y.numpy())
    assert converged and iterations < 500
    ours = torch.softmax(clf(x), 1).detach()
    theirs = torch.tensor(ref.predict_proba(x.double().numpy()), dtype=torch.float32)
    torch.testing.assert_close(ours, theirs, atol=2e-3, rtol=0)
    assert torch.equal(ours.argmax(1), theirs.argmax(1))


def test_probe_chooses_its_penalty_on_validation_and_reports_it():
    """60 training samples of 50 weak features: the three penalties score differently on
    validation, and the middle one wins. Every fit redone by hand in the probe's recipe
    (standardize with the training statistics, strongest penalty first, warm starts)."""
    from contrastive_lab.evaluate import fit_logistic_regression

    g = torch.Generator().manual_seed(0)
    y = torch.randint(0, 4, (400,), generator=g)
    f = torch.randn(400, 50, generator=g) + torch.nn.functional.one_hot(y, 50).float()
    train, val, test = slice(0, 60), slice(200, 300), slice(300, 400)
    result = linear_probe_features(f[train], y[train], f[test], y[test], val_f=f[val], val_y=y[val],
                                   details=True)
    mean, std = f[train].mean(0), f[train].std(0) + 1e-6
    tr, va, te = ((f[part] - mean) / std for part in (train, val, test))
    warm, fitted, by_hand = None, {}, {}
    for l2 in (1e-1, 1e-2, 1e-3):
        warm = fitted[l2] = fit_logistic_regression(tr, y[train], 4, l2, init=warm)[0]
        by_hand[l2] = (warm(va).argmax(1) == y[val]).float().mean().item()
    assert result.val_accuracy == pytest.approx(by_hand)
    assert len(set(by_hand.values())) == 3 and result.l2 == 1e-2 == max(by_hand, key=by_hand.get)
    clf = fit_logistic_regression(tr, y[train], 4, 1e-2, init=fitted[1e-2])[0]
    assert result.accuracy == pytest.approx((clf(te).argmax(1) == y[test]).float().mean().item())
    assert result.converged
    few = linear_probe_features(f[:20], y[:20], f[300:], y[300:], pca_dim=40, details=True)
    assert few.converged                                       # fewer samples than components: capped


def test_probe_breaks_a_tie_towards_the_stronger_penalty():
    g = torch.Generator().manual_seed(1)
    y = torch.randint(0, 2, (200,), generator=g)
    f = torch.randn(200, 5, generator=g) + 4 * y[:, None].float()          # separable: every penalty scores 1.0
    result = linear_probe_features(f[:100], y[:100], f[150:], y[150:], val_f=f[100:150], val_y=y[100:150],
                                   details=True)
    assert set(result.val_accuracy.values()) == {1.0} and result.l2 == 1e-1


def test_principal_components_span_scikit_learns():
    from sklearn.decomposition import PCA

    from contrastive_lab.evaluate import principal_components

    g = torch.Generator().manual_seed(0)
    scales = torch.tensor([8.0, 6.0, 4.0, 3.0, 2.0] + [0.1] * 25)       # 5 strong directions, then a gap
    basis = torch.linalg.qr(torch.randn(30, 30, generator=g)).Q
    f = (torch.randn(200, 30, generator=g) * scales) @ basis.T + 3.0
    centre, v = principal_components(f, 5)
    ref = PCA(n_components=5).fit(f.double().numpy())
    torch.testing.assert_close(centre.double(), torch.tensor(ref.mean_), atol=1e-5, rtol=0)
    theirs = torch.tensor(ref.components_, dtype=torch.float32)             # (5, D) rows
    torch.testing.assert_close(v @ v.T, theirs.T @ theirs, atol=1e-3, rtol=0)   # the same subspace
    torch.testing.assert_close(v.T @ v, torch.eye(5), atol=1e-5, rtol=0)
    assert principal_components(f[:3], 5)[1].shape == (30, 3)              # no more than N components


def test_probe_with_pca_keeps_the_high_variance_directions():
    """The labels live in the two directions of largest variance, placed in the LAST columns;
    the first columns hold weak noise. PCA to 2 finds them; the first 2 columns would not."""
    g = torch.Generator().manual_seed(2)
    y = torch.randint(0, 2, (300,), generator=g)
    f = 0.1 * torch.randn(300, 20, generator=g)
    f[:, -1] += 6 * (2 * y.float() - 1) + torch.randn(300, generator=g)
    f[:, -2] += 4 * torch.randn(300, generator=g)
    pca = linear_probe_features(f[:200], y[:200], f[200:], y[200:], pca_dim=2)
    first_columns = linear_probe_features(f[:200, :2], y[:200], f[200:, :2], y[200:])
    assert pca > 0.95 and first_columns < 0.7


def test_linear_probe_learns_separable_features():
    g = torch.Generator().manual_seed(0)
    y = torch.randint(0, 2, (200,), generator=g)
    f = torch.randn(200, 5, generator=g) + 3 * y[:, None].float()
    assert linear_probe_features(f[:150], y[:150], f[150:], y[150:]) > 0.95


class Drifting(nn.Module):
    """A 'frozen' model whose BatchNorm statistics would change in train mode."""

    def __init__(self):
        super().__init__()
        self.net = nn.Sequential(nn.Flatten(), nn.Linear(12, 4))

    def forward(self, x):
        with torch.no_grad():
            self.net[1].bias.add_(1.0)          # a bug: the model edits itself
        return self.net(x)


def test_linear_probe_keeps_the_backbone_frozen():
    x, y = torch.rand(20, 3, 2, 2), torch.arange(20) % 2
    model = nn.Sequential(nn.Flatten(), nn.Linear(12, 4), nn.BatchNorm1d(4))
    before = {k: v.clone() for k, v in model.state_dict().items()}
    linear_probe(model, x, y, x, y)
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())
    with pytest.raises(RuntimeError, match="must stay frozen"):
        linear_probe(Drifting(), x, y, x, y)


def test_raw_pixel_features_flatten_and_centre():
    f = raw_pixel_features(torch.rand(4, 3, 2, 2))
    assert f.shape == (4, 12)
    torch.testing.assert_close(f.mean(1), torch.zeros(4), atol=1e-6, rtol=0)
