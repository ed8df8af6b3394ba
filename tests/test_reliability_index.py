"""The vector index refuses what would search wrongly: bad knobs, empty indexes, damaged or inconsistent files.

Each test is a case of the reliability probe (shared/reviews/reliability.md, row numbers in the names)."""
import numpy as np
import pytest
import torch
import torch.nn.functional as F

from contrastive_lab.index import IndexVersionError, build_index, load_index, save_index
from contrastive_lab.integrity import CorruptFileError, UnsafeFileError, payload_sha256


def random_unit(n, d=16, seed=0):
    return F.normalize(torch.randn(n, d, generator=torch.Generator().manual_seed(seed)), dim=1)


def test_row_62_too_few_vectors_to_train_ivf_is_explained():
    with pytest.raises(ValueError, match=r"could not train 'IVF64,Flat' on 30 vectors: Number of training points "
                                         r"\(30\) should be at least as large as number of clusters \(64\)\. An IVF"):
        build_index(random_unit(30), "IVF64,Flat", model_version="v1")
    with pytest.raises(ValueError, match="train_size must be a whole number at least 1, got 0"):
        build_index(random_unit(300), "IVF8,Flat", model_version="v1", train_size=0)


@pytest.mark.parametrize("value", [-5, 0, 2.5, True])
def test_row_63_ef_construction_must_be_a_positive_whole_number(value):
    with pytest.raises(ValueError, match="ef_construction must be a whole number at least 1"):
        build_index(random_unit(50), "HNSW8", model_version="v1", ef_construction=value)


@pytest.mark.parametrize("factory, knob", [("HNSW8", "efSearch"), ("IVF4,Flat", "nprobe")])
@pytest.mark.parametrize("value", [-1, 0, 2.5])
def test_rows_67_68_search_knobs_must_be_positive_whole_numbers(factory, knob, value):
    index = build_index(random_unit(300), factory, model_version="v1")
    with pytest.raises(ValueError, match=f"{knob} must be a whole number at least 1"):
        index.set(**{knob: value})
    assert knob not in index.params


@pytest.mark.parametrize("k", [2.5, True, "3"])
def test_row_65_k_must_be_a_whole_number(k):
    with pytest.raises(ValueError, match="k must be a whole number between 1 and the number of stored vectors"):
        build_index(random_unit(20), "Flat", model_version="v1").search(random_unit(2), k=k)


def test_row_70_searching_an_empty_index_is_an_error():
    index = build_index(random_unit(20), "Flat", model_version="v1")
    index.faiss.reset()
    with pytest.raises(ValueError, match="the index is empty: add vectors"):
        index.search(random_unit(2), k=1)


# ---------------------------------------------------------------- files
@pytest.fixture
def saved(tmp_path):
    path = tmp_path / "catalogue.index.pt"
    save_index(build_index(random_unit(300), "Flat", model_version="v1"), path)
    return path


@pytest.mark.parametrize("factory, knob", [("HNSW8", {"efSearch": 32}), ("IVF4,Flat", {"nprobe": 2}),
                                           ("IVF4,SQ8", {"nprobe": 2}), ("Flat", {})])
def test_save_without_an_extension_round_trips(tmp_path, factory, knob):
    index = build_index(random_unit(300), factory, model_version="v1").set(**knob)
    save_index(index, tmp_path / "catalogue")
    loaded = load_index(tmp_path / "catalogue", model_version="v1")
    assert loaded.params == knob
    queries = random_unit(5, seed=1)
    np.testing.assert_array_equal(loaded.search(queries, 3)[1], index.search(queries, 3)[1])


def test_rows_75_82_a_changed_byte_of_vector_data_is_refused(saved):
    data = bytearray(saved.read_bytes())
    vectors = random_unit(300).numpy().tobytes()
    offset = bytes(data).find(vectors[400:416])
    assert offset > 0
    data[offset] ^= 0x01
    saved.write_bytes(bytes(data))
    with pytest.raises(CorruptFileError, match="catalogue.index.pt is damaged: its SHA-256 checksum does not match"):
        load_index(saved, model_version="v1")


