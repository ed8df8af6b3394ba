"""CLIP: the captioned-scenes dataset, the tokenizer and text encoder, clip_loss, the model."""
import math

import pytest
import torch

from contrastive_lab.data.shapes import (COLOURS, HELD_OUT, KINDS, MAX_OBJECTS, PLURALS, SHAPES, all_combos,
                                         combo_id, make_captioned_scenes)
from contrastive_lab.losses import clip_loss, info_nce
from contrastive_lab.methods.clip import (CLIP, build_clip, chance_recall, clip_settings, cross_modal_recall,
                                          encode_texts, tokenize_captions, train_clip, zero_shot_weights)
from contrastive_lab.models import SmallCNN
from contrastive_lab.profiles import FULL, QUICK
from contrastive_lab.text import TextEncoder, Tokenizer, split_words
from conftest import circle


# ---------------------------------------------------------------- dataset
def test_scenes_are_deterministic_by_seed():
    a = make_captioned_scenes(48, "train", seed=5)
    b = make_captioned_scenes(48, "train", seed=5)
    c = make_captioned_scenes(48, "train", seed=6)
    assert a.images.shape == (48, 3, 32, 32) and a.images.dtype == torch.float32
    assert 0 <= a.images.min() and a.images.max() <= 1
    assert torch.equal(a.images, b.images) and a.captions == b.captions and a.content == b.content
    assert torch.equal(a.combos, b.combos) and torch.equal(a.kind, b.kind)
    assert not torch.equal(a.images, c.images) and a.captions != c.captions
    assert not torch.equal(a.images, make_captioned_scenes(48, "test", seed=5).images)


def _held_out_phrases():
    return ([f"{c} {s}" for c, s in HELD_OUT] +
            [f"{c} {PLURALS[SHAPES.index(s)]}" for c, s in HELD_OUT])


def test_no_held_out_combination_in_training():
    scenes = make_captioned_scenes(2000, "train", seed=0)
    held = torch.tensor([combo_id(c, s) for c, s in HELD_OUT])
    assert not torch.isin(scenes.combos, held).any()
    text = " | ".join(c for phrasings in scenes.captions for c in phrasings)
    text = text.replace("striped ", "")
    for phrase in _held_out_phrases():
        assert phrase not in text, phrase
    # every other combination, and every kind, does appear
    seen = set(scenes.combos[scenes.combos >= 0].tolist())
    assert seen == set(range(len(all_combos()))) - set(held.tolist())
    assert set(scenes.kind.tolist()) == set(range(len(KINDS)))


def test_held_out_test_set_and_train_guard():
    zs = make_captioned_scenes(200, "test", seed=0, kinds=("single",), combos=list(HELD_OUT))
    assert set(zs.combo_labels.tolist()) == {combo_id(c, s) for c, s in HELD_OUT}
    assert (zs.combos[:, 1:] == -1).all()
    with pytest.raises(ValueError, match="held-out"):
        make_captioned_scenes(10, "train", combos=[("green", "triangle"), ("red", "circle")])
    with pytest.raises(ValueError, match="split must be"):
        make_captioned_scenes(10, "val")
    with pytest.raises(ValueError, match="kinds"):
        make_captioned_scenes(10, kinds=("triple",))


def test_captions_name_the_objects_and_share_one_content():
    scenes = make_captioned_scenes(300, "test", seed=1)
    for i in range(len(scenes)):
        for k in range(MAX_OBJECTS):
            cid = scenes.combos[i, k].item()
            if cid < 0:
                continue
            colour, shape = all_combos()[cid]
            for phrasing in scenes.captions[i]:
                words = split_words(phrasing)
                assert colour in words and (shape in words or PLURALS[SHAPES.index(shape)] in words)
    # "A right of B" and "B left of A" are one content
    pair = scenes.subset(scenes.kind == 1)
    for phrasings, content in zip(pair.captions, pair.content):
        assert "right of" not in content and "below" not in content
        assert content in phrasings


def test_count_scenes_draw_as_many_objects_as_they_say():
    scenes = make_captioned_scenes(200, "test", seed=3, kinds=("count",))
    words = {"two": 2, "three": 3, "four": 4}
    for phrasings, combos in zip(scenes.captions, scenes.combos):
        said = words[split_words(phrasings[0])[0]]
        drawn = combos[combos >= 0]
        assert len(drawn) == said and (drawn == drawn[0]).all()


def test_distinct_keeps_one_scene_per_content():
    scenes = make_captioned_scenes(600, "test", seed=2)
    gallery = scenes.distinct()
    assert len(set(gallery.content)) == len(gallery) <= len(scenes)
    assert set(gallery.content) == set(scenes.content)
    ids = scenes.content_ids()
    assert ids.shape == (600,) and (ids[:, None] == ids[None, :]).equal(
        torch.tensor([[a == b for b in scenes.content] for a in scenes.content]))


