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
