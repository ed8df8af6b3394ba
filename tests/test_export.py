"""Exporting an encoder: the head is dropped, outputs are unit length, loading is safe and strict."""
import os

import pytest
import torch
import torch.nn.functional as F

from contrastive_lab.export import (ExportedEncoder, Preprocessing, embed_corpus, export_encoder, load_exported,
                                    read_export_meta)
from contrastive_lab.methods.simclr import SimCLR
from contrastive_lab.models import SmallCNN

PREP = Preprocessing(image_size=(16, 16), channels=3)


def tiny_simclr(seed=0):
    torch.manual_seed(seed)
    model = SimCLR(SmallCNN((4, 8, 8, 16)), proj_dim=6)
    with torch.no_grad():                                  # move BatchNorm statistics off 0 / 1
        model(torch.rand(8, 3, 16, 16))
    return model


def build(meta):
    return SmallCNN((4, 8, 8, 16))


def test_export_drops_the_head_and_records_what_it_dropped(tmp_path):
    model = tiny_simclr()
    meta = export_encoder(model, tmp_path / "enc.pt", version="v1", preprocessing=PREP)
    assert meta["dropped"] == ["head"]
    assert meta["embedding_dim"] == 16                      # the encoder's 16, not the head's 6
    saved = torch.load(tmp_path / "enc.pt", weights_only=True)
    assert set(saved["state_dict"]) == set(model.encoder.state_dict())


def test_loaded_model_gives_the_encoders_features_normalised(tmp_path):
    model = tiny_simclr()
    export_encoder(model, tmp_path / "enc.pt", version="v1", preprocessing=PREP)
    served = load_exported(tmp_path / "enc.pt", build)
    x = torch.rand(5, 3, 16, 16)
    model.eval()
    with torch.no_grad():
        want = F.normalize(model.encoder(x), dim=1)
        got = served(x)
    torch.testing.assert_close(got, want)
    torch.testing.assert_close(got.norm(dim=1), torch.ones(5))
    assert served.version == "v1" and served.embedding_dim == 16


def test_normalize_false_reproduces_the_export_bug(tmp_path):
    model = tiny_simclr()
    export_encoder(model, tmp_path / "enc.pt", version="v1", preprocessing=PREP, normalize=False)
    served = load_exported(tmp_path / "enc.pt", build)
    with torch.no_grad():
        norms = served(torch.rand(5, 3, 16, 16)).norm(dim=1)
    assert not torch.allclose(norms, torch.ones(5), atol=1e-3)


def test_preprocessing_mean_and_std_are_applied(tmp_path):
    model = tiny_simclr()
    prep = Preprocessing((16, 16), 3, mean=(0.5, 0.5, 0.5), std=(0.25, 0.25, 0.25))
    export_encoder(model, tmp_path / "enc.pt", version="v1", preprocessing=prep)
    served = load_exported(tmp_path / "enc.pt", build)
    x = torch.rand(4, 3, 16, 16)
    model.eval()
    with torch.no_grad():
        torch.testing.assert_close(served(x), F.normalize(model.encoder((x - 0.5) / 0.25), dim=1))


def test_wrong_image_shape_names_the_expected_one(tmp_path):
    export_encoder(tiny_simclr(), tmp_path / "enc.pt", version="v1", preprocessing=PREP)
    served = load_exported(tmp_path / "enc.pt", build)
    with pytest.raises(ValueError, match=r"expects images \(N, 3, 16, 16\)"):
        served(torch.rand(2, 3, 32, 32))


def test_loading_into_another_architecture_fails_clearly(tmp_path):
    export_encoder(tiny_simclr(), tmp_path / "enc.pt", version="v1", preprocessing=PREP)
    with pytest.raises(ValueError, match="do not fit the module"):
        load_exported(tmp_path / "enc.pt", lambda meta: SmallCNN((4, 8, 8, 32)))


def test_a_file_that_is_not_an_export_is_refused(tmp_path):
    torch.save({"weights": torch.zeros(3)}, tmp_path / "other.pt")
    with pytest.raises(ValueError, match="not an exported encoder"):
        read_export_meta(tmp_path / "other.pt")


def test_version_is_required(tmp_path):
    with pytest.raises(ValueError, match="version"):
        export_encoder(tiny_simclr(), tmp_path / "enc.pt", version="", preprocessing=PREP)


def test_a_failed_write_leaves_no_file_behind(tmp_path, monkeypatch):
    def broken_save(obj, f):
        with open(f, "wb") as fh:
            fh.write(b"half")
        raise OSError("disk full")
    monkeypatch.setattr(torch, "save", broken_save)
    with pytest.raises(OSError):
        export_encoder(tiny_simclr(), tmp_path / "enc.pt", version="v1", preprocessing=PREP)
    assert os.listdir(tmp_path) == []


def test_served_model_stays_in_eval_mode(tmp_path):
    export_encoder(tiny_simclr(), tmp_path / "enc.pt", version="v1", preprocessing=PREP)
    served = load_exported(tmp_path / "enc.pt", build)
    served.train()
    assert not served.training and not served.encoder.training


def test_embed_corpus_in_batches_equals_one_pass(tmp_path):
    export_encoder(tiny_simclr(), tmp_path / "enc.pt", version="v1", preprocessing=PREP)
    served = load_exported(tmp_path / "enc.pt", build)
    x = torch.rand(23, 3, 16, 16)
    with torch.no_grad():
        whole = served(x)
    torch.testing.assert_close(embed_corpus(served, x, batch_size=5, progress=False), whole)
    assert isinstance(served, ExportedEncoder)
