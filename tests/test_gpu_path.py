"""The GPU path, proven on a CPU.

- Precision: every temperature loss gives its float32 value under bf16 autocast
  (CPU autocast lowers matmul to bf16 exactly as CUDA does). Aligned pairs at
  τ = 0.07 are the case that shows it: random pairs hide the error.
- Host synchronisation: counted with a TorchDispatchMode while each method trains
  through its public train_* function; at most one read per `log_every` steps.
- Resuming: a run interrupted after epoch 1 and resumed from its checkpoint has the
  same loss history, to the bit, as the run that was never interrupted.
- torch.compile once, with an eager fallback; uint8 data on the device; recipes.
"""
import math

import pytest
import torch

from contrastive_lab.augment import CIFAR10_RECIPE, DIGITS_RECIPE
from contrastive_lab.device import count_host_syncs
from contrastive_lab.images import as_float_images, images_on_device
from contrastive_lab.losses import clip_loss, info_nce, negative_cosine, nt_xent, supcon_loss, vicreg_loss
from contrastive_lab.methods import (BYOL, MoCo, SimCLR, SimSiam, build_clip, train_byol, train_clip, train_moco,
                                     train_simclr, train_simsiam, train_supcon, train_vicreg)
from contrastive_lab.methods.clip import clip_settings
from contrastive_lab.methods.supervised import train_supervised
from contrastive_lab.models import make_encoder
from contrastive_lab.profiles import FULL, QUICK
from contrastive_lab.text import Tokenizer
from contrastive_lab.train import compile_once, fit, make_schedule
from contrastive_lab.validate import value_checks
from conftest import TOY


# ---------------------------------------------------------------- precision under autocast
def aligned_pair(n=256, d=128, seed=0):
    g = torch.Generator().manual_seed(seed)
    z1 = torch.randn(n, d, generator=g)
    return z1, z1 + 0.3 * torch.randn(n, d, generator=g)


def queue(m=4096, d=128):
    return torch.randn(m, d, generator=torch.Generator().manual_seed(1))


LOSSES = {
    "nt_xent": lambda a, b: nt_xent(a, b, 0.07),
    "info_nce in-batch": lambda a, b: info_nce(a, b, temperature=0.07),
    "info_nce with a queue": lambda a, b: info_nce(a, b, queue(), temperature=0.07),
    "supcon_loss": lambda a, b: supcon_loss(torch.cat([a, b]), torch.arange(len(a)).repeat(2), 0.07),
    "clip_loss": lambda a, b: clip_loss(a, b, torch.tensor(1 / 0.07)),
    "negative_cosine": lambda a, b: negative_cosine(a, b),
    "vicreg_loss": lambda a, b: vicreg_loss(a, b),
}


@pytest.mark.parametrize("name", LOSSES)
def test_loss_and_gradient_under_bf16_autocast_equal_float32(name):
    loss_fn = LOSSES[name]
    z1, z2 = aligned_pair()
    a32 = z1.clone().requires_grad_()
    want = loss_fn(a32, z2)
    want.backward()
    a16 = z1.clone().requires_grad_()
    with torch.autocast("cpu", dtype=torch.bfloat16):
        got = loss_fn(a16, z2)
    got.backward()
    assert got.dtype == torch.float32
    assert abs(got.item() - want.item()) <= 1e-5 * abs(want.item()) + 1e-7, (got.item(), want.item())
    torch.testing.assert_close(a16.grad, a32.grad, rtol=1e-4, atol=1e-9)


def test_supcon_under_autocast_is_not_rounded_to_zero():
    """The case measured on the old code: −0.0 instead of 0.0013."""
    z1, z2 = aligned_pair()
    feats, labels = torch.cat([z1, z2]), torch.arange(len(z1)).repeat(2)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        got = supcon_loss(feats, labels, 0.07)
    assert got.item() > 0
    assert got.item() == pytest.approx(supcon_loss(feats, labels, 0.07).item(), rel=1e-5)


# ---------------------------------------------------------------- value checks
def test_direct_calls_check_values_and_fit_turns_the_checks_off():
    z = torch.randn(4, 3)
    bad = z.clone()
    bad[0, 0] = float("nan")
    with pytest.raises(ValueError, match="NaN or Inf"):
        nt_xent(bad, z)
    with pytest.raises(ValueError, match="logit_scale must be > 0"):
        clip_loss(z, z, torch.tensor(-1.0))
    with value_checks(False):
        assert not torch.isfinite(nt_xent(bad, z))       # no value read: the NaN flows on
        with pytest.raises(ValueError, match="same shape"):
            nt_xent(z, z[:, :2])                         # shape checks stay: they are free


