"""benchmarks/gpu_check.py's CPU dry run: the command the GPU machine will run, at toy size."""
import math
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))

import gpu_check  # noqa: E402


def test_gpu_check_dry_run_trains_through_fit_and_reports(capsys):
    result = gpu_check.run(["--dry-run"])
    out = capsys.readouterr().out
    assert result["steps"] == 16                              # 2 epochs of 64 images in batches of 8, after the warm-up
    assert result["syncs_per_step"] == 0.0                    # the step never waits for the host, copies nothing
    assert result["warmup_s"] > 0 and math.isfinite(result["final_loss"])
    assert (32 * result["knn"]).is_integer()                  # a fraction of the 32 test images
    # the report prints the numbers it returns
    assert f"warm-up (compiling forward and backward, 2 steps): {result['warmup_s']:.1f} s" in out
    assert f"views/s through fit:            {result['views_per_s']:10.0f}" in out
    ratio = result["views_per_s"] / result["dataloader_views_per_s"]
    assert (f"DataLoader + per-sample v2:     {result['dataloader_views_per_s']:10.0f}   (ratio {ratio:.2f}x; "
            "same model, optimizer and precision)") in out
    assert f"host syncs/copies in a step:    {0.0:10.2f}   (the loop's reads: " in out
    assert f"k-NN accuracy (test, k=5): {result['knn']:10.3f}" in out
    assert "peak GPU memory" in out


def test_the_baseline_gets_the_packages_model_optimizer_and_a_device_side_cat(monkeypatch):
    """Like for like: the DataLoader baseline trains the same channels_last model with the same
    fused optimizer, copies the two views separately (non_blocking) and concatenates them on the device."""
    import simclr_throughput
    import torch

    from contrastive_lab.methods.simclr import SimCLR
    from contrastive_lab.models import make_encoder
    from contrastive_lab.profiles import FULL

    profile = FULL.replace(backbone="small_cnn", cnn_widths=(4, 8, 8, 8), compile=False, proj_dim=8)
    made, copies = [], []
    real_make = simclr_throughput.make_optimizer
    monkeypatch.setattr(simclr_throughput, "make_optimizer", lambda *a, **k: made.append(a) or real_make(*a, **k))
    real_to = torch.Tensor.to
    monkeypatch.setattr(torch.Tensor, "to", lambda self, *a, **k: copies.append(k.get("non_blocking"))
                        or real_to(self, *a, **k))
    model = SimCLR(make_encoder(profile), 8)
    images = torch.rand(16, 3, 16, 16)
    simclr_throughput.dataloader_views_per_s(model, images, profile.augment, 4, 2, torch.device("cpu"), profile, 0)
    assert made and made[0][1] == "adamw"                             # the profile's optimizer, fused where it can be
    assert copies.count(True) >= 2 * 3                                # v1 and v2, each step, non_blocking
    conv = next(m for m in model.modules() if isinstance(m, torch.nn.Conv2d))
    assert profile.channels_last and conv.weight.is_contiguous(memory_format=torch.channels_last)
