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
    assert result["views_per_s"] > 0 and result["dataloader_views_per_s"] > 0
    assert 0.0 <= result["knn"] <= 1.0 and math.isfinite(result["final_loss"])
    for line in ("views/s through fit", "DataLoader + per-sample v2", "peak GPU memory",
                 "host syncs per training step", "k-NN accuracy"):
        assert line in out
