"""The production checklist: every item passes on a healthy deployment and fails on one built
to violate it, with a reason that names the mistake."""
import dataclasses
import json

import pytest
import torch

from contrastive_lab.checklist import (CHECKS, QUESTIONS, Deployment, FineTuningRecord, HeldOutQueries, Thresholds,
                                       TrainingRecord, fingerprints, report, run_checklist,
                                       training_record_from_results)
from contrastive_lab.export import Preprocessing, export_encoder, load_exported
from contrastive_lab.index import build_index
from contrastive_lab.methods.simclr import SimCLR
from contrastive_lab.models import SmallCNN
from contrastive_lab.monitoring import DriftMonitor

PREP = Preprocessing(image_size=(16, 16), channels=3)
ITEMS = [name for name, _ in CHECKS]
NEGATIVES = "negative strategy chosen on validation"
TAU_BATCH = "τ and batch size tuned jointly on identities disjoint from training"
GRID = {(0.1, 32): 0.45, (0.1, 64): 0.50, (0.5, 32): 0.30, (0.5, 64): 0.35}     # best: τ = 0.1, batch 64


def build(meta):
    return SmallCNN((4, 8, 8, 16))


@pytest.fixture(scope="module")
def parts(tmp_path_factory):
    folder = tmp_path_factory.mktemp("deploy")
    torch.manual_seed(0)
    model = SimCLR(SmallCNN((4, 8, 8, 16)), proj_dim=6)
    with torch.no_grad():
        model(torch.rand(8, 3, 16, 16))
    g = torch.Generator().manual_seed(0)
    train_x, corpus_x, ref_x, val_x = (torch.rand(n, 3, 16, 16, generator=g) for n in (40, 60, 120, 20))
    export_encoder(model, folder / "v1.pt", version="v1", preprocessing=PREP)
    export_encoder(model, folder / "raw.pt", version="v1", preprocessing=PREP, normalize=False)
    export_encoder(model, folder / "head.pt", version="v1", preprocessing=PREP, drop_head=False)
    served = load_exported(folder / "v1.pt", build)
    with torch.no_grad():
        corpus = served(corpus_x)
        raw_corpus = load_exported(folder / "raw.pt", build)(corpus_x)
        reference = served(ref_x)
    queries = (corpus_x[:30] + 0.002 * torch.rand(30, 3, 16, 16, generator=g)).clamp(0, 1)   # near-duplicates
    with_head = load_exported(folder / "head.pt", lambda meta: SimCLR(SmallCNN((4, 8, 8, 16)), proj_dim=6))
    return dict(model=model, served=served, raw_served=load_exported(folder / "raw.pt", build), with_head=with_head,
                corpus=corpus, raw_corpus=raw_corpus, train_x=train_x, corpus_x=corpus_x, queries=queries,
                reference=reference, val_x=val_x)


@pytest.fixture
def healthy(parts):
    p = parts
    return Deployment(
        model=p["served"],
        index=build_index(p["corpus"], "Flat", model_version="v1"),
        training_ids=fingerprints(p["train_x"]),
        validation=HeldOutQueries(p["queries"], torch.arange(30), torch.arange(60), k=5, min_recall=0.9, min_mrr=0.8),
        thresholds=Thresholds({"near_duplicate": 0.99}, fingerprints(p["corpus_x"])),
        monitor=DriftMonitor(p["reference"], model_version="v1"),
        fine_tuning=FineTuningRecord("v1", "random init", "40 training images", "Recall@5 on 30 held-out queries",
                                     base_score=0.2, tuned_score=1.0),
        training=TrainingRecord("in-batch", 0.1, 64, {"in-batch": 0.50, "queue": 0.40},
                                GRID, fingerprints(p["val_x"]), metric="validation k-NN"),
    )


def failed(deployment):
    return {r.item for r in run_checklist(deployment) if not r.passed}


def result(deployment, item):
    return next(r for r in run_checklist(deployment) if r.item == item)


def test_every_item_passes_on_a_healthy_deployment(healthy):
    results = run_checklist(healthy)
    assert [r.item for r in results] == ITEMS
    assert all(r.passed for r in results), "\n".join(map(str, results))


