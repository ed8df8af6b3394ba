"""Effects measured over seeds: is a difference bigger than what changing the seed does?

One run of a notebook gives one number per method; run it again under another seed
(`CLAB_SEED=1`) and every number moves a little. A difference between two methods is an
effect only when it holds on every seed; otherwise it is a tie at this scale.

In a notebook, name the numbers a comparison rests on:

    >>> record("06", "queue_1024", acc_big)      # returns acc_big; stores it only in a seed run
    >>> spread = load_spread("06")               # every seed's value, from the results file
    >>> print(spread_table(spread, ["queue_8", "queue_1024"]))
    >>> compare(spread, "queue_1024", "queue_8")  # 'ahead on every seed (by 0.03 to 0.05)' or 'a tie …'

`record` writes only when $CLAB_RECORD_DIR is set: `python -m tools.seed_spread` runs copies
of a notebook under several seeds with it set, and writes `benchmarks/results/seeds_NN.json`
(every seed's value of every recorded name), the file `load_spread` reads.
"""
from __future__ import annotations

import json
import math
import os
from pathlib import Path

from .atomic import write_atomically
from .device import seed_offset

RECORD_DIR_ENV_VAR = "CLAB_RECORD_DIR"
RESULTS_DIR = Path(__file__).resolve().parents[1] / "benchmarks" / "results"


class SpreadUnavailable(FileNotFoundError):
    """No results file over seeds for this notebook (run python -m tools.seed_spread)."""


def record(notebook: str, name: str, value: float) -> float:
    """Return `value`; in a seed run ($CLAB_RECORD_DIR set) also store it under `name`."""
    value = float(value)
    if not math.isfinite(value):
        raise ValueError(f"record({notebook!r}, {name!r}): the value is {value}, not a finite number")
    folder = os.environ.get(RECORD_DIR_ENV_VAR, "").strip()
    if folder:
        path = Path(folder) / f"{notebook}-seed{seed_offset()}.json"
        values = json.loads(path.read_text()) if path.exists() else {}
        values[name] = value
        write_atomically(path, lambda tmp: Path(tmp).write_text(json.dumps(values, indent=1, sort_keys=True)))
    return value


def load_spread(notebook: str, folder: str | os.PathLike | None = None) -> dict:
    """{"seeds": [0, 1, 2], "values": {name: [value per seed]}} for `notebook` ("06")."""
    path = Path(folder or RESULTS_DIR) / f"seeds_{notebook}.json"
    if not path.is_file():
        raise SpreadUnavailable(f"no results over seeds for notebook {notebook} ({path.name}); run "
                                f"python -m tools.seed_spread notebooks/{notebook}_*.ipynb")
    spread = json.loads(path.read_text())
    lengths = {len(v) for v in spread["values"].values()}
    if lengths != {len(spread["seeds"])}:
        raise ValueError(f"{path.name}: every name needs one value per seed {spread['seeds']}")
    return spread


def values_of(spread: dict, name: str) -> list[float]:
    """Every seed's value of `name`; a clear error naming what the file holds."""
    if name not in spread["values"]:
        raise KeyError(f"{name!r} was not recorded over seeds; the results file has {sorted(spread['values'])}")
    return spread["values"][name]


def spread_table(spread: dict, names: list[str]) -> str:
    """One line per name: mean, lowest and highest over the seeds."""
    width = max([28] + [len(name) for name in names])
    lines = [f"{'':<{width}} mean    lowest  highest   over seeds {spread['seeds']}"]
    for name in names:
        v = values_of(spread, name)
        lines.append(f"{name:<{width}} {sum(v) / len(v):.3f}   {min(v):.3f}   {max(v):.3f}")
    return "\n".join(lines)


def differences(spread: dict, a: str, b: str) -> list[float]:
    """a − b on each seed (the same seed's runs are paired)."""
    return [x - y for x, y in zip(values_of(spread, a), values_of(spread, b))]


def holds_on_every_seed(spread: dict, a: str, b: str, margin: float = 0.0) -> bool:
    """True when a − b > margin on every seed."""
    return all(d > margin for d in differences(spread, a, b))


