"""Kill rate per module from the last `make mutation` run (mutmut's results in mutants/).

    python tools/mutation_score.py            # one line per mutated module
    python tools/mutation_score.py --list     # and the name of every mutant no test killed

A mutant is killed when a test failed on it. The kill rate is killed / checked: a mutant
that no test reaches counts as checked and not killed. Two kinds are counted apart:
unchecked mutants (a run stopped by its time cap; `make mutation` finishes them) and
timeouts. mutmut's time limit is wall clock, and on a loaded machine it also fires on
mutants that are merely slow (its timer can even hit a recycled process id), so a timeout
says nothing either way: rerun those mutants by name (`mutmut run NAME ...`) on a quiet
machine.
"""
from __future__ import annotations

import argparse
import json
from collections import Counter
from pathlib import Path

from mutmut.stats import status_by_exit_code

KILLED = {"killed", "caught by type check"}
APART = {"not checked", "timeout"}


def module_results(root: Path = Path("mutants")) -> dict[str, dict[str, str]]:
    """{'contrastive_lab/losses.py': {mutant name: status}} for every mutated file."""
    results = {}
    for meta in sorted(root.rglob("*.py.meta")):
        codes = json.loads(meta.read_text())["exit_code_by_key"]
        results[str(meta.relative_to(root))[:-len(".meta")]] = {
            name: status_by_exit_code[code] for name, code in codes.items()}
    return results


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--list", action="store_true", help="name every mutant that was not killed")
    args = parser.parse_args(argv)
    results = module_results()
    if not results:
        raise SystemExit("no mutmut results in mutants/: run `make mutation` first")
    for path, statuses in results.items():
        counts = Counter(statuses.values())
        apart = {status: counts.pop(status, 0) for status in APART}
        checked = sum(counts.values())
        killed = sum(n for status, n in counts.items() if status in KILLED)
        rate = f"{100 * killed / checked:5.1f} %" if checked else "    -  "
        others = ", ".join(f"{n} {status}" for status, n in sorted(counts.items()) if status not in KILLED)
        print(f"{path:40s} {rate} killed ({killed} of {checked}; {others or 'none left'})"
              + "".join(f"; {n} {status}" for status, n in apart.items() if n))
        if args.list:
            for name, status in sorted(statuses.items()):
                if status not in KILLED and status != "not checked":
                    print(f"    {status:10s} {name}")


if __name__ == "__main__":
    main()