# ---------------------------------------------------------------- host synchronisations
def small_images(n=64, seed=0):
    return torch.rand(n, 3, 16, 16, generator=torch.Generator().manual_seed(seed))


def tiny_clip_run():
    from contrastive_lab.data.shapes import make_captioned_scenes

    scenes = make_captioned_scenes(64, "train", seed=0)
    scenes.images = scenes.images[:, :, ::2, ::2].contiguous()
    tok = Tokenizer.from_texts(c for p in scenes.captions for c in p)
    settings = clip_settings(TOY).replace(batch_size=16, epochs=2, embed_dim=8, text_width=8)
    model = build_clip(TOY, tok, settings)
    return lambda: train_clip(model, scenes, tok, settings, TOY, device="cpu", progress=False)


def method_runs():
    x, y = small_images(), torch.arange(64) % 4
    kw = dict(epochs=2, device="cpu", progress=False)
    return {
        "SimCLR": lambda: train_simclr(SimCLR(make_encoder(TOY), 8), x, TOY, **kw),
        "MoCo": lambda: train_moco(MoCo(make_encoder(TOY), 8, queue_size=64), x, TOY, **kw),
        "BYOL": lambda: train_byol(BYOL(make_encoder(TOY), 8), x, TOY, **kw),
        "SimSiam": lambda: train_simsiam(SimSiam(make_encoder(TOY), 8), x, TOY, **kw),
        "VICReg": lambda: train_vicreg(SimCLR(make_encoder(TOY), 8), x, TOY, **kw),
        "SupCon": lambda: train_supcon(make_encoder(TOY), x, y, TOY, **kw),
        "CLIP": tiny_clip_run(),
        "supervised": lambda: train_supervised(make_encoder(TOY), x, y, TOY, n_classes=4, **kw)[1],
    }


@pytest.mark.parametrize("method", ["SimCLR", "MoCo", "BYOL", "SimSiam", "VICReg", "SupCon", "CLIP", "supervised"])
def test_training_steps_do_not_synchronise_with_the_host(method):
    """2 epochs × 4 steps, log_every 4: the loop may read the losses twice (their copy to the
    host is the one wait a GPU pays, every log_every steps); nothing else may read a value,
    and nothing inside a step may copy between host and device (`.to(device)` of a host
    tensor counts, on this CPU, as the copy it would be on a GPU).
    The landed code before this test counted 21 (SimCLR) to 29 (BYOL) per step."""
    run = method_runs()[method]
    torch.manual_seed(0)
    with count_host_syncs() as syncs:
        history = run()
    steps = len(history.loss)
    assert steps == syncs.steps == 8
    assert syncs.step_total == 0, dict(syncs.in_steps)    # no sync, no copy between host and device in a step
    assert syncs.total <= steps // TOY.log_every, dict(syncs.by_op)


def test_the_counter_sees_item_nonzero_and_boolean_masks():
    x = torch.randn(5)
    with count_host_syncs() as syncs:
        x.sum().item()
        _ = x[x > 0]
        if (x > 10).any():
            pass
    assert syncs.total >= 3


# ---------------------------------------------------------------- resuming
class Interrupt(Exception):
    pass


def interrupt_after_epoch_1():
    calls = []

    def evaluate():
        calls.append(1)
        if len(calls) == 2:                  # end of epoch 2: epoch 1's checkpoint is on disk
            raise Interrupt
        return {}
    return evaluate


