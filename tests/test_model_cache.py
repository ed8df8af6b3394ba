"""train_or_load: trains once, loads afterwards, never serves a model trained otherwise."""
import importlib
import json
import sys

import pytest
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


# ---------------------------------------------------------------- a cached model is deleted only when it is corrupt
def cached_toy(folder):
    """A toy model trained into the cache: (calls, build, train, the cache's file names)."""
    calls = []
    build, train = make_run(calls)
    train_or_load("toy", {"lr": 0.1}, build, train, folder=folder)
    return calls, build, train, sorted(p.name for p in folder.iterdir())


def test_a_device_this_machine_lacks_is_an_error_and_the_cache_is_kept(tmp_path):
    import pytest

    calls, build, train, files = cached_toy(tmp_path)
    with pytest.raises(ValueError, match="cannot move the cached model to device 'cuda:3'.*the cached file is kept"):
        train_or_load("toy", {"lr": 0.1}, build, train, folder=tmp_path, device="cuda:3")
    assert sorted(p.name for p in tmp_path.iterdir()) == files and calls == [1]
    train_or_load("toy", {"lr": 0.1}, build, train, folder=tmp_path, device="cpu")
    assert calls == [1]                                      # still served


def test_a_build_of_another_architecture_is_an_error_and_the_cache_is_kept(tmp_path):
    import pytest

    calls, _, train, files = cached_toy(tmp_path)
    with pytest.raises(ValueError, match="does not fit the module build\\(\\) returns.*the cached file is kept"):
        train_or_load("toy", {"lr": 0.1}, lambda: nn.Linear(3, 5), train, folder=tmp_path)
    assert sorted(p.name for p in tmp_path.iterdir()) == files and calls == [1]


def test_a_manifest_and_weights_from_two_writers_cannot_mismatch(tmp_path, monkeypatch):
    """Writer A saves its weights; writer B then saves other weights and its manifest for the
    same key; A's manifest lands last. The reader finds the weights A's manifest names."""
    from contrastive_lab import model_cache

    real_write = model_cache.write_atomically

    def writer_b_gets_in_first(path, write):
        monkeypatch.setattr(model_cache, "write_atomically", real_write)

        def train_b(model):
            with torch.no_grad():
                model.weight.mul_(-3)                        # other weights than A's
            return History(loss=[9.0], epoch_loss=[9.0])
        train_or_load("toy", {"lr": 0.1}, lambda: nn.Linear(3, 2), train_b, folder=tmp_path, quiet=True)
        real_write(path, write)                              # then A's manifest

    calls = []
    build, train = make_run(calls)
    monkeypatch.setattr(model_cache, "write_atomically", writer_b_gets_in_first)
    first, _ = train_or_load("toy", {"lr": 0.1}, build, train, folder=tmp_path, quiet=True)
    again, history = train_or_load("toy", {"lr": 0.1}, build, train, folder=tmp_path)
    assert calls == [1]                                      # loaded, not thrown away and retrained
    torch.testing.assert_close(again.weight, first.weight)
    assert history.loss == [2.0, 1.0]


def test_a_name_with_folders_in_it_is_refused(tmp_path):
    import pytest

    build, train = make_run([])
    for name in ("../escaped", "a/b", ".hidden", ""):
        with pytest.raises(ValueError, match="the model's name must be letters"):
            train_or_load(name, {"lr": 0.1}, build, train, folder=tmp_path / "cache")
    assert not (tmp_path / "escaped-").exists() and list(tmp_path.glob("escaped*")) == []


def test_a_cache_folder_that_is_a_file_is_a_clear_error(tmp_path):
    import pytest

    (tmp_path / "models").write_text("not a folder")
    build, train = make_run([])
    with pytest.raises(ValueError, match="the model cache .*models is a file, not a folder"):
        train_or_load("toy", {"lr": 0.1}, build, train, folder=tmp_path / "models")


def test_the_course_models_key_holds_the_data_itself():
    """Two data sets of the same name and sizes (another seed) get other cache keys."""
    from contrastive_lab.data import load_image_dataset
    from contrastive_lab.methods.course_models import _data_settings

    a = load_image_dataset("cluttered_digits", n_train=40, n_test=8, n_val=8, seed=0)
    b = load_image_dataset("cluttered_digits", n_train=40, n_test=8, n_val=8, seed=1)
    again = load_image_dataset("cluttered_digits", n_train=40, n_test=8, n_val=8, seed=0)
    assert cache_key("simclr", {"data": _data_settings(a)}) != cache_key("simclr", {"data": _data_settings(b)})
    assert cache_key("simclr", {"data": _data_settings(a)}) == cache_key("simclr", {"data": _data_settings(again)})