def test_unnormalised_export_fails_outputs_normalised(healthy, parts):
    broken = dataclasses.replace(healthy, model=parts["raw_served"])
    r = result(broken, "outputs are L2-normalised")
    assert not r.passed and "normalize=True" in r.reason


def test_exported_head_fails_head_dropped(healthy, parts):
    assert parts["with_head"].embedding_dim == 6                  # the head's output, not the encoder's
    r = result(dataclasses.replace(healthy, model=parts["with_head"]), "projection head dropped")
    assert not r.passed and "'encoder.head' (ProjectionHead)" in r.reason


def test_index_over_unnormalised_vectors_fails_metric(healthy, parts):
    index = build_index(parts["raw_corpus"], "Flat", model_version="v1", normalized=False)
    r = result(dataclasses.replace(healthy, index=index), "index metric matches training similarity")
    assert not r.passed and "UNNORMALISED" in r.reason


def test_l2_over_unit_vectors_ranks_like_cosine_and_passes(healthy, parts):
    index = build_index(parts["corpus"], "Flat", model_version="v1", metric="l2")
    assert result(dataclasses.replace(healthy, index=index), "index metric matches training similarity").passed


def test_index_of_another_model_version_fails_version(healthy, parts):
    index = build_index(parts["corpus"], "Flat", model_version="v0")
    r = result(dataclasses.replace(healthy, index=index), "index version equals model version")
    assert not r.passed and "'v0'" in r.reason and "re-embed" in r.reason


@pytest.mark.parametrize("how", ["missing", "training images", "no floor", "below floor"])
def test_untracked_or_failing_retrieval_fails(healthy, parts, how):
    v = healthy.validation
    broken_validation = {
        "missing": None,
        "training images": dataclasses.replace(v, images=parts["train_x"][:30]),
        "no floor": dataclasses.replace(v, min_recall=0.0, min_mrr=0.0),
        "below floor": dataclasses.replace(v, labels=torch.arange(30, 60)),     # every query's source is wrong
    }[how]
    r = result(dataclasses.replace(healthy, validation=broken_validation), "Recall@K and MRR tracked on held-out queries")
    assert not r.passed
    assert {"missing": "no held-out", "training images": "were training images", "no floor": "no floor",
            "below floor": "below the floor"}[how] in r.reason


def test_thresholds_calibrated_on_training_identities_fail(healthy, parts):
    leaky = Thresholds({"near_duplicate": 0.99}, fingerprints(parts["train_x"]))
    r = result(dataclasses.replace(healthy, thresholds=leaky), "thresholds calibrated on identities disjoint from training")
    assert not r.passed and "40 of the 40" in r.reason
    assert not result(dataclasses.replace(healthy, thresholds=None),
                      "thresholds calibrated on identities disjoint from training").passed


def test_missing_or_stale_drift_monitor_fails(healthy, parts):
    item = "drift monitor configured"
    assert "no drift monitor" in result(dataclasses.replace(healthy, monitor=None), item).reason
    stale = DriftMonitor(parts["reference"], model_version="v0")
    r = result(dataclasses.replace(healthy, monitor=stale), item)
    assert not r.passed and "'v0'" in r.reason


def test_each_violation_fails_its_own_item_first(healthy, parts):
    """Violations that leave the rest of the deployment coherent fail exactly one item."""
    assert failed(dataclasses.replace(healthy, monitor=None)) == {"drift monitor configured"}
    assert failed(dataclasses.replace(healthy, thresholds=None)) == {
        "thresholds calibrated on identities disjoint from training"}


def test_report_lists_results_and_the_questions_for_a_person(healthy):
    text = report(run_checklist(healthy), notes={"positive_pairs": "two crops of the same image"})
    assert f"{len(CHECKS)}/{len(CHECKS)} checks pass" in text and len(CHECKS) == 10
    assert all(q in text for q in QUESTIONS.values())
    assert "answer on file: two crops of the same image" in text


def test_fingerprints_tell_images_apart():
    x = torch.rand(3, 3, 4, 4)
    assert len(fingerprints(x)) == 3
    assert fingerprints(x[:1]) == fingerprints(x[:1].clone())