@pytest.mark.parametrize("method", ["SimCLR", "MoCo", "CLIP"])
def test_interrupted_run_resumes_to_the_same_loss_history(method, tmp_path):
    def fresh():
        torch.manual_seed(0)
        x = small_images()
        if method == "SimCLR":
            model = SimCLR(make_encoder(TOY), 8)
            return lambda **kw: train_simclr(model, x, TOY, device="cpu", progress=False, epochs=3,
                                             eval_every=1, **kw)
        if method == "MoCo":
            model = MoCo(make_encoder(TOY), 8, queue_size=48)
            return lambda **kw: train_moco(model, x, TOY, device="cpu", progress=False, epochs=3,
                                           eval_every=1, **kw)
        from contrastive_lab.data.shapes import make_captioned_scenes
        scenes = make_captioned_scenes(64, "train", seed=0)
        tok = Tokenizer.from_texts(c for p in scenes.captions for c in p)
        settings = clip_settings(TOY).replace(batch_size=16, epochs=3, eval_every=1, embed_dim=8, text_width=8)
        model = build_clip(TOY, tok, settings)
        return lambda **kw: train_clip(model, scenes, tok, settings, TOY, device="cpu", progress=False, **kw)

    whole = fresh()(evaluate=lambda: {})
    ckpt = tmp_path / "run.pt"
    with pytest.raises(Interrupt):
        fresh()(checkpoint=ckpt, evaluate=interrupt_after_epoch_1())
    torch.manual_seed(123)                    # the global RNG moved on meanwhile; the checkpoint restores it
    resumed = fresh()(checkpoint=ckpt, evaluate=lambda: {})
    assert len(resumed.loss) == len(whole.loss) == 12
    assert resumed.loss == whole.loss         # to the bit
    assert resumed.epoch_loss == whole.epoch_loss


def test_schedule_warms_up_then_decays_on_a_cosine():
    opt = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=1.0)
    sched = make_schedule(opt, total_steps=10, warmup_steps=2, kind="cosine")
    lrs = []
    for _ in range(10):
        lrs.append(opt.param_groups[0]["lr"])
        opt.step()
        sched.step()
    assert lrs[0] == pytest.approx(0.5) and lrs[1] == pytest.approx(1.0)
    assert lrs[2] == pytest.approx(1.0)                            # cos(0)
    assert lrs[6] == pytest.approx(0.5 * (1 + math.cos(math.pi * 4 / 8)))
    assert all(a >= b for a, b in zip(lrs[2:], lrs[3:]))
    with pytest.raises(ValueError, match="needs steps_per_epoch"):
        fit(lambda b: b, [torch.nn.Parameter(torch.zeros(1))], lambda e: [], 1, schedule="cosine")


# ---------------------------------------------------------------- compile once, fall back to eager
def test_compile_once_compiles_each_child_once(monkeypatch):
    calls = []
    monkeypatch.setattr(torch, "compile", lambda fn, *a, **k: calls.append(fn) or fn)
    model = SimCLR(make_encoder(TOY), 8)
    compile_once(model)
    compile_once(model)                       # a second run of the same model: nothing new
    assert len(calls) == 2                    # encoder and head
    x = small_images(4)
    torch.testing.assert_close(model(x), model.head(model.encoder(x)))
    assert list(model.state_dict()) == list(SimCLR(make_encoder(TOY), 8).state_dict())


def compile_failing_with(monkeypatch, error, in_backward=False):
    """torch.compile replaced by one whose compiled forward (or, lazily, backward) raises `error`."""
    class FailingBackward(torch.autograd.Function):
        @staticmethod
        def forward(ctx, x):
            return x.view_as(x)

        @staticmethod
        def backward(ctx, grad):
            raise error

    def fake_compile(fn, *a, **k):
        def run(*args, **kwargs):
            if not in_backward:
                raise error
            return FailingBackward.apply(fn(*args, **kwargs))
        return run
    monkeypatch.setattr(torch, "compile", fake_compile)


def inductor_failure(message="no C++ compiler found"):
    from torch._inductor.exc import InductorError
    return InductorError(RuntimeError(message), None)


def test_compile_failure_says_so_once_and_runs_eagerly(monkeypatch, capsys):
    compile_failing_with(monkeypatch, inductor_failure())
    model = SimCLR(make_encoder(TOY), 8)
    compile_once(model)
    x = small_images(4)
    out = model(x)
    model(x)
    lines = capsys.readouterr().out.strip().splitlines()
    assert len(lines) == 2 and all("no C++ compiler found" in line and "eagerly" in line for line in lines)
    assert model.encoder._compiled_call_impl is None and model.head._compiled_call_impl is None
    torch.testing.assert_close(out, model.head(model.encoder(x)))


