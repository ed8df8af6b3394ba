"""Pre-flight check: can this machine run the course?

A workshop host asks every attendee to run

    make preflight            (or: python -m contrastive_lab.preflight)

before the session (notebook 00 runs the same checks). Every line says OK, FIX and what
to do, or WARN; the exit status is non-zero if any line says FIX. A slow or busy machine is
a WARN, not a FIX: the course runs there, more slowly, and the expected minutes say how
slowly. It checks:

- Python and the course's packages, against the exact versions of requirements-lock.txt
  (CLAB_VERSIONS=any accepts other versions, e.g. Colab's own PyTorch);
- the JupyterLab widget front-end (jupyterlab_widgets and its lab extension) matches ipywidgets;
- a Jupyter kernel starts and imports the course;
- free disk and memory, a writable data cache;
- the device (CUDA, Apple MPS or CPU) and the profile it selects;
- a 5-second training speed test, turned into the expected minutes of each notebook here.

    python -m contrastive_lab.preflight --fast      skip the kernel start and the speed test
"""
from __future__ import annotations

import argparse
import importlib
import importlib.metadata
import json
import os
import platform
import re
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from .course_timings import REFERENCE, expected_seconds

ROOT = Path(__file__).resolve().parents[1]
LOCK_FILE = ROOT / "requirements-lock.txt"
# import name → distribution name, for the packages the notebooks import
REQUIRED = {"torch": "torch", "torchvision": "torchvision", "numpy": "numpy", "matplotlib": "matplotlib",
            "sklearn": "scikit-learn", "ipywidgets": "ipywidgets", "tqdm": "tqdm", "faiss": "faiss-cpu",
            "tokenizers": "tokenizers", "bm25s": "bm25s", "umap": "umap-learn", "jupyterlab": "jupyterlab"}
VERSIONS_ENV = "CLAB_VERSIONS"                        # "any": report other versions as OK (Colab keeps its own)
MIN_PYTHON = (3, 10)
MIN_FREE_DISK_GB = {"quick": 2.0, "full": 10.0}       # data cache, trained models, (full) CIFAR-10
MIN_FREE_MEMORY_GB = {"quick": 2.0, "full": 8.0}
SPEED_TEST_S = 5.0
TOO_SLOW = 4.0                                        # × the reference machine: WARN, notebooks past ~8 min
FIX_INSTALL = "run `make lab` in the course folder (it installs the locked versions into .venv)"
WIDGET_FRONTEND_MAJOR = {8: 5}                        # ipywidgets major → @jupyter-widgets/jupyterlab-manager major


@dataclass
class Check:
    """One line of the report: ok=False is a FIX (the course cannot run until it is fixed);
    warn=True on an ok check is a WARN (it runs, with a caveat: a slow machine)."""
    name: str
    ok: bool
    detail: str
    warn: bool = False

    @property
    def label(self) -> str:
        return "FIX" if not self.ok else "WARN" if self.warn else "OK"


# ----------------------------------------------------------------------------- versions

def locked_versions(path: Path = LOCK_FILE) -> dict[str, str]:
    """{distribution name (normalised): version} pinned by the lock file ({} if there is none)."""
    if not path.exists():
        return {}
    pins = {}
    for line in path.read_text().splitlines():
        m = re.match(r"^([A-Za-z0-9_.\-]+)==([^\s;#]+)", line)
        if m:
            pins[normalise(m.group(1))] = m.group(2)
    return pins