def test_a_deployment_without_a_fine_tuning_record_fails_that_item_only(healthy):
    broken = dataclasses.replace(healthy, fine_tuning=None)
    assert failed(broken) == {"domain fine-tuning recorded for the served model"}
    assert "FineTuningRecord" in result(broken, "domain fine-tuning recorded for the served model").reason


def test_a_fine_tuning_record_of_another_model_version_fails(healthy):
    stale = dataclasses.replace(healthy.fine_tuning, model_version="v0")
    r = result(dataclasses.replace(healthy, fine_tuning=stale), "domain fine-tuning recorded for the served model")
    assert not r.passed and "'v0'" in r.reason and "'v1'" in r.reason


def test_a_fine_tune_that_lost_to_its_base_fails(healthy):
    worse = dataclasses.replace(healthy.fine_tuning, base_score=0.9, tuned_score=0.8)
    r = result(dataclasses.replace(healthy, fine_tuning=worse), "domain fine-tuning recorded for the served model")
    assert not r.passed and "below its base" in r.reason and "0.900 → 0.800" in r.reason


def test_a_passing_fine_tuning_record_says_what_it_records(healthy):
    r = result(healthy, "domain fine-tuning recorded for the served model")
    assert r.passed and "random init" in r.reason and "0.200 → 1.000" in r.reason


def test_the_guide_items_on_negatives_and_tau_batch_come_first_in_its_order():
    assert ITEMS[:3] == [NEGATIVES, TAU_BATCH, "outputs are L2-normalised"]


def test_a_deployment_without_a_training_record_fails_both_items_and_says_what_to_record(healthy):
    broken = dataclasses.replace(healthy, training=None)
    assert failed(broken) == {NEGATIVES, TAU_BATCH}
    for item in (NEGATIVES, TAU_BATCH):
        reason = result(broken, item).reason
        assert "no training record" in reason and "negative strategy" in reason and "τ × batch grid" in reason
        assert "validation identities" in reason and "TrainingRecord" in reason


def test_passing_training_checks_say_what_was_compared(healthy):
    negatives, grid = result(healthy, NEGATIVES), result(healthy, TAU_BATCH)
    assert negatives.passed and "'in-batch', the best of 2" in negatives.reason and "queue 0.400" in negatives.reason
    assert grid.passed and "0.500 on a 2 × 2 grid" in grid.reason and "it is the best cell" in grid.reason
    assert "20 validation identities disjoint from training" in grid.reason


def test_a_strategy_that_lost_on_validation_fails_by_how_much(healthy):
    queue = dataclasses.replace(healthy.training, negatives="queue")
    r = result(dataclasses.replace(healthy, training=queue), NEGATIVES)
    assert not r.passed and "serves 'queue' but 'in-batch' scored 0.100 higher" in r.reason


@pytest.mark.parametrize("scores, negatives, expected", [
    ({"in-batch": 0.5}, "in-batch", "score ≥ 2 strategies"),                  # nothing to compare with
    ({"queue": 0.4, "hard-mined": 0.3}, "in-batch", "score ≥ 2 strategies"),  # the served one not among them
    ({"in-batch": 0.5, "queue": 0.4}, "random", "none of in-batch, queue, hard-mined"),
])
def test_a_strategy_not_chosen_by_a_comparison_fails(healthy, scores, negatives, expected):
    record = dataclasses.replace(healthy.training, negatives=negatives, strategy_scores=scores)
    r = result(dataclasses.replace(healthy, training=record), NEGATIVES)
    assert not r.passed and expected in r.reason


def test_a_served_cell_below_the_grid_best_fails_naming_the_best_cell(healthy):
    record = dataclasses.replace(healthy.training, temperature=0.1, batch_size=32)
    r = result(dataclasses.replace(healthy, training=record), TAU_BATCH)
    assert not r.passed
    assert "the best cell is τ = 0.1, batch 64 at 0.500, 0.050 higher (tolerance 0.000)" in r.reason


def test_a_served_cell_within_the_tolerance_passes_and_says_so(healthy):
    record = dataclasses.replace(healthy.training, temperature=0.1, batch_size=32, tolerance=0.06)
    r = result(dataclasses.replace(healthy, training=record), TAU_BATCH)
    assert r.passed and "0.050 below the best (τ = 0.1, batch 64), within 0.060" in r.reason


