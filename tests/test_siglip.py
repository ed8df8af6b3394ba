"""SigLIP's sigmoid loss (notebook 08): by hand on the unit circle, its checks, its precision under
bf16 autocast, the gathered form for several processes, and the trainer (CLIP's, with the other loss)."""
import math

import pytest
import torch

from contrastive_lab.device import count_host_syncs
from contrastive_lab.losses import clip_loss, siglip_loss
from contrastive_lab.methods.clip import clip_settings
from contrastive_lab.methods.siglip import (SigLIP, build_siglip, global_siglip_loss, siglip_loss_gathered,
                                            train_siglip)
from contrastive_lab.text import Tokenizer
from conftest import TOY, circle


def softplus(x):
    return math.log1p(math.exp(x))


def test_siglip_loss_by_hand_on_the_unit_circle():
    # images at 0° and 90°, captions at 0° and 60°: cosines [[1, 0.5], [0, cos 30°]]
    img, txt = circle(0, 90), circle(0, 60)
    scale, bias = 10.0, -5.0
    cos = [[1.0, 0.5], [0.0, math.cos(math.radians(30))]]
    # −log σ(+logit) = softplus(−logit) for the two matching pairs; −log σ(−logit) = softplus(logit) otherwise
    want = (softplus(-(scale * cos[0][0] + bias)) + softplus(scale * cos[0][1] + bias)
            + softplus(scale * cos[1][0] + bias) + softplus(-(scale * cos[1][1] + bias))) / 2
    assert siglip_loss(img, txt, scale, bias).item() == pytest.approx(want, rel=1e-6)
    # the same with tensors, and invariant to the length of the embeddings (normalised inside)
    got = siglip_loss(3 * img, 0.5 * txt, torch.tensor(scale), torch.tensor(bias))
    assert got.item() == pytest.approx(want, rel=1e-6)


def test_siglip_loss_sums_over_all_pairs_and_divides_by_n():
    # every cosine 0 (orthogonal images and captions): N positives and N² − N negatives, all at logit b
    n, b = 4, -2.0
    img, txt = torch.eye(8)[:n], torch.eye(8)[n:]
    want = (n * softplus(-b) + (n * n - n) * softplus(b)) / n
    assert siglip_loss(img, txt, 7.0, b).item() == pytest.approx(want, rel=1e-6)


def test_the_best_constant_bias_is_minus_log_n_minus_one():
    # the derivation of notebook 08: with all logits equal to b, the loss is smallest at σ(b) = 1 / N
    n = 32
    img, txt = torch.eye(2 * n)[:n], torch.eye(2 * n)[n:]
    best = -math.log(n - 1)
    at = lambda b: siglip_loss(img, txt, 1.0, b).item()
    assert at(best) < at(best - 0.1) and at(best) < at(best + 0.1)
    assert at(best) < at(-10.0) and at(best) < at(0.0)


def test_a_perfect_match_costs_almost_nothing_and_a_swap_a_lot():
    img = circle(0, 90, 180, 270)
    low = siglip_loss(img, img, 50.0, -10.0).item()              # cos 1 → logit 40; cos ≤ 0 → ≤ −10
    swapped = siglip_loss(img, img.roll(1, 0), 50.0, -10.0).item()
    assert low < 1e-3 < 10 < swapped


def test_gradient_reaches_the_scale_and_the_bias():
    g = torch.Generator().manual_seed(0)
    img, txt = torch.randn(6, 5, generator=g), torch.randn(6, 5, generator=g)
    log_scale = torch.tensor(math.log(10.0), requires_grad=True)
    bias = torch.tensor(-10.0, requires_grad=True)
    siglip_loss(img, txt, log_scale.exp(), bias).backward()
    assert log_scale.grad is not None and bias.grad is not None
    # at b = −10 the N² − N negatives are already "no", the N positives are badly wrong: raise the bias
    assert bias.grad.item() < 0


@pytest.mark.parametrize("call, message", [
    (lambda z: siglip_loss(z, z[:, :2], 10.0, -10.0), "expected image_emb and text_emb of the same shape"),
    (lambda z: siglip_loss(z[:1], z[:1], 10.0, -10.0), "at least 2"),
    (lambda z: siglip_loss(z, z, 0.0, -10.0), "logit_scale must be > 0"),
    (lambda z: siglip_loss(z, z, 10.0, float("nan")), "logit_bias must be a finite number"),
    (lambda z: siglip_loss(z, z, 10.0, torch.tensor([1.0, 2.0])), "logit_bias must be a single number"),
    (lambda z: siglip_loss(z, z, 10.0, "−10"), "logit_bias must be a number"),
])
def test_bad_input_gets_an_error_that_names_it(call, message):
    with pytest.raises((ValueError, TypeError), match=message):
        call(torch.randn(4, 3))


