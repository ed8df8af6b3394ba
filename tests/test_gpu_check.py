"""benchmarks/gpu_check.py's CPU dry run: the command the GPU machine will run, at toy size."""
import math
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))

import gpu_check  # noqa: E402


def test_gpu_check_dry_run_trains_through_fit_and_reports(capsys):
    result = gpu_check.run(["--dry-run"])
    out = capsys.readouterr().out
    assert result["steps"] == 16                              # 2 epochs of 64 images in batches of 8
    assert result["syncs_per_step"] == 0.0                    # the step never waits for the host
    assert math.isfinite(result["final_loss"])
    assert (32 * result["knn"]).is_integer()                  # a fraction of the 32 test images
    # the report prints the numbers it returns
    assert f"views/s through fit:            {result['views_per_s']:10.0f}" in out
    ratio = result["views_per_s"] / result["dataloader_views_per_s"]
    assert f"DataLoader + per-sample v2:     {result['dataloader_views_per_s']:10.0f}   (ratio {ratio:.2f}x)" in out
    assert f"host syncs per training step:   {0.0:10.2f}" in out
    assert f"k-NN accuracy (test, k=5): {result['knn']:10.3f}" in out
    assert "peak GPU memory" in out
