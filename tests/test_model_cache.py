"""train_or_load: trains once, loads afterwards, never serves a model trained otherwise."""
import torch
import torch.nn as nn

from contrastive_lab.model_cache import cache_key, train_or_load
from contrastive_lab.train import History


def make_run(calls):
    def build():
        torch.manual_seed(0)
        return nn.Linear(3, 2)

    def train(model):
        calls.append(1)
        with torch.no_grad():
            model.weight.add_(1.0)                # "training" that is easy to recognise
        return History(loss=[2.0, 1.0], epoch_loss=[1.5], metrics={"knn": [(1, 0.5)]})
    return build, train


def test_trains_once_then_loads_the_same_weights(tmp_path, capsys):
    calls = []
    build, train = make_run(calls)
    first, h1 = train_or_load("toy", {"lr": 0.1}, build, train, folder=tmp_path)
    second, h2 = train_or_load("toy", {"lr": 0.1}, build, train, folder=tmp_path)
    assert calls == [1]
    torch.testing.assert_close(second.weight, first.weight)
    assert h2.metrics == {"knn": [(1, 0.5)]} and h2.loss == [2.0, 1.0]
    out = capsys.readouterr().out
    assert "toy: training (no cached model" in out and "toy: loaded the trained model from the cache" in out


def test_other_settings_are_trained_anew(tmp_path):
    calls = []
    build, train = make_run(calls)
    train_or_load("toy", {"lr": 0.1}, build, train, folder=tmp_path)
    train_or_load("toy", {"lr": 0.2}, build, train, folder=tmp_path)
    assert calls == [1, 1]
    assert cache_key("toy", {"lr": 0.1}) != cache_key("toy", {"lr": 0.2})


def test_a_run_under_another_seed_is_trained_anew(tmp_path, monkeypatch):
    calls = []
    build, train = make_run(calls)
    monkeypatch.delenv("CLAB_SEED", raising=False)
    train_or_load("toy", {"lr": 0.1}, build, train, folder=tmp_path)
    monkeypatch.setenv("CLAB_SEED", "1")
    train_or_load("toy", {"lr": 0.1}, build, train, folder=tmp_path)
    assert calls == [1, 1]


def test_a_corrupt_file_is_retrained_not_loaded(tmp_path, capsys):
    calls = []
    build, train = make_run(calls)
    train_or_load("toy", {"lr": 0.1}, build, train, folder=tmp_path)
    weights = next(tmp_path.glob("toy-*.pt"))
    weights.write_bytes(weights.read_bytes()[:-20] + b"x" * 20)
    model, _ = train_or_load("toy", {"lr": 0.1}, build, train, folder=tmp_path)
    assert calls == [1, 1]
    assert "checksum does not match" in capsys.readouterr().out
    assert torch.allclose(model.weight, build().weight + 1)
    assert sorted(p.suffix for p in tmp_path.iterdir()) == [".json", ".pt"]   # no temporary file left


def test_settings_must_be_plain_data(tmp_path):
    import pytest
    build, train = make_run([])
    with pytest.raises(TypeError, match="plain data"):
        train_or_load("toy", {"model": nn.Linear(1, 1)}, build, train, folder=tmp_path)


def test_compute_or_load_computes_once_and_checks_the_file(tmp_path, monkeypatch):
    from contrastive_lab.model_cache import compute_or_load
    calls = []

    def compute():
        calls.append(1)
        return {"emb": torch.arange(6.0).reshape(3, 2)}
    first = compute_or_load("emb", {"texts": "abc"}, compute, folder=tmp_path, quiet=True)
    monkeypatch.setenv("CLAB_SEED", "2")                          # embeddings do not depend on the seed
    second = compute_or_load("emb", {"texts": "abc"}, compute, folder=tmp_path, quiet=True)
    assert calls == [1] and torch.equal(first["emb"], second["emb"])
    stored = next(tmp_path.glob("emb-*.pt"))
    stored.write_bytes(stored.read_bytes()[:-8] + b"x" * 8)       # a corrupt copy is recomputed
    third = compute_or_load("emb", {"texts": "abc"}, compute, folder=tmp_path, quiet=True)
    assert calls == [1, 1] and torch.equal(third["emb"], first["emb"])
    compute_or_load("emb", {"texts": "abd"}, compute, folder=tmp_path, quiet=True)
    assert calls == [1, 1, 1]