# ---------------------------------------------------------------- tokenizer and text encoder
def test_tokenizer_unknown_words_become_unk():
    tok = Tokenizer.from_texts(["a red circle", "a blue square", "a red square"])
    assert tok.vocab[:2] == ["<pad>", "<unk>"] and tok.vocab[2] == "a"      # most frequent first
    ids = tok(["a mauve circle", "A RED, circle!", "", "zzz"])
    assert ids.shape == (4, 3) and ids.dtype == torch.long
    assert ids[0].tolist() == [tok.index["a"], tok.unk_id, tok.index["circle"]]
    assert tok.decode(ids[1]) == "a red circle"
    assert ids[2].tolist() == [tok.unk_id, 0, 0] and ids[3].tolist() == [tok.unk_id, 0, 0]
    assert tok(["a red circle"], max_len=2).shape == (1, 2)


@pytest.mark.parametrize("pooling,layers", [("mean", 0), ("conv", 0), ("conv", 1)])
def test_text_encoder_ignores_padding(pooling, layers):
    torch.manual_seed(0)
    tok = Tokenizer(["a", "red", "circle", "blue", "square"])
    enc = TextEncoder(tok.vocab_size, width=16, pooling=pooling, layers=layers).eval()
    short, padded = tok(["a red circle"]), torch.cat([tok(["a red circle"]), torch.zeros(1, 3, dtype=torch.long)], 1)
    torch.testing.assert_close(enc(short), enc(padded), atol=1e-5, rtol=0)
    assert enc(tok(["a red circle", "a blue square"])).shape == (2, 16)


def test_bag_of_words_is_blind_to_word_order_and_conv_is_not():
    torch.manual_seed(0)
    tok = Tokenizer(["a", "red", "circle", "blue", "square", "left", "of"])
    texts = ["a red circle left of a blue square", "a blue circle left of a red square"]
    bag = TextEncoder(tok.vocab_size, 16, pooling="mean").eval()
    conv = TextEncoder(tok.vocab_size, 16, pooling="conv").eval()
    a, b = bag(tok(texts))
    torch.testing.assert_close(a, b)
    a, b = conv(tok(texts))
    assert (a - b).abs().max() > 1e-3
    with pytest.raises(ValueError, match="pooling"):
        TextEncoder(10, pooling="max")


# ---------------------------------------------------------------- clip_loss
def test_clip_loss_2x2_by_hand():
    # images at 0° and 90°, captions at 60° and 90°, scale 1:
    #   cos = [[cos 60°, cos 90°], [cos 30°, cos 0°]] = [[0.5, 0], [0.866, 1]]
    img, txt = circle(0, 90), circle(60, 90)
    c30 = math.cos(math.radians(30))
    image_to_text = [math.log(1 + math.exp(0 - 0.5)), math.log(1 + math.exp(c30 - 1))]   # rows
    text_to_image = [math.log(1 + math.exp(c30 - 0.5)), math.log(1 + math.exp(0 - 1))]   # columns
    expected = 0.5 * (sum(image_to_text) / 2 + sum(text_to_image) / 2)
    assert clip_loss(img, txt, 1.0).item() == pytest.approx(expected, abs=1e-6)
    # matched pairs on orthogonal axes, scale s: both ways log(1 + e^(−s))
    assert clip_loss(circle(0, 90), circle(0, 90), 10.0).item() == pytest.approx(math.log(1 + math.exp(-10)), abs=1e-7)


def test_clip_loss_is_symmetric_and_is_info_nce_both_ways():
    torch.manual_seed(0)
    a, b = torch.randn(7, 5), torch.randn(7, 5)
    torch.testing.assert_close(clip_loss(a, b, 14.3), clip_loss(b, a, 14.3))
    both = 0.5 * (info_nce(a, b, temperature=1 / 14.3) + info_nce(b, a, temperature=1 / 14.3))
    torch.testing.assert_close(clip_loss(a, b, 14.3), both)
    # the scale may be a tensor with gradient (the learnable parameter)
    log_scale = torch.tensor(math.log(1 / 0.07), requires_grad=True)
    clip_loss(a, b, log_scale.exp()).backward()
    assert log_scale.grad is not None and torch.isfinite(log_scale.grad)


def test_clip_loss_at_init_is_log_n():
    z = torch.ones(16, 4)
    assert clip_loss(z, z, 100.0).item() == pytest.approx(math.log(16), abs=1e-5)


@pytest.mark.parametrize("scale", [0.0, -1.0, float("nan"), float("inf"), torch.tensor(-2.0)])
def test_clip_loss_rejects_bad_scale(scale):
    with pytest.raises(ValueError, match="logit_scale must be > 0"):
        clip_loss(torch.randn(3, 4), torch.randn(3, 4), scale)