def normalise(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def _public(version: str) -> str:
    return version.split("+", 1)[0]                    # 2.14.1+cu130 → 2.14.1


def check_python() -> Check:
    version = platform.python_version()
    if sys.version_info < MIN_PYTHON:
        return Check("python", False, f"{version}: the course needs Python ≥ {'.'.join(map(str, MIN_PYTHON))} "
                                      "(3.11 is what CI uses); install it, then `make lab PYTHON=python3.11`")
    return Check("python", True, version)


def check_package(module: str, distribution: str, pins: dict[str, str]) -> Check:
    """Importable, and the version the lock file pins (when there is a lock file)."""
    try:
        mod = importlib.import_module(module)
    except Exception as exc:                          # an import can fail in many ways
        return Check(distribution, False, f"cannot be imported ({type(exc).__name__}: {exc}); {FIX_INSTALL}")
    try:
        version = importlib.metadata.version(distribution)
    except importlib.metadata.PackageNotFoundError:
        version = getattr(mod, "__version__", "unknown")
    pinned = pins.get(normalise(distribution))
    if pinned and _public(version) != _public(pinned) and os.environ.get(VERSIONS_ENV) == "any":
        return Check(distribution, True, f"{version} (the course pins {pinned}; {VERSIONS_ENV}=any)")
    if pinned and _public(version) != _public(pinned):
        return Check(distribution, False, f"{version} installed, the course pins {pinned}: stored outputs and "
                                          f"tuned margins come from the pinned version; {FIX_INSTALL}")
    return Check(distribution, True, version)


def check_widget_frontend() -> Check:
    """jupyterlab_widgets satisfies ipywidgets' requirement, and its lab extension is where
    JupyterLab looks for it, at the major version this ipywidgets speaks to."""
    from packaging.requirements import Requirement

    name = "widget front-end"
    try:
        widgets = importlib.metadata.version("ipywidgets")
        frontend = importlib.metadata.version("jupyterlab_widgets")
    except importlib.metadata.PackageNotFoundError as exc:
        return Check(name, False, f"{exc.args[0]} is not installed, so sliders show as text; {FIX_INSTALL}")
    wanted = [Requirement(r) for r in importlib.metadata.requires("ipywidgets") or []]
    wanted = [r for r in wanted if normalise(r.name) == "jupyterlab-widgets"]
    if wanted and frontend not in wanted[0].specifier:
        return Check(name, False, f"jupyterlab_widgets {frontend} does not match ipywidgets {widgets} "
                                  f"(it needs {wanted[0].specifier}); {FIX_INSTALL}")
    from jupyter_core.paths import jupyter_path

    found = [Path(d) / "@jupyter-widgets" / "jupyterlab-manager" for d in jupyter_path("labextensions")]
    found = [d for d in found if (d / "package.json").exists()]
    if not found:
        return Check(name, False, "the lab extension @jupyter-widgets/jupyterlab-manager is missing from "
                                  f"JupyterLab's folders, so sliders show as text; {FIX_INSTALL}")
    js_version = json.loads((found[0] / "package.json").read_text())["version"]
    major = WIDGET_FRONTEND_MAJOR.get(int(widgets.split(".")[0]))
    if major is not None and int(js_version.split(".")[0]) != major:
        return Check(name, False, f"lab extension {js_version} in {found[0]} cannot show ipywidgets {widgets} "
                                  f"(it needs {major}.x); {FIX_INSTALL}")
    return Check(name, True, f"jupyterlab_widgets {frontend} (lab extension {js_version}) for ipywidgets {widgets}")


# ----------------------------------------------------------------------------- machine

def check_kernel(timeout: float = 120.0) -> Check:
    """A fresh kernel starts and imports the course's package; reports the seconds taken."""
    try:
        from jupyter_client.manager import start_new_kernel
    except ImportError:
        return Check("kernel", False, f"jupyter_client is missing; {FIX_INSTALL}")
    start = time.perf_counter()
    try:
        manager, client = start_new_kernel(kernel_name="python3", startup_timeout=timeout,
                                           stderr=subprocess.DEVNULL)       # its start-up warnings
    except Exception as exc:
        return Check("kernel", False, f"the python3 kernel did not start ({type(exc).__name__}: {exc}); "
                                      f"`python -m ipykernel install --user`, or {FIX_INSTALL}")
    try:
        reply = client.execute_interactive("import contrastive_lab, torch", timeout=timeout,
                                           output_hook=lambda msg: None)
        ok = reply["content"]["status"] == "ok"
    except Exception:
        ok = False
    finally:
        client.stop_channels()
        manager.shutdown_kernel(now=True)
    seconds = time.perf_counter() - start
    if not ok:
        return Check("kernel", False, "the kernel started but cannot import contrastive_lab: it is not the "
                                      "course's environment; start JupyterLab with `make lab`, or pick the "
                                      ".venv kernel")
    return Check("kernel", True, f"starts and imports the course in {seconds:.1f} s")


def available_memory_gb() -> float | None:
    """Memory available to new programs (Linux: MemAvailable), else total memory, in GB."""
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemAvailable:"):
                return int(line.split()[1]) / 1024 ** 2
    except OSError:
        pass
    try:
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 1024 ** 3
    except (ValueError, OSError, AttributeError):
        return None


def check_resources(folder: Path, profile_name: str) -> list[Check]:
    free_disk = shutil.disk_usage(folder).free / 1024 ** 3
    need_disk = MIN_FREE_DISK_GB.get(profile_name, 2.0)
    checks = [Check("free disk", free_disk >= need_disk,
                    f"{free_disk:.1f} GB free in {folder}" + ("" if free_disk >= need_disk else
                    f": the {profile_name} profile needs {need_disk:.0f} GB; free some, or set CLAB_DATA_DIR "
                    "to a folder on a larger disk"))]
    memory = available_memory_gb()
    need_memory = MIN_FREE_MEMORY_GB.get(profile_name, 2.0)
    if memory is None:
        checks.append(Check("free memory", True, "unknown on this system"))
    else:
        checks.append(Check("free memory", memory >= need_memory,
                            f"{memory:.1f} GB available" + ("" if memory >= need_memory else
                            f": the {profile_name} profile needs about {need_memory:.0f} GB; close other programs")))
    return checks


def check_data_folder() -> Check:
    from .data import data_dir

    try:
        folder = data_dir()
        probe = folder / ".write-test"
        probe.write_text("ok")
        probe.unlink()
        return Check("data cache", True, f"{folder} (writable)")
    except (OSError, ValueError) as exc:
        return Check("data cache", False, f"not writable ({exc}); set CLAB_DATA_DIR to a folder you can write to")


def speed_test(profile, device, seconds: float = SPEED_TEST_S) -> float:
    """Milliseconds per SimCLR training step (the profile's encoder, batch and augmentations),
    averaged over about `seconds` of training after one warm-up step."""
    import torch

    from .augment import two_views
    from .data import make_cluttered_digits
    from .losses import nt_xent
    from .methods.simclr import SimCLR
    from .models import make_encoder, prepare_model
    from .train import autocast_context, backward_and_step, make_grad_scaler

    torch.manual_seed(0)
    model = prepare_model(SimCLR(make_encoder(profile), proj_dim=profile.proj_dim), device, profile.channels_last)
    opt = torch.optim.Adam(model.parameters(), profile.lr)
    scaler = make_grad_scaler(device, profile.amp)        # fp16 on sm_7x (a T4), as the training loop does
    x, _ = make_cluttered_digits(profile.batch_size, seed=0)
    x = x.to(device)
    generator = torch.Generator(device=device).manual_seed(0)

    def step():
        v1, v2 = two_views(x, profile.augment, generator)
        with autocast_context(device, profile.amp):     # the dtype the training loop picks for this GPU
            z1, z2 = model(torch.cat([v1, v2])).chunk(2)
            loss = nt_xent(z1, z2, 0.2)
        opt.zero_grad(set_to_none=True)
        backward_and_step(loss, opt, scaler)

    def sync():
        if device.type == "cuda":
            torch.cuda.synchronize()
        elif device.type == "mps":
            torch.mps.synchronize()

    step()
    sync()
    steps, start = 0, time.perf_counter()
    while time.perf_counter() - start < seconds:
        step()
        steps += 1
        if device.type != "cpu" and steps % 10:
            continue
        sync()
    sync()
    return (time.perf_counter() - start) / steps * 1000


def check_speed(profile, device, seconds: float = SPEED_TEST_S) -> list[Check]:
    """The speed test, and what it predicts for each notebook (quick profile only: the
    reference times were measured with it)."""
    ms = speed_test(profile, device, seconds)
    ratio = ms / REFERENCE.step_ms
    speed = f"{1 / ratio:.1f}×" if ratio < 10 else f"1/{ratio:.0f} of"          # never "0.0×"
    detail = (f"{ms:.0f} ms per SimCLR step of {profile.batch_size} images "
              f"({speed} the speed of the reference machine: {REFERENCE.machine})")
    slow = profile.name == "quick" and ratio > TOO_SLOW
    checks = [Check("speed test", True, detail + (
        f": the notebooks will run, about {ratio:.0f}× slower than planned (expected minutes below); to go "
        "faster close other programs, or use a GPU (Colab: see docs/teaching.md)" if slow else ""), warn=slow)]
    if profile.name == "quick":
        expected = expected_seconds(ms)
        known = {k: v for k, v in expected.items() if v is not None}
        line = ", ".join(f"{k}: {v / 60:.1f}" for k, v in known.items())
        unknown = sorted(k for k, v in expected.items() if v is None)
        if not known:
            detail = "no notebook measured yet on the reference machine (docs/teaching.md)"
        else:
            detail = f"{line}; total {sum(known.values()) / 60:.0f} min" + (
                f" (not measured yet: {', '.join(unknown)})" if unknown else "")
        checks.append(Check("expected minutes", True, detail))
    else:
        checks.append(Check("expected minutes", True, f"the {profile.name} profile's times are not in the table "
                                                      "yet (docs/teaching.md)"))
    return checks


# ----------------------------------------------------------------------------- all

def run_checks(fast: bool = False, speed_seconds: float = SPEED_TEST_S) -> list[Check]:
    """Run every check and return them (nothing is printed). `fast` skips the kernel start
    and the speed test (the two that take seconds)."""
    pins = locked_versions()
    checks = [check_python()]
    checks += [check_package(module, dist, pins) for module, dist in REQUIRED.items()]
    if not LOCK_FILE.exists():
        checks.append(Check("lock file", False, f"{LOCK_FILE.name} is missing: the versions cannot be checked; "
                                                "use a complete copy of the course"))
    if not all(c.ok for c in checks if c.name in ("python", "torch", "torchvision", "numpy")):
        return checks                                  # nothing below works without these
    checks.append(check_widget_frontend())
    if not fast:
        checks.append(check_kernel())

    import torch

    from .data import data_dir
    from .device import amp_dtype, get_device
    from .profiles import get_profile

    try:
        device = get_device()
    except ValueError as exc:
        return checks + [Check("device", False, f"{exc}; unset CLAB_DEVICE to let the course choose")]
    if device.type == "cuda":
        name = f"cuda: {torch.cuda.get_device_name(0)}, {torch.cuda.get_device_properties(0).total_memory / 1024 ** 3:.0f} GB"
        dtype = amp_dtype(device)
        name += (f", compute capability {'.'.join(map(str, torch.cuda.get_device_capability(device)))}: "
                 + (f"{str(dtype).removeprefix('torch.')} autocast" if dtype else "float32 (no fast half precision)")
                 + (" with a gradient scaler" if dtype == torch.float16 else ""))
    elif device.type == "mps":
        name = "mps: Apple GPU"
    else:
        threads = torch.get_num_threads()
        name = (f"cpu: {threads} thread{'s' if threads != 1 else ''}, no GPU found "
                "(the quick profile is made for this)")
    checks.append(Check("device", True, name))
    profile = get_profile()
    checks.append(Check("profile", True, f"{profile.name} ({profile.backbone} on {profile.dataset})"))
    checks.append(check_data_folder())
    checks += check_resources(data_dir(), profile.name)
    if not fast:
        checks += check_speed(profile, device, speed_seconds)
    return checks


def report(checks: list[Check]) -> str:
    """The checks as aligned lines: 'OK   name  detail', 'WARN name  detail' or 'FIX  name  detail'."""
    width = max(len(c.name) for c in checks)
    lines = [f"{c.label:<4} {c.name:<{width}}  {c.detail}" for c in checks]
    if not all(c.ok for c in checks):
        verdict = "fix the lines marked FIX"
    elif any(c.warn for c in checks):
        verdict = "ready for the course, with the warnings marked WARN"
    else:
        verdict = "ready for the course"
    return "\n".join(lines + [f"=> {verdict}"])


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m contrastive_lab.preflight", description=__doc__.split("\n")[0])
    parser.add_argument("--fast", action="store_true", help="skip the kernel start and the speed test")
    args = parser.parse_args(argv)
    checks = run_checks(fast=args.fast)
    print(report(checks))
    return 0 if all(c.ok for c in checks) else 1


if __name__ == "__main__":
    raise SystemExit(main())
