"""The served encoder enforces what its export recorded; a bad export is refused when written or loaded.

Each test is a case of the reliability probe (shared/reviews/reliability.md, row numbers in the names)."""
import os

import pytest
import torch

from contrastive_lab.export import Preprocessing, embed_corpus, export_encoder, load_exported, read_export_meta
from contrastive_lab.integrity import CorruptFileError, UnsafeFileError, payload_sha256
from contrastive_lab.methods.simclr import SimCLR
from contrastive_lab.models import SmallCNN
from contrastive_lab.validate import value_checks

PREP = Preprocessing(image_size=(16, 16), channels=3)


def tiny_simclr():
    torch.manual_seed(0)
    return SimCLR(SmallCNN((4, 8, 8, 16)), proj_dim=6)


def build(meta):
    return SmallCNN((4, 8, 8, 16))


@pytest.fixture
def export(tmp_path):
    path = tmp_path / "encoder-v1.pt"
    export_encoder(tiny_simclr(), path, version="v1", preprocessing=PREP)
    return path


@pytest.fixture
def served(export):
    return load_exported(export, build)


# ---------------------------------------------------------------- the served model
def test_row_91_uint8_images_are_refused_with_the_fix(served):
    with pytest.raises(ValueError, match=r"expects float images with values in \[0, 1\], got dtype torch.uint8; "
                                         r"convert them \(x.float\(\) / 255 for 8-bit pixels\)"):
        served(torch.randint(0, 256, (2, 3, 16, 16), dtype=torch.uint8))


def test_row_91_pixels_in_0_255_are_refused_with_the_fix(served):
    with pytest.raises(ValueError, match=r"expects pixel values in \[0, 1\].*got values from 0 to 255; they look "
                                         r"like 0-255 pixels: scale them to \[0, 1\]"):
        served(torch.randint(0, 256, (2, 3, 16, 16)).float())


def test_images_in_range_pass_and_slightly_outside_is_tolerated(served):
    x = torch.rand(2, 3, 16, 16)
    x[0, 0, 0, 0], x[1, 0, 0, 0] = 1.0 + 1e-5, -1e-5                 # float rounding after augmentation
    assert served(x).shape == (2, 16)
    with pytest.raises(ValueError, match="got values from -0.5"):
        served(x - 0.5)


def test_row_92_nan_or_inf_images_are_refused(served):
    for bad in (float("nan"), float("inf")):
        x = torch.rand(2, 3, 16, 16)
        x[1, 2, 3, 4] = bad
        with pytest.raises(ValueError, match="contain NaN or Inf"):
            served(x)


def test_the_value_check_follows_the_value_checks_switch(served):
    # the range and NaN checks read the images (a host read on a GPU): value_checks(False) skips them
    x = torch.rand(2, 3, 16, 16) * 255
    with value_checks(False):
        assert served(x).shape == (2, 16)
    with pytest.raises(ValueError, match="0-255 pixels"):
        served(x)


def test_a_recorded_value_range_other_than_0_1_is_enforced(tmp_path):
    prep = Preprocessing((16, 16), 3, value_range=(0.0, 255.0), mean=(127.5,) * 3, std=(64.0,) * 3)
    export_encoder(tiny_simclr(), tmp_path / "enc.pt", version="v1", preprocessing=prep)
    served = load_exported(tmp_path / "enc.pt", build)
    assert served(torch.rand(2, 3, 16, 16) * 255).shape == (2, 16)
    with pytest.raises(ValueError, match=r"expects pixel values in \[0, 255\].*scale them to \[0, 255\]$"):
        served(torch.rand(2, 3, 16, 16) * 300)


# ---------------------------------------------------------------- writing an export
@pytest.mark.parametrize("options, match", [
    ({"mean": (0.5, 0.5)}, r"mean must hold one finite number per channel \(3\)"),               # row 86
    ({"std": (0.0, 1.0, 1.0)}, "std must be > 0 for every channel"),                             # row 87
    ({"std": (1.0, float("nan"), 1.0)}, "std must hold one finite number per channel"),
    ({"value_range": (1.0, 0.0)}, "value_range must be"),
    ({"channels": 0}, "channels must be a whole number >= 1"),
])
def test_rows_86_87_bad_preprocessing_is_refused_when_it_is_made(options, match):
    with pytest.raises(ValueError, match=match):
        Preprocessing(**{"image_size": (16, 16), **options})


