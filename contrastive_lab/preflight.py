"""Pre-flight check: can this machine run the course?

A workshop host asks every attendee to run

    python -m contrastive_lab.preflight

(or the first cells of notebook 00). It prints versions, the device and
profile, and times one small training step; every line says OK or what to fix.
"""
from __future__ import annotations

import importlib
import platform
import sys
import time
from dataclasses import dataclass

REQUIRED = ("torch", "torchvision", "numpy", "matplotlib", "sklearn", "ipywidgets", "tqdm")


@dataclass
class Check:
    name: str
    ok: bool
    detail: str


def _version(module: str) -> Check:
    try:
        mod = importlib.import_module(module)
        return Check(module, True, getattr(mod, "__version__", "installed"))
    except Exception as exc:          # an import can fail in many ways
        return Check(module, False, f"missing ({type(exc).__name__}): run `make lab` or "
                                    f"`pip install -e .` in the course folder")


def run_checks(step_budget_s: float = 5.0) -> list[Check]:
    """Run every check and return them (nothing is printed)."""
    checks = [Check("python", sys.version_info >= (3, 10), platform.python_version())]
    checks += [_version(m) for m in REQUIRED]
    if not all(c.ok for c in checks):
        return checks
    import torch

    from .data import data_dir, make_cluttered_digits
    from .device import get_device
    from .models import SmallCNN
    from .profiles import get_profile

    device = get_device()
    checks.append(Check("device", True, f"{device} ({torch.get_num_threads()} CPU threads)"))
    checks.append(Check("profile", True, get_profile().name))
    try:
        folder = data_dir()
        probe = folder / ".write-test"
        probe.write_text("ok")
        probe.unlink()
        checks.append(Check("data folder", True, str(folder)))
    except OSError as exc:
        checks.append(Check("data folder", False, f"not writable ({exc}); set CLAB_DATA_DIR"))
    x, _ = make_cluttered_digits(128, seed=0)
    model = SmallCNN().to(device)
    opt = torch.optim.Adam(model.parameters(), 1e-3)
    x = x.to(device)
    start = time.perf_counter()
    for _ in range(3):
        loss = model(x).pow(2).mean()
        opt.zero_grad()
        loss.backward()
        opt.step()
    if device.type == "cuda":
        torch.cuda.synchronize()
    per_step = (time.perf_counter() - start) / 3
    checks.append(Check("training step", per_step < step_budget_s,
                        f"{per_step * 1000:.0f} ms per step of 128 images"
                        + ("" if per_step < step_budget_s else " - too slow for the course on this machine")))
    return checks


def report(checks: list[Check]) -> str:
    """The checks as aligned lines: 'OK  name  detail' or 'FIX name  detail'."""
    width = max(len(c.name) for c in checks)
    lines = [f"{'OK ' if c.ok else 'FIX'}  {c.name:<{width}}  {c.detail}" for c in checks]
    verdict = "ready for the course" if all(c.ok for c in checks) else "fix the lines marked FIX"
    return "\n".join(lines + [f"=> {verdict}"])


def main() -> int:
    checks = run_checks()
    print(report(checks))
    return 0 if all(c.ok for c in checks) else 1


if __name__ == "__main__":
    raise SystemExit(main())