def test_under_bf16_autocast_the_loss_and_gradient_equal_float32_on_aligned_pairs():
    g = torch.Generator().manual_seed(0)
    z1 = torch.randn(256, 128, generator=g)
    z2 = z1 + 0.3 * torch.randn(256, 128, generator=g)
    scale, bias = torch.tensor(1 / 0.07), torch.tensor(-10.0)
    a32 = z1.clone().requires_grad_()
    want = siglip_loss(a32, z2, scale, bias)
    want.backward()
    a16 = z1.clone().requires_grad_()
    with torch.autocast("cpu", dtype=torch.bfloat16):
        got = siglip_loss(a16, z2, scale, bias)
    got.backward()
    assert got.dtype == torch.float32
    assert abs(got.item() - want.item()) <= 1e-5 * abs(want.item()), (got.item(), want.item())
    torch.testing.assert_close(a16.grad, a32.grad, rtol=1e-4, atol=1e-9)


def test_the_gathered_loss_averaged_over_ranks_is_the_loss_of_the_whole_batch():
    g = torch.Generator().manual_seed(0)
    world, n = 3, 4
    img, txt = torch.randn(world * n, 6, generator=g), torch.randn(world * n, 6, generator=g)
    per_rank = [siglip_loss_gathered(img[r * n:(r + 1) * n], txt, r, 10.0, -3.0) for r in range(world)]
    whole = siglip_loss(img, txt, 10.0, -3.0)
    assert (sum(per_rank) / world).item() == pytest.approx(whole.item(), rel=1e-6)
    # one process: the global form is the plain loss
    assert global_siglip_loss(img, txt, 10.0, -3.0).item() == pytest.approx(whole.item(), rel=1e-6)
    with pytest.raises(ValueError, match="rank must be in 0"):
        siglip_loss_gathered(img[:n], txt, 3, 10.0, -3.0)
    with pytest.raises(ValueError, match=r"\(n · W, D\)"):
        siglip_loss_gathered(img[:5], txt, 0, 10.0, -3.0)


# ---------------------------------------------------------------- the model and its trainer
def tiny_scenes():
    from contrastive_lab.data.shapes import make_captioned_scenes

    scenes = make_captioned_scenes(64, "train", seed=0)
    scenes.images = scenes.images[:, :, ::2, ::2].contiguous()
    tok = Tokenizer.from_texts(c for p in scenes.captions for c in p)
    return scenes, tok, clip_settings(TOY).replace(batch_size=16, epochs=2, embed_dim=8, text_width=8)


def test_siglip_starts_at_the_papers_scale_and_bias_and_returns_what_its_loss_takes():
    scenes, tok, settings = tiny_scenes()
    torch.manual_seed(0)
    model = build_siglip(TOY, tok, settings)
    assert isinstance(model, SigLIP)
    assert model.logit_scale.item() == pytest.approx(10.0)
    assert model.logit_bias.item() == -10.0
    image_emb, text_emb, scale, bias = model(scenes.images[:4], tok([c[0] for c in scenes.captions[:4]]))
    assert image_emb.shape == text_emb.shape == (4, 8)
    siglip_loss(image_emb, text_emb, scale, bias).backward()
    assert model.logit_bias.grad is not None and model.log_logit_scale.grad is not None
    with pytest.raises(ValueError, match="init_bias must be a finite number"):
        SigLIP(model.image_encoder, model.text_encoder, 8, init_bias=float("inf"))


def test_train_siglip_learns_the_bias_without_host_syncs_in_its_steps():
    """2 epochs × 4 steps, log_every 4: the loop reads the losses twice, nothing else is read."""
    scenes, tok, settings = tiny_scenes()
    torch.manual_seed(0)
    model = build_siglip(TOY, tok, settings)
    with count_host_syncs() as syncs:
        history = train_siglip(model, scenes, tok, settings, TOY, device="cpu", progress=False)
    assert len(history.loss) == 8
    assert syncs.total <= len(history.loss) // TOY.log_every, dict(syncs.by_op)
    biases = [v for _, v in history.metrics["logit_bias"]]
    assert len(biases) == 8 and biases[-1] > -10.0          # the positives pull the bias up from −10
    assert len(history.metrics["logit_scale"]) == 8


def test_the_clip_trainer_takes_the_loss_as_an_argument():
    # train_siglip is train_clip with siglip_loss: the same model trained with clip_loss by hand differs
    scenes, tok, settings = tiny_scenes()
    from contrastive_lab.methods.clip import train_clip

    runs = {}
    for name, loss in (("sigmoid", siglip_loss), ("softmax", lambda i, t, s, b: clip_loss(i, t, s))):
        torch.manual_seed(0)
        model = build_siglip(TOY, tok, settings)
        runs[name] = train_clip(model, scenes, tok, settings, TOY, device="cpu", progress=False, loss=loss).loss
    torch.manual_seed(0)
    model = build_siglip(TOY, tok, settings)
    assert train_siglip(model, scenes, tok, settings, TOY, device="cpu", progress=False).loss == runs["sigmoid"]
    assert runs["sigmoid"] != runs["softmax"]
