"""Mixed precision chosen by what the GPU computes fast, proven on a CPU.

- `amp_dtype`: bf16 on sm_80+ (A100, L4, H100), fp16 on sm_7x (V100, Colab's T4, where
  PyTorch's is_bf16_supported() still says True: bf16 is emulated there), None on older
  GPUs, MPS and the CPU. The capabilities are simulated by monkeypatching torch.cuda.
- fp16 needs a GradScaler: `fit` adds one, and with the fused optimizer it stays on the
  device (no `.item()` per step). The scaler path runs for real on the CPU (CPU autocast
  in fp16, torch.amp.GradScaler("cpu"), the fused CPU AdamW).
"""
import math

import pytest
import torch
import torch.nn as nn

from contrastive_lab import train
from contrastive_lab.device import amp_dtype, count_host_syncs
from contrastive_lab.train import autocast_context, fit, make_grad_scaler, read_checkpoint


def simulate_gpu(monkeypatch, capability, bf16_native):
    """A CUDA GPU of this compute capability, as far as torch.cuda's answers go."""
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "get_device_capability", lambda device=None: capability)
    monkeypatch.setattr(torch.cuda, "is_bf16_supported",
                        lambda including_emulation=True: bf16_native or including_emulation)


@pytest.mark.parametrize("capability, native, want", [
    ((9, 0), True, torch.bfloat16),       # H100, H200
    ((8, 9), True, torch.bfloat16),       # L4
    ((8, 0), True, torch.bfloat16),       # A100
    ((7, 5), False, torch.float16),       # T4: bf16 only emulated
    ((7, 0), False, torch.float16),       # V100
    ((6, 1), False, None),                # P100-class: float32
])
def test_amp_dtype_follows_the_compute_capability(monkeypatch, capability, native, want):
    simulate_gpu(monkeypatch, capability, native)
    assert torch.cuda.is_bf16_supported()            # what the old code asked: True even on a T4
    assert amp_dtype("cuda") == want
    assert amp_dtype("cpu") is None and amp_dtype("mps") is None


def test_no_autocast_and_no_scaler_without_a_gpu():
    assert amp_dtype("cuda") is None                 # this machine has no CUDA
    assert isinstance(autocast_context("cpu"), type(autocast_context("cpu", enabled=False)))
    assert make_grad_scaler("cpu") is None and make_grad_scaler("cuda") is None


def test_a_t4_gets_fp16_autocast_and_a_scaler_an_h100_bf16_and_none(monkeypatch):
    simulate_gpu(monkeypatch, (7, 5), False)
    ctx = autocast_context("cuda")                   # built, not entered: there is no GPU here
    assert ctx.fast_dtype == torch.float16 and ctx.device == "cuda"
    assert make_grad_scaler("cuda", enabled=False) is None
    assert isinstance(make_grad_scaler("cuda"), torch.amp.GradScaler)
    simulate_gpu(monkeypatch, (9, 0), True)
    assert autocast_context("cuda").fast_dtype == torch.bfloat16
    assert make_grad_scaler("cuda") is None


def test_preflight_and_gpu_check_use_the_same_choice():
    import inspect

    from contrastive_lab import preflight
    source = inspect.getsource(preflight.speed_test)
    assert "autocast_context" in source and "bfloat16" not in source


# ---------------------------------------------------------------- the fp16 path, run on the CPU
def regression(seed=0, n=64):
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(n, 8, generator=g)
    return x, x @ torch.randn(8, 1, generator=g)


def fp16_fit(monkeypatch, batches, model, **kw):
    """fit on the CPU as on a T4: fp16 autocast and a GradScaler, the fused AdamW."""
    monkeypatch.setattr(train, "amp_dtype", lambda device: torch.float16)
    return fit(lambda b: (model(b[0]).float() - b[1]).pow(2).mean(), model.parameters(), lambda e: batches,
               kw.pop("epochs", 3), optimizer="adamw", lr=1e-2, amp=True, progress=False, **kw)


def test_fp16_training_with_the_scaler_learns_and_never_waits_for_the_host(monkeypatch):
    x, y = regression()
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(8, 16), nn.ReLU(), nn.Linear(16, 1))
    batches = [(x[i:i + 16], y[i:i + 16]) for i in range(0, 64, 16)]
    with count_host_syncs(as_if_gpu=True) as syncs:
        history = fp16_fit(monkeypatch, batches, model, log_every=4, epochs=10)
    assert syncs.steps == 40 and syncs.step_total == 0, dict(syncs.in_steps)
    assert history.epoch_loss[-1] < 0.5 * history.epoch_loss[0]