@pytest.mark.parametrize("grid, expected", [
    ({(0.1, 64): 0.5, (0.5, 64): 0.4}, "≥ 2 values of each"),                            # τ swept at one batch size
    ({(0.1, 64): 0.5, (0.1, 32): 0.4}, "≥ 2 values of each"),                            # one τ only
    ({k: v for k, v in GRID.items() if k != (0.5, 32)}, "1 cells missing, e.g. (0.5, 32)"),   # not a full product
    ({(0.2, 64): 0.5, (0.2, 32): 0.4, (0.5, 64): 0.3, (0.5, 32): 0.2}, "is not a cell of the grid"),
])
def test_a_grid_that_is_not_a_joint_sweep_around_the_served_cell_fails(healthy, grid, expected):
    record = dataclasses.replace(healthy.training, grid=grid)
    r = result(dataclasses.replace(healthy, training=record), TAU_BATCH)
    assert not r.passed and expected in r.reason


def test_validation_identities_shared_with_training_fail(healthy, parts):
    leaky_ids = fingerprints(parts["val_x"]) | fingerprints(parts["train_x"][:5])
    record = dataclasses.replace(healthy.training, validation_ids=leaky_ids)
    r = result(dataclasses.replace(healthy, training=record), TAU_BATCH)
    assert not r.passed and "5 of the 25 validation identities were in the training data" in r.reason
    unrecorded = dataclasses.replace(healthy.training, validation_ids=set())
    assert "which identities" in result(dataclasses.replace(healthy, training=unrecorded), TAU_BATCH).reason


def _write_results(folder, sweep_cells):
    (folder / "seeds_06.json").write_text(json.dumps({"seeds": [0, 1, 2], "values": {
        "validation, SimCLR batch 32": [0.5, 0.4, 0.3], "validation, MoCo kept m": [0.2, 0.3, 0.1]}}))
    (folder / "tau_batch.json").write_text(json.dumps({"metric": "validation k-NN", "summary": [
        {"tau": t, "batch": b, "validation k-NN": {"mean": m, "min": m - 0.01, "max": m + 0.01}}
        for (t, b), m in sweep_cells.items()]}))


def test_a_record_built_from_the_results_files_holds_their_means(tmp_path, healthy, parts):
    _write_results(tmp_path, GRID)
    record = training_record_from_results(0.1, 64, fingerprints(parts["val_x"]), results=tmp_path)
    assert record.negatives == "in-batch" and (record.temperature, record.batch_size) == (0.1, 64)
    assert record.strategy_scores == pytest.approx({"in-batch": 0.4, "queue": 0.2})
    assert record.grid == GRID
    assert record.tolerance == pytest.approx(0.02)          # by default, the best cell's spread over seeds
    deployment = dataclasses.replace(healthy, training=record)
    assert result(deployment, NEGATIVES).passed and result(deployment, TAU_BATCH).passed
    off_best = training_record_from_results(0.5, 32, fingerprints(parts["val_x"]), results=tmp_path)
    assert "the best cell is τ = 0.1, batch 64" in result(dataclasses.replace(healthy, training=off_best), TAU_BATCH).reason


def test_a_record_from_results_without_the_sweep_names_the_script(tmp_path):
    _write_results(tmp_path, GRID)
    (tmp_path / "tau_batch.json").unlink()
    with pytest.raises(FileNotFoundError, match="tau_batch_sweep.py"):
        training_record_from_results(0.1, 64, {"x"}, results=tmp_path)


def test_the_course_results_give_a_full_record_for_its_served_simclr(parts):
    """The repository's results files build a record a notebook can pass in one line."""
    record = training_record_from_results(0.2, 128, fingerprints(parts["val_x"]))
    assert set(record.strategy_scores) == {"in-batch", "queue"}
    taus, batches = {t for t, _ in record.grid}, {b for _, b in record.grid}
    assert len(taus) >= 2 and len(batches) >= 2 and len(record.grid) == len(taus) * len(batches)
    assert (0.2, 128) in record.grid