def test_a_backward_that_fails_to_compile_is_caught_at_the_first_forward(monkeypatch, capsys):
    """The backward is compiled lazily; the guard runs it once, so its failure falls back to eager
    there, instead of escaping from loss.backward() in the middle of fit."""
    compile_failing_with(monkeypatch, inductor_failure("ptxas: Feature '.bf16' requires sm_80"), in_backward=True)
    torch.manual_seed(0)
    model = SimCLR(make_encoder(TOY), 8)
    compile_once(model)
    history = train_simclr(model, small_images(32), TOY, epochs=1, device="cpu", progress=False)
    assert len(history.loss) == 2 and all(math.isfinite(v) for v in history.loss)
    assert "requires sm_80" in capsys.readouterr().out
    assert all(p.grad is not None for p in model.parameters())     # the real backward ran, eagerly


@pytest.mark.parametrize("error", [torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB"),
                                   RuntimeError("mat1 and mat2 shapes cannot be multiplied")])
def test_out_of_memory_and_real_errors_are_not_called_compile_failures(monkeypatch, capsys, error):
    compile_failing_with(monkeypatch, error)
    model = SimCLR(make_encoder(TOY), 8)
    compile_once(model)
    with pytest.raises(type(error), match=str(error)[:20]):
        model(small_images(4))
    assert "eagerly" not in capsys.readouterr().out
    assert model.encoder._compiled_call_impl is not None            # compiling stays on


def test_an_oom_inside_the_compiler_is_not_a_compile_failure():
    from torch._dynamo.exc import BackendCompilerFailed

    from contrastive_lab.train import is_compile_error
    assert is_compile_error(inductor_failure())
    assert is_compile_error(BackendCompilerFailed(lambda: None, RuntimeError("Triton not found"), None))
    assert not is_compile_error(BackendCompilerFailed(lambda: None, torch.OutOfMemoryError("OOM"), None))
    assert not is_compile_error(RuntimeError("no C++ compiler found"))       # not raised by the compiler


# ---------------------------------------------------------------- data on the device, recipes
def test_uint8_storage_quarters_memory_and_converts_per_batch():
    x = small_images(8)
    stored = images_on_device(x, "cpu", as_uint8=True)
    assert stored.dtype == torch.uint8 and stored.element_size() * 4 == x.element_size()
    assert (as_float_images(stored) - x).abs().max() <= 0.5 / 255 + 1e-6
    # training on uint8 storage is training on the images rounded to 256 levels, step for step
    losses = []
    for images, as_uint8 in ((x, True), ((x * 255).round() / 255, False)):
        torch.manual_seed(0)
        h = train_simclr(SimCLR(make_encoder(TOY), 8), images, TOY.replace(store_uint8=as_uint8, batch_size=4),
                         device="cpu", epochs=1, progress=False)
        losses.append(h.loss)
    assert len(losses[0]) == 2 and losses[0] == losses[1]


def test_each_dataset_gets_its_recipe():
    assert FULL.augment == CIFAR10_RECIPE and FULL.augment.flip_p == 0.5 and FULL.augment.grayscale_p == 0.2
    assert FULL.augment.crop_scale == (0.08, 1.0)
    assert QUICK.augment == DIGITS_RECIPE and QUICK.augment.flip_p == 0.0     # a flipped 2 is no 2
    assert FULL.optimizer == "adamw" and FULL.lr_schedule == "cosine" and FULL.compile and FULL.store_uint8


def test_fit_reads_the_loss_every_log_every_steps():
    w = torch.nn.Parameter(torch.ones(1))
    reads = []
    original = torch.Tensor.tolist

    def counting_tolist(self):
        reads.append(self.numel())
        return original(self)
    torch.Tensor.tolist = counting_tolist
    try:
        fit(lambda b: (w * b).sum(), [w], lambda e: [torch.ones(1)] * 10, 2, log_every=4, progress=False)
    finally:
        torch.Tensor.tolist = original
    assert reads == [4, 4, 2, 4, 4, 2]        # every 4 steps and at each epoch's end


def test_nan_is_named_with_its_step_at_the_next_read():
    w = torch.nn.Parameter(torch.ones(1))
    batches = [torch.ones(1)] * 5 + [torch.tensor([float("nan")])] + [torch.ones(1)] * 4
    with pytest.raises(FloatingPointError, match="at epoch 1, step 6 \\(steps 5–8 were read together\\)"):
        fit(lambda b: (w * b).sum(), [w], lambda e: batches, 1, log_every=4, progress=False)