# ---------------------------------------------------------------- the code in the key
TOY_PACKAGE = {
    "__init__.py": '"""A toy package: a trains through b, b imports c inside a function, d is unrelated."""\n',
    "a.py": "from .b import step\n\n\ndef train(model):\n    return step(model)\n",
    "b.py": "def step(model):\n    from .c import scale   # a function-level import\n    return scale(model)\n",
    "c.py": '"""The scale."""\n\n\ndef scale(model):\n    return 2.0\n',
    "d.py": "def unrelated():\n    return 1\n",
}


@pytest.fixture
def toy(tmp_path, monkeypatch):
    """The toy package `cachetoy` written under tmp_path and made the package the cache hashes:
    (its folder, its module a). Its modules are forgotten after the test."""
    from contrastive_lab import code_version

    root = tmp_path / "cachetoy"
    root.mkdir()
    for name, text in TOY_PACKAGE.items():
        (root / name).write_text(text)
    monkeypatch.syspath_prepend(str(tmp_path))
    for name in [m for m in sys.modules if m.startswith("cachetoy")]:
        monkeypatch.delitem(sys.modules, name)
    monkeypatch.setattr(code_version, "PACKAGE_NAME", "cachetoy")
    monkeypatch.setattr(code_version, "PACKAGE_DIR", root)
    yield root, importlib.import_module("cachetoy.a")
    for name in [m for m in sys.modules if m.startswith("cachetoy")]:
        del sys.modules[name]


def test_the_code_version_covers_what_training_imports_even_indirectly(toy):
    from contrastive_lab.code_version import code_version

    root, a = toy
    version, modules = code_version(a.train)
    assert modules == ["cachetoy", "cachetoy.a", "cachetoy.b", "cachetoy.c"]      # d is not imported
    (root / "d.py").write_text("def unrelated():\n    return 2\n")
    assert code_version(a.train)[0] == version                                   # unrelated: same key
    (root / "c.py").write_text('"""The scale, said otherwise."""\n\n\ndef scale(model):  # a comment\n    return 2.0\n')
    assert code_version(a.train)[0] == version                                   # docstring, comment: same
    (root / "c.py").write_text('"""The scale."""\n\n\ndef scale(model):\n    return 3.0\n')
    assert code_version(a.train)[0] != version                                   # imported by b, by a: new key


def test_an_edit_to_what_training_imports_retrains_and_an_unrelated_one_does_not(toy, tmp_path):
    root, a = toy
    calls = []
    build, _ = make_run(calls)

    def train(model):                       # a notebook's function: keyed by the package code it calls
        a.train(model)
        calls.append(1)
        return History(loss=[1.0], epoch_loss=[1.0])

    train_or_load("toy", {"lr": 0.1}, build, train, folder=tmp_path / "cache", quiet=True)
    (root / "d.py").write_text("def unrelated():\n    return 3\n")
    train_or_load("toy", {"lr": 0.1}, build, train, folder=tmp_path / "cache", quiet=True)
    assert calls == [1]
    (root / "c.py").write_text("def scale(model):\n    return 5.0\n")
    train_or_load("toy", {"lr": 0.1}, build, train, folder=tmp_path / "cache", quiet=True)
    assert calls == [1, 1]
    manifests = [json.loads(p.read_text()) for p in (tmp_path / "cache").glob("toy-*.json")]
    assert all(m["code_modules"] == ["cachetoy", "cachetoy.a", "cachetoy.b", "cachetoy.c"] for m in manifests)


def test_the_course_models_are_keyed_by_their_training_code_only():
    from contrastive_lab.code_version import code_version
    from contrastive_lab.methods.course_models import course_simclr
    from contrastive_lab.methods.simclr import train_simclr

    _, modules = code_version(course_simclr)
    for needed in ("losses", "augment", "models", "train", "methods.simclr", "methods.views", "evaluate.knn"):
        assert f"contrastive_lab.{needed}" in modules, needed
    for apart in ("viz", "preflight", "course_timings", "exercises", "exercises.nb05", "production", "cli",
                  "evaluate.roc", "methods.clip", "text"):
        assert f"contrastive_lab.{apart}" not in modules, apart
    # a notebook's own train function is keyed by the package code it calls
    _, from_notebook = code_version(lambda model: train_simclr(model, None, None))
    assert "contrastive_lab.losses" in from_notebook and "contrastive_lab.viz" not in from_notebook
