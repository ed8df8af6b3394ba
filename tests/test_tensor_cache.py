"""compute_or_load: tensors computed once, cached with their checksum, recomputed when corrupt or
when their settings change; a frozen encoder's embeddings do not depend on the seed offset."""
import torch

from contrastive_lab.tensor_cache import compute_or_load


def test_compute_or_load_computes_once_and_checks_the_file(tmp_path, monkeypatch):
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