def test_row_102_normalize_must_be_a_bool(tmp_path):
    with pytest.raises(TypeError, match="normalize must be True or False, got 'no'"):
        export_encoder(tiny_simclr(), tmp_path / "enc.pt", version="v1", preprocessing=PREP, normalize="no")


def test_rows_88_89_export_paths_without_extension_or_under_a_file(tmp_path):
    export_encoder(tiny_simclr(), tmp_path / "encoder", version="v1", preprocessing=PREP)
    assert load_exported(tmp_path / "encoder", build).version == "v1"
    (tmp_path / "enc.pt").write_text("a file")
    with pytest.raises(NotADirectoryError, match="enc.pt is a file, not a folder"):
        export_encoder(tiny_simclr(), tmp_path / "enc.pt" / "sub.pt", version="v1", preprocessing=PREP)
    assert sorted(os.listdir(tmp_path)) == ["enc.pt", "encoder"]


# ---------------------------------------------------------------- loading an export
def test_row_97_a_flipped_weight_bit_is_refused_naming_the_file(export):
    data = bytearray(export.read_bytes())
    weight = torch.load(export, weights_only=True)["state_dict"]
    first = next(t for t in weight.values() if t.dtype == torch.float32 and t.numel() >= 4)
    offset = bytes(data).find(first.numpy().tobytes()[:16])
    assert offset > 0
    data[offset + 3] ^= 0x40
    export.write_bytes(bytes(data))
    with pytest.raises(CorruptFileError, match="encoder-v1.pt is damaged: its SHA-256 checksum does not match"):
        load_exported(export, build)


def test_row_96_a_file_cut_to_a_tenth_names_the_file(export):
    data = export.read_bytes()
    export.write_bytes(data[:len(data) // 10])
    with pytest.raises(CorruptFileError, match="encoder-v1.pt is damaged or is not an exported encoder"):
        load_exported(export, build)


def _rewrite(path, change):
    payload = torch.load(path, weights_only=True)
    payload.pop("sha256")
    change(payload)
    torch.save({**payload, "sha256": payload_sha256(payload)}, path)


@pytest.mark.parametrize("change, match", [
    (lambda p: p.pop("preprocessing"), "it has no 'preprocessing'"),                                     # row 100
    (lambda p: p.update(normalize="no"), r"invalid 'normalize': 'no' \(expected a bool\)"),             # row 102
    (lambda p: p.update(embedding_dim=999), "says embedding_dim = 999, but its weights give 16-dimensional"),  # 102
    (lambda p: p["preprocessing"].update(std=[0.0, 1.0, 1.0]), "std must be > 0"),                      # row 87
    (lambda p: p["preprocessing"].update(mean=[0.0, 0.0]), "mean must hold one finite number per channel"),  # 86
])
def test_rows_86_87_100_102_the_recorded_metadata_must_be_whole_and_consistent(export, change, match):
    _rewrite(export, change)
    with pytest.raises(CorruptFileError, match=match):
        load_exported(export, build)


def test_row_100_a_builder_missing_an_architecture_key_is_explained(tmp_path):
    export_encoder(tiny_simclr(), tmp_path / "enc.pt", version="v1", preprocessing=PREP)
    with pytest.raises(ValueError, match=r"its architecture \{\} has no 'backbone'"):
        load_exported(tmp_path / "enc.pt", lambda meta: meta["architecture"]["backbone"])


def test_row_103_a_planted_pickle_is_refused_without_advising_an_unsafe_load(tmp_path):
    class Planted:
        def __reduce__(self):
            return (print, ("planted code ran",))

    torch.save({"format": "contrastive-lab/encoder", "version": Planted()}, tmp_path / "planted.pt")
    for read in (read_export_meta, lambda p: load_exported(p, build)):
        with pytest.raises(UnsafeFileError) as caught:
            read(tmp_path / "planted.pt")
        assert "weights_only" not in str(caught.value)


# ---------------------------------------------------------------- embed_corpus
def test_row_93_embed_corpus_refuses_an_empty_corpus_and_batch_size_0(served):
    with pytest.raises(ValueError, match=r"images is empty \(shape \(0, 3, 16, 16\)\): nothing to embed"):
        embed_corpus(served, torch.zeros(0, 3, 16, 16), progress=False)
    with pytest.raises(ValueError, match="batch_size must be a whole number >= 1, got 0"):
        embed_corpus(served, torch.rand(2, 3, 16, 16), batch_size=0, progress=False)