@pytest.mark.parametrize("cut", [0.5, 0.1, 0.0])
def test_row_72_a_truncated_or_empty_index_file_names_the_file(saved, cut):
    data = saved.read_bytes()
    saved.write_bytes(data[:int(len(data) * cut)])
    with pytest.raises(CorruptFileError, match=r"catalogue.index.pt is (damaged|empty)"):
        load_index(saved, model_version="v1")


def _rewrite(path, change):
    """Change the payload as a crafted file would, and store a matching checksum (so only the
    consistency checks stand between it and a search)."""
    payload = torch.load(path, weights_only=True)
    payload.pop("sha256")
    change(payload)
    torch.save({**payload, "sha256": payload_sha256(payload)}, path)


@pytest.mark.parametrize("change, match", [
    (lambda p: p["meta"].update(dim=8), "metadata says dim = 8 but the faiss index holds dim = 16"),           # 76
    (lambda p: p["meta"].update(count=10**6), "count = 1000000 but the faiss index holds count = 300"),        # 77
    (lambda p: p["meta"].update(extra=1), "its metadata has the keys"),                                         # 78
    (lambda p: p.pop("params"), "'meta', 'params' or 'faiss' is missing"),                                     # 78
    (lambda p: p.update(format_version=2), "format_version 2, this package reads 1"),                          # 79
    (lambda p: p["meta"].update(metric="l2"), "metadata says metric = 'l2'"),                                  # 80
    (lambda p: p["meta"].update(normalized="no"), r"meta\['normalized'\] must be a bool"),                     # 80
    (lambda p: p["meta"].update(factory="HNSW8"), "says 'HNSW8' but the faiss index is an IndexFlat"),
    (lambda p: p.update(faiss=p["faiss"][:100]), "faiss cannot read it"),                                      # 74
])
def test_rows_74_76_to_80_metadata_must_describe_the_faiss_index(saved, change, match):
    _rewrite(saved, change)
    with pytest.raises(CorruptFileError, match=match):
        load_index(saved, model_version="v1")


def test_row_80_an_index_said_to_hold_unit_vectors_must_hold_them(tmp_path):
    path = tmp_path / "raw.index.pt"
    save_index(build_index(random_unit(50) * 3, "Flat", model_version="v1", normalized=False), path)
    _rewrite(path, lambda p: p["meta"].update(normalized=True))
    with pytest.raises(CorruptFileError, match="says the vectors have unit length, but stored vectors do not"):
        load_index(path, model_version="v1")


def test_row_82_mutated_faiss_blobs_never_load_silently(saved):
    blob = torch.load(saved, weights_only=True)["faiss"].numpy()
    rng = np.random.default_rng(0)
    for _ in range(20):
        data = bytearray(saved.read_bytes())
        start = bytes(data).find(blob[:64].tobytes())
        assert start > 0
        data[start + int(rng.integers(len(blob)))] ^= 1 << int(rng.integers(8))
        mutated = saved.with_suffix(".mutated")
        mutated.write_bytes(bytes(data))
        with pytest.raises(CorruptFileError):
            load_index(mutated, model_version="v1")


def test_row_81_a_planted_pickle_is_refused_without_advising_an_unsafe_load(tmp_path):
    class Planted:
        def __reduce__(self):
            return (print, ("planted code ran",))

    torch.save({"format": "contrastive-lab/index", "meta": Planted()}, tmp_path / "planted.index.pt")
    with pytest.raises(UnsafeFileError) as caught:
        load_index(tmp_path / "planted.index.pt", model_version="v1")
    assert "weights_only" not in str(caught.value) and "planted.index.pt" in str(caught.value)


def test_an_index_of_another_version_is_still_refused_by_version_first(saved):
    with pytest.raises(IndexVersionError, match="holds vectors of model 'v1', but you asked for model 'v2'"):
        load_index(saved, model_version="v2")


def test_an_index_grown_by_add_saves_and_loads_with_its_new_count(tmp_path):
    index = build_index(random_unit(20), "Flat", model_version="v1")
    index.add(random_unit(5, seed=3))
    save_index(index, tmp_path / "i.pt")
    loaded = load_index(tmp_path / "i.pt", model_version="v1")
    assert loaded.meta.count == loaded.faiss.ntotal == 25
