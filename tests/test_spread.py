"""spread: a difference is an effect only when it holds on every seed."""
import json

import pytest

from contrastive_lab.spread import (SpreadUnavailable, compare, holds_on_every_seed, load_spread, load_sweep,
                                    record, spread_table, sweep_spread)
from tools.seed_spread import collect


def test_record_returns_the_value_and_writes_only_in_a_seed_run(tmp_path, monkeypatch):
    monkeypatch.delenv("CLAB_RECORD_DIR", raising=False)
    assert record("06", "queue_8", 0.31) == 0.31
    assert list(tmp_path.iterdir()) == []
    monkeypatch.setenv("CLAB_RECORD_DIR", str(tmp_path))
    monkeypatch.setenv("CLAB_SEED", "2")
    record("06", "queue_8", 0.31)
    record("06", "queue_1024", 0.36)
    assert json.loads((tmp_path / "06-seed2.json").read_text()) == {"queue_8": 0.31, "queue_1024": 0.36}
    with pytest.raises(ValueError, match="not a finite number"):
        record("06", "broken", float("nan"))


def test_collect_needs_every_name_on_every_seed(tmp_path):
    (tmp_path / "06-seed0.json").write_text(json.dumps({"a": 0.5, "b": 0.4}))
    (tmp_path / "06-seed1.json").write_text(json.dumps({"a": 0.6, "b": 0.3}))
    assert collect(tmp_path, "06", [0, 1]) == {"seeds": [0, 1], "values": {"a": [0.5, 0.6], "b": [0.4, 0.3]}}
    (tmp_path / "06-seed2.json").write_text(json.dumps({"a": 0.6}))
    with pytest.raises(ValueError, match="not recorded on every seed"):
        collect(tmp_path, "06", [0, 1, 2])


def test_compare_calls_an_effect_only_what_holds_on_every_seed(tmp_path):
    spread = {"seeds": [0, 1, 2], "values": {"big": [0.36, 0.35, 0.37], "small": [0.31, 0.30, 0.33],
                                              "noisy": [0.37, 0.33, 0.36]}}
    assert compare(spread, "big", "small").startswith("big ahead of small on every seed (by +0.040 to +0.050")
    assert compare(spread, "small", "big").startswith("small behind big on every seed")
    assert "a tie at this scale" in compare(spread, "noisy", "big")
    assert holds_on_every_seed(spread, "big", "small", margin=0.03)
    assert not holds_on_every_seed(spread, "big", "small", margin=0.045)
    table = spread_table(spread, ["big", "small"])
    assert "0.360   0.350   0.370" in table
    long_name = "validation at the end of the longest run, K=1024"
    spread["values"][long_name] = [0.5, 0.4, 0.6]
    lines = spread_table(spread, ["big", long_name]).splitlines()
    assert len({line.index("0.") for line in lines[1:]}) == 1, "the columns line up under a long name"
    with pytest.raises(KeyError, match="was not recorded over seeds"):
        compare(spread, "big", "missing")


def test_load_spread_says_how_to_make_a_missing_file(tmp_path):
    with pytest.raises(SpreadUnavailable, match="python -m tools.seed_spread notebooks/06_"):
        load_spread("06", tmp_path)
    (tmp_path / "seeds_06.json").write_text(json.dumps({"seeds": [0, 1, 2], "values": {"a": [1.0, 2.0]}}))
    with pytest.raises(ValueError, match="one value per seed"):
        load_spread("06", tmp_path)


def test_single_seed_runs_combine_in_seed_order(tmp_path):
    from tools.seed_spread import combine

    def part(seed, a):
        path = tmp_path / f"s{seed}.json"
        path.write_text(json.dumps({"seeds": [seed], "values": {"a": [a]}, "notebook": "06_moco.ipynb",
                                    "profile": "quick", "commit": "abc", "seconds": [100]}))
        return path

    joined = combine([part(2, 0.3), part(0, 0.1), part(1, 0.2)])
    assert joined["seeds"] == [0, 1, 2] and joined["values"] == {"a": [0.1, 0.2, 0.3]}
    with pytest.raises(ValueError, match="a seed appears twice"):
        combine([part(0, 0.1), part(0, 0.1)])


def _sweep_file(tmp_path, runs, metrics=("zero-shot held-out",)):
    path = tmp_path / "sweep.json"
    path.write_text(json.dumps({"metrics": list(metrics), "runs": runs}))
    return path


def _run(loss, batch, seed, value):
    return {"loss": loss, "batch": batch, "seed": seed, "zero-shot held-out": value}


def test_sweep_pairs_the_runs_of_each_seed_at_one_batch_size(tmp_path):
    runs = [_run("CLIP", 8, s, v) for s, v in ((1, 0.30), (0, 0.20))] + \
           [_run("SigLIP", 8, s, v) for s, v in ((0, 0.25), (1, 0.28))]
    spread = sweep_spread(load_sweep(_sweep_file(tmp_path, runs)), 8)
    assert spread == {"seeds": [0, 1], "values": {"CLIP · zero-shot held-out": [0.20, 0.30],
                                                  "SigLIP · zero-shot held-out": [0.25, 0.28]}}
    assert "a tie at this scale" in compare(spread, "SigLIP · zero-shot held-out", "CLIP · zero-shot held-out")
    with pytest.raises(KeyError, match=r"no runs at batch 32; the sweep has batches \[8\]"):
        sweep_spread(load_sweep(_sweep_file(tmp_path, runs)), 32)


@pytest.mark.parametrize("runs, message", [
    ([], "at least one run"),
    ([{"loss": "CLIP", "batch": 8, "seed": 0}], r"run 0 lacks \['zero-shot held-out'\]"),
    ([_run("CLIP", 8, 0, float("nan"))], r"seed 0\) has no finite value for \['zero-shot held-out'\]"),
    ([_run("CLIP", 8, 0, "0.3")], "no finite value"),
    ([_run("CLIP", 8, 0, 0.3), _run("CLIP", 8, 0, 0.4)], r"CLIP at batch 8 repeats a seed \(\[0, 0\]\)"),
    ([_run("CLIP", 8, 0, 0.3), _run("CLIP", 8, 1, 0.3), _run("SigLIP", 8, 0, 0.3)],
     "not every .loss, batch. has the same seeds"),
])
def test_a_malformed_sweep_file_is_refused_with_what_is_wrong(tmp_path, runs, message):
    with pytest.raises(ValueError, match=message):
        load_sweep(_sweep_file(tmp_path, runs))


def test_a_sweep_file_that_is_missing_or_not_json_is_named(tmp_path):
    with pytest.raises(SpreadUnavailable, match="no sweep results at .*absent.json"):
        load_sweep(tmp_path / "absent.json")
    (tmp_path / "cut.json").write_text('{"metrics": ["a"], "runs": [{"loss"')
    with pytest.raises(ValueError, match="cut.json is not valid JSON"):
        load_sweep(tmp_path / "cut.json")