def compare(spread: dict, a: str, b: str) -> str:
    """'ahead on every seed (by x to y)', 'behind on every seed (…)' or 'a tie at this scale (…)'."""
    d = differences(spread, a, b)
    span = f"by {min(d):+.3f} to {max(d):+.3f} over {len(d)} seeds"
    if all(x > 0 for x in d):
        return f"{a} ahead of {b} on every seed ({span})"
    if all(x < 0 for x in d):
        return f"{a} behind {b} on every seed ({span})"
    return f"{a} against {b}: a tie at this scale ({span})"


# ------------------------------------------------------------------ sweeps run in benchmarks/
def load_sweep(path: str | os.PathLike) -> dict:
    """A sweep of runs over seeds written by a script in benchmarks/, checked before use.

    The file holds {"metrics": [names], "runs": [{"loss": str, "batch": int, "seed": int,
    name: value for every metric}, ...]} (`benchmarks/siglip_batch_sizes.py` writes one).
    Every (loss, batch) cell must hold the same seeds, each once, so that runs of the same
    seed can be paired; every metric value must be a finite number. A file that breaks any
    of this raises ValueError naming the file and what is wrong; a missing file raises
    SpreadUnavailable. Returns the parsed dict.
    """
    path = Path(path)
    if not path.is_file():
        raise SpreadUnavailable(f"no sweep results at {path}; run the script in benchmarks/ that writes "
                                f"{path.name}")
    try:
        sweep = json.loads(path.read_text())
    except json.JSONDecodeError as err:
        raise ValueError(f"{path.name} is not valid JSON ({err}); rerun the sweep that writes it") from None
    if not isinstance(sweep, dict) or not isinstance(sweep.get("metrics"), list) or not sweep.get("runs"):
        raise ValueError(f"{path.name}: expected {{'metrics': [names], 'runs': [runs]}} with at least one run")
    seeds_of: dict[tuple, list] = {}
    for i, run in enumerate(sweep["runs"]):
        missing = [key for key in ("loss", "batch", "seed", *sweep["metrics"]) if key not in run]
        if missing:
            raise ValueError(f"{path.name}: run {i} lacks {missing}")
        bad = [m for m in sweep["metrics"] if not isinstance(run[m], (int, float)) or not math.isfinite(run[m])]
        if bad:
            raise ValueError(f"{path.name}: run {i} ({run['loss']}, batch {run['batch']}, seed {run['seed']}) "
                             f"has no finite value for {bad}")
        seeds_of.setdefault((run["loss"], run["batch"]), []).append(run["seed"])
    for (loss, batch), seeds in seeds_of.items():
        if len(set(seeds)) != len(seeds):
            raise ValueError(f"{path.name}: {loss} at batch {batch} repeats a seed ({sorted(seeds)})")
    if len({tuple(sorted(s)) for s in seeds_of.values()}) != 1:
        raise ValueError(f"{path.name}: not every (loss, batch) has the same seeds, so runs cannot be paired: "
                         + "; ".join(f"{loss} batch {batch}: {sorted(s)}" for (loss, batch), s in seeds_of.items()))
    return sweep


def sweep_spread(sweep: dict, batch: int) -> dict:
    """The runs of a `load_sweep` result at one batch size as a spread, {"seeds": [...],
    "values": {"<loss> · <metric>": [value per seed]}}, seeds in the same order for every
    name, so `spread_table`, `compare` and `holds_on_every_seed` apply to it."""
    runs = sorted((r for r in sweep["runs"] if r["batch"] == batch), key=lambda r: r["seed"])
    if not runs:
        raise KeyError(f"no runs at batch {batch}; the sweep has batches {sorted({r['batch'] for r in sweep['runs']})}")
    values: dict[str, list[float]] = {}
    for run in runs:
        for metric in sweep["metrics"]:
            values.setdefault(f"{run['loss']} · {metric}", []).append(run[metric])
    return {"seeds": sorted({r["seed"] for r in runs}), "values": values}
