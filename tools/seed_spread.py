"""Run notebooks under several seeds and store what they `record`, for `spread.load_spread`.

    python -m tools.seed_spread notebooks/06_moco.ipynb [--seeds 0 1 2]

Each seed runs a copy of the notebook top to bottom in a fresh kernel (quick profile,
CLAB_SEED=s, the notebooks folder as working folder, a temporary model cache shared by the
seeds: a cached model's key includes its seed). The stored notebook is not touched. Every
value the notebook passes to `contrastive_lab.spread.record` is collected, and
benchmarks/results/seeds_NN.json gets one value per seed for each name. A seed whose run
stops (an assertion that does not hold on that seed) writes nothing and exits 1: an
assertion must hold on every seed.

On a busy machine run the seeds as separate processes, then join their files:

    python -m tools.seed_spread NB --seeds 1 --out /tmp/seed1      (one per seed, at once)
    python -m tools.seed_spread --combine /tmp/seed0/seeds_06.json /tmp/seed1/seeds_06.json ...
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

from contrastive_lab.atomic import write_atomically
from contrastive_lab.spread import RESULTS_DIR

from .notebook_tools import read_notebook, run_in_kernel


def run_seed(notebook: Path, seed: int, record_dir: Path, model_dir: Path, timeout: int = 3600) -> float:
    """Execute a copy of `notebook` under CLAB_SEED=seed; return its seconds."""
    os.environ.update(CLAB_SEED=str(seed), CLAB_PROFILE="quick", CLAB_RECORD_DIR=str(record_dir),
                      CLAB_MODEL_DIR=str(model_dir))
    return run_in_kernel(read_notebook(notebook), notebook.parent.resolve(), timeout)


def collect(record_dir: Path, number: str, seeds: list[int]) -> dict:
    """{"seeds": seeds, "values": {name: [one value per seed]}} from the seed runs' records."""
    per_seed = []
    for seed in seeds:
        path = record_dir / f"{number}-seed{seed}.json"
        per_seed.append(json.loads(path.read_text()) if path.exists() else {})
    names = sorted(set().union(*per_seed))
    missing = [(n, s) for n in names for s, rec in zip(seeds, per_seed) if n not in rec]
    if missing:
        raise ValueError(f"notebook {number}: not recorded on every seed: {missing[:5]}")
    return {"seeds": seeds, "values": {n: [round(rec[n], 4) for rec in per_seed] for n in names}}


def combine(paths: list[Path]) -> dict:
    """One results file from several runs of the same notebook under other seeds."""
    parts = [json.loads(Path(p).read_text()) for p in paths]
    if len({p["notebook"] for p in parts}) != 1:
        raise ValueError(f"the files are of different notebooks: {sorted({p['notebook'] for p in parts})}")
    names = set(parts[0]["values"])
    if any(set(p["values"]) != names for p in parts):
        raise ValueError("the files recorded different names: run every seed on the same notebook")
    order = sorted(range(len(parts)), key=lambda i: parts[i]["seeds"])
    parts = [parts[i] for i in order]
    seeds = [s for p in parts for s in p["seeds"]]
    if len(set(seeds)) != len(seeds):
        raise ValueError(f"a seed appears twice: {seeds}")
    return {"seeds": seeds, "values": {n: [v for p in parts for v in p["values"][n]] for n in sorted(names)},
            "notebook": parts[0]["notebook"], "profile": "quick", "commit": sorted({p["commit"] for p in parts})[-1],
            "seconds": [s for p in parts for s in p["seconds"]]}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tools.seed_spread")
    parser.add_argument("notebooks", nargs="*", type=Path)
    parser.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2])
    parser.add_argument("--out", type=Path, default=RESULTS_DIR)
    parser.add_argument("--combine", nargs="+", type=Path, help="join results files of single-seed runs")
    args = parser.parse_args(argv)
    if args.combine:
        result = combine(args.combine)
        target = args.out / f"seeds_{result['notebook'][:2]}.json"
        args.out.mkdir(parents=True, exist_ok=True)
        write_atomically(target, lambda t: Path(t).write_text(json.dumps(result, indent=1, sort_keys=True) + "\n"))
        print(f"wrote {target} (seeds {result['seeds']})")
        return 0
    status = 0
    with tempfile.TemporaryDirectory(prefix="clab-seeds-") as tmp:
        model_dir = Path(tmp) / "models"
        model_dir.mkdir()
        for notebook in args.notebooks:
            number = notebook.name[:2]
            record_dir = Path(tmp) / number
            record_dir.mkdir()
            seconds = []
            try:
                for seed in args.seeds:
                    seconds.append(run_seed(notebook, seed, record_dir, model_dir))
                    print(f"{notebook.name}: seed {seed} done in {seconds[-1]:.0f} s", flush=True)
                result = collect(record_dir, number, args.seeds)
            except Exception as exc:                   # a cell failed: report it, write nothing
                print(f"{notebook.name}: {type(exc).__name__}: {(str(exc).strip().splitlines() or ['(no message)'])[-1][:300]}",
                      file=sys.stderr, flush=True)
                status = 1
                continue
            commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True).stdout.strip()
            result.update(notebook=notebook.name, profile="quick", commit=commit,
                          seconds=[round(s) for s in seconds])
            args.out.mkdir(parents=True, exist_ok=True)
            target = args.out / f"seeds_{number}.json"
            write_atomically(target, lambda t: Path(t).write_text(json.dumps(result, indent=1, sort_keys=True) + "\n"))
            print(f"{notebook.name}: wrote {target} ({len(result['values'])} names)", flush=True)
    return status


if __name__ == "__main__":
    sys.exit(main())
