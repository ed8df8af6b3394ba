"""Generated glyph identities: split by identity, deterministic, and the Omniglot fallback."""
import pytest
import torch

from contrastive_lab.data import glyphs
from contrastive_lab.data.glyphs import (OmniglotUnavailable, load_glyph_dataset, make_glyph_dataset,
                                         make_identities, render_glyphs)

SMALL = dict(n_train_ids=6, n_val_ids=3, n_test_ids=4, per_identity=3, eval_per_identity=2)


def test_shapes_range_and_labels():
    ds = make_glyph_dataset(**SMALL, seed=0)
    assert ds.train_x.shape == (18, 1, 28, 28) and ds.val_x.shape == (6, 1, 28, 28) and ds.test_x.shape == (8, 1, 28, 28)
    assert ds.train_x.dtype == torch.float32 and 0 <= ds.train_x.min() and ds.train_x.max() <= 1
    assert ds.train_y.tolist() == [0, 0, 0, 1, 1, 1, 2, 2, 2, 3, 3, 3, 4, 4, 4, 5, 5, 5]
    assert ds.val_y.tolist() == [6, 6, 7, 7, 8, 8]           # labels continue after the training identities
    assert ds.n_train_ids == 6


def test_splits_are_identity_disjoint():
    ds = make_glyph_dataset(**SMALL, seed=0)
    train, val, test = (set(y.tolist()) for y in (ds.train_y, ds.val_y, ds.test_y))
    assert not train & val and not train & test and not val & test
    # and the glyphs themselves differ: each split draws its strokes from its own seed
    a, _ = make_identities(4, seed=0)
    b, _ = make_identities(4, seed=2)
    assert not torch.allclose(a, b)


def test_deterministic_given_the_seed():
    a = make_glyph_dataset(**SMALL, seed=1)
    b = make_glyph_dataset(**SMALL, seed=1)
    c = make_glyph_dataset(**SMALL, seed=2)
    assert torch.equal(a.train_x, b.train_x) and torch.equal(a.test_x, b.test_x)
    assert not torch.equal(a.train_x, c.train_x)


def test_test_glyphs_do_not_depend_on_the_training_size():
    small = make_glyph_dataset(**SMALL, seed=0)
    bigger = make_glyph_dataset(**{**SMALL, "n_train_ids": 9}, seed=0)
    assert torch.equal(small.test_x, bigger.test_x)


def test_samples_of_one_identity_are_closer_than_samples_of_two():
    ctrl, present = make_identities(20, seed=0)
    x = render_glyphs(ctrl, present, torch.arange(20).repeat(2), seed=0, clutter=0.0, noise_std=0.0).flatten(1)
    first, second = x[:20], x[20:]
    same = torch.nn.functional.cosine_similarity(first, second).mean()
    other = torch.nn.functional.cosine_similarity(first, second.roll(1, 0)).mean()
    assert same > other + 0.1


def test_every_identity_has_two_to_four_strokes():
    _, present = make_identities(200, seed=0)
    counts = present.sum(1)
    assert counts.min() == 2 and counts.max() == 4


def test_omniglot_falls_back_in_one_line_when_the_download_is_blocked(monkeypatch, tmp_path, capsys):
    import torchvision.datasets.omniglot as tv_omniglot

    def blocked(*args, **kwargs):
        raise OSError("network is unreachable")

    monkeypatch.setenv("CLAB_DATA_DIR", str(tmp_path))
    monkeypatch.setattr(tv_omniglot, "download_and_extract_archive", blocked)
    with pytest.raises(OmniglotUnavailable, match="could not load Omniglot .*network is unreachable"):
        glyphs.omniglot_images(background=True)
    ds = load_glyph_dataset("omniglot", **SMALL)
    out = capsys.readouterr().out
    assert out.count("\n") == 1 and "using the offline generated glyphs instead" in out
    assert ds.name == "generated" and len(ds.train_y) == 18


def test_bad_input_gives_a_clear_error():
    with pytest.raises(ValueError, match="source must be one of"):
        load_glyph_dataset("mnist")
    with pytest.raises(ValueError, match="n_test_ids must be ≥ 2"):
        make_glyph_dataset(n_test_ids=1)
    with pytest.raises(ValueError, match="eval_per_identity must be ≥ 2"):
        make_glyph_dataset(eval_per_identity=1)
    with pytest.raises(ValueError, match="n .identities. must be positive"):
        make_identities(0)


def test_omniglot_split_carves_validation_characters_from_the_background_set(monkeypatch):
    # a stand-in for torchvision's Omniglot: 30 background and 12 evaluation characters, 20 drawings each
    def fake_images(background, root=None, size=28, download=True):
        n_chars = 30 if background else 12
        labels = torch.arange(n_chars).repeat_interleave(20)
        return torch.rand(len(labels), 1, size, size), labels

    monkeypatch.setattr(glyphs, "omniglot_images", fake_images)
    ds = load_glyph_dataset("omniglot", n_val_ids=5)
    assert ds.name == "omniglot"
    assert len(ds.train_y.unique()) == 25 and len(ds.val_y.unique()) == 5 and len(ds.test_y.unique()) == 12
    assert set(ds.train_y.tolist()) == set(range(25)) and set(ds.val_y.tolist()) == set(range(25, 30))
    assert set(ds.test_y.tolist()) == set(range(30, 42))
    assert len(ds.train_y) == 25 * 20 and len(ds.test_y) == 12 * 20