def test_the_scaler_skips_a_step_with_inf_gradients_on_the_device(monkeypatch):
    model = nn.Linear(8, 1)
    before = [p.detach().clone() for p in model.parameters()]
    x, y = regression()
    poisoned = [(x[:16] * 1e30, y[:16])]                          # fp16 overflows: inf gradients
    scales = []
    real_update = torch.amp.GradScaler.update

    def update(self, *a, **k):
        real_update(self, *a, **k)
        scales.append(self._scale.clone())
    monkeypatch.setattr(torch.amp.GradScaler, "update", update)
    with count_host_syncs(as_if_gpu=True) as syncs:
        with pytest.raises(FloatingPointError):                   # the loss itself is inf: named at the read
            fp16_fit(monkeypatch, poisoned, model, epochs=1, log_every=1)
    assert syncs.step_total == 0
    for p, b in zip(model.parameters(), before):
        torch.testing.assert_close(p.detach(), b)                 # the step was skipped
    assert scales[0].item() == 65536.0 / 2                        # and the scale halved


def test_the_scale_is_checkpointed_and_a_resumed_run_repeats_the_uninterrupted_one(monkeypatch, tmp_path):
    x, y = regression()
    batches = [(x[i:i + 16], y[i:i + 16]) for i in range(0, 64, 16)]
    scalers = []
    real = train.make_grad_scaler
    monkeypatch.setattr(train, "make_grad_scaler", lambda *a, **k: scalers.append(real(*a, **k)) or scalers[-1])

    def run(epochs, checkpoint=None):
        torch.manual_seed(0)
        model = nn.Linear(8, 1)
        kw = dict(checkpoint=checkpoint, modules={"m": model}) if checkpoint else {}
        return fp16_fit(monkeypatch, batches, model, epochs=epochs, **kw)

    whole = run(2)
    run(1, tmp_path / "c.pt")
    saved = read_checkpoint(tmp_path / "c.pt")["scaler"]
    # 65,536 overflows these fp16 gradients: the first steps are skipped and the scale backs off
    assert saved["scale"] < 65536.0
    resumed = run(2, tmp_path / "c.pt")
    assert resumed.loss == whole.loss
    assert scalers[-1].state_dict() == scalers[0].state_dict()          # the same scale and growth tracker


# ---------------------------------------------------------------- views in float32
def test_views_under_bf16_autocast_equal_the_float32_views():
    """Made inside the training step, under autocast, the views are still float32 and the same
    (bf16 in the affine warp moved pixels by up to 24 grey levels)."""
    from contrastive_lab.augment import CIFAR10_RECIPE, augment, random_rotation, two_views

    x = torch.rand(16, 3, 32, 32, generator=torch.Generator().manual_seed(0))
    want = two_views(x, CIFAR10_RECIPE, torch.Generator().manual_seed(1))
    with torch.autocast("cpu", dtype=torch.bfloat16):
        got = two_views(x, CIFAR10_RECIPE, torch.Generator().manual_seed(1))
        blurred = augment(x, CIFAR10_RECIPE.__class__(blur_p=1.0), torch.Generator().manual_seed(2))
        turned = random_rotation(x, generator=torch.Generator().manual_seed(3))
        assert torch.is_autocast_enabled("cpu")                   # left as it was found
    for a, b in zip(got, want):
        assert a.dtype == torch.float32
        torch.testing.assert_close(a, b, rtol=0, atol=0)
    torch.testing.assert_close(blurred, augment(x, CIFAR10_RECIPE.__class__(blur_p=1.0),
                                                torch.Generator().manual_seed(2)), rtol=0, atol=0)
    torch.testing.assert_close(turned, random_rotation(x, generator=torch.Generator().manual_seed(3)), rtol=0, atol=0)
    with torch.autocast("cpu", dtype=torch.bfloat16):             # what happened before: views in bf16
        theta = torch.eye(2, 3).expand(16, 2, 3) * 0.9
        warped = torch.nn.functional.grid_sample(x, torch.nn.functional.affine_grid(theta, list(x.shape),
                                                                                    align_corners=False),
                                                 align_corners=False)
    exact = torch.nn.functional.grid_sample(x, torch.nn.functional.affine_grid(theta, list(x.shape),
                                                                               align_corners=False),
                                            align_corners=False)
    assert (warped.float() - exact).abs().max() > 1 / 255                  # more than a grey level off


def test_a_training_step_feeds_the_encoder_views_in_its_autocast_dtype(monkeypatch):
    from contrastive_lab.methods.simclr import SimCLR, train_simclr
    from contrastive_lab.methods import views as views_module
    from contrastive_lab.models import make_encoder
    from contrastive_lab.profiles import QUICK

    seen = []
    toy = QUICK.replace(cnn_widths=(4, 8, 8, 8), proj_dim=8, batch_size=8, channels_last=False, amp=True)
    monkeypatch.setattr(views_module, "amp_dtype", lambda device: torch.bfloat16)
    monkeypatch.setattr(train, "amp_dtype", lambda device: torch.bfloat16)       # CPU bf16 autocast in fit
    model = SimCLR(make_encoder(toy), 8)
    model.encoder.register_forward_pre_hook(lambda m, args: seen.append(args[0].dtype))
    history = train_simclr(model, torch.rand(16, 3, 16, 16), toy, epochs=1, device="cpu", progress=False)
    assert seen == [torch.bfloat16, torch.bfloat16] and all(math.isfinite(v) for v in history.loss)