def test_clip_loss_rejects_mismatched_batches():
    with pytest.raises(ValueError, match=r"image_emb and text_emb of the same shape \(N, D\), got \(3, 4\) and \(4, 4\)"):
        clip_loss(torch.randn(3, 4), torch.randn(4, 4), 10.0)
    with pytest.raises(ValueError, match="same shape"):
        clip_loss(torch.randn(3, 4), torch.randn(3, 8), 10.0)


# ---------------------------------------------------------------- the model
def tiny_clip(vocab_size, embed_dim=8):
    return CLIP(SmallCNN((4, 8, 8, 8)), TextEncoder(vocab_size, 8), embed_dim=embed_dim)


def test_clip_starts_at_temperature_0_07_and_clamps_at_100():
    model = tiny_clip(10)
    assert model.logit_scale.item() == pytest.approx(1 / 0.07)
    with torch.no_grad():
        model.log_logit_scale.fill_(10.0)
    model.clamp_logit_scale_()
    assert model.logit_scale.item() == pytest.approx(100.0)
    assert model.temperature == pytest.approx(0.01)
    with pytest.raises(ValueError, match="init_temperature"):
        CLIP(SmallCNN((4, 4, 4, 4)), TextEncoder(5, 4), init_temperature=0.0)


def test_clip_forward_gives_unit_embeddings_in_one_space():
    scenes = make_captioned_scenes(6, "train", seed=0)
    tok = Tokenizer.from_texts(c for p in scenes.captions for c in p)
    model = tiny_clip(tok.vocab_size)
    ids = tokenize_captions(tok, scenes.captions)
    assert ids.shape[:2] == (6, 4)
    img, txt, scale = model(scenes.images, ids[:, 0])
    assert img.shape == txt.shape == (6, 8) and scale.ndim == 0
    torch.testing.assert_close(img.norm(dim=1), torch.ones(6))
    torch.testing.assert_close(txt.norm(dim=1), torch.ones(6))


def test_train_clip_learns_and_logs_the_scale():
    torch.manual_seed(0)
    scenes = make_captioned_scenes(128, "train", seed=0)
    tok = Tokenizer.from_texts(c for p in scenes.captions for c in p)
    model = tiny_clip(tok.vocab_size)
    settings = clip_settings(QUICK).replace(batch_size=32, epochs=6, lr=5e-3, eval_every=3)
    calls = []
    h = train_clip(model, scenes, tok, settings, QUICK.replace(channels_last=False), device="cpu",
                   progress=False, evaluate=lambda: calls.append(1) or {"probe": 1.0})
    steps = 6 * (128 // 32)
    assert len(h.loss) == steps and len(h.metrics["logit_scale"]) == steps
    assert h.epoch_loss[-1] < h.epoch_loss[0]
    assert len(calls) == 2 and [e for e, _ in h.metrics["probe"]] == [3, 6]
    assert all(1.0 <= v <= 100.0 for _, v in h.metrics["logit_scale"])


def test_zero_shot_weights_average_prompts():
    tok = Tokenizer(["a", "red", "blue", "circle", "square"])
    model = tiny_clip(tok.vocab_size).eval()
    w = zero_shot_weights(model, tok, [["a red circle", "red circle"], ["a blue square"]])
    single = encode_texts(model, tok, ["a red circle", "red circle", "a blue square"])
    torch.testing.assert_close(w[0], torch.nn.functional.normalize(single[:2].mean(0), dim=0))
    torch.testing.assert_close(w[1], single[2])


def test_cross_modal_recall_and_chance():
    torch.manual_seed(0)
    z = torch.nn.functional.normalize(torch.randn(20, 8), dim=1)
    content = torch.arange(20)
    r = cross_modal_recall(z, z, content, ks=(1, 5))
    assert r == {"image→text": {1: 1.0, 5: 1.0}, "text→image": {1: 1.0, 5: 1.0}}
    assert chance_recall(content, ks=(1, 5)) == pytest.approx({1: 1 / 20, 5: 5 / 20})
    # two items share a content: a random top-1 hits one of 2 of 4
    assert chance_recall(torch.tensor([0, 0, 1, 2]), ks=(1,))[1] == pytest.approx((0.5 + 0.5 + 0.25 + 0.25) / 4)


def test_full_profile_is_bigger():
    quick, full = clip_settings(QUICK), clip_settings(FULL)
    assert full.n_train > quick.n_train and full.text_width > quick.text_width
    assert full.text_layers > quick.text_layers and full.epochs >= quick.epochs
    tok = Tokenizer(["a", "red", "circle"])
    model = build_clip(QUICK, tok)
    assert isinstance(model.image_encoder, SmallCNN) and model.embed_dim == QUICK.proj_dim
    assert COLOURS and SHAPES
