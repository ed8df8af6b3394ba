"""The production checklist: every item passes on a healthy deployment and fails on one built
to violate it, with a reason that names the mistake."""
import dataclasses

import pytest
import torch

from contrastive_lab.checklist import (CHECKS, QUESTIONS, Deployment, FineTuningRecord, HeldOutQueries, Thresholds,
                                       fingerprints, report, run_checklist)
from contrastive_lab.export import Preprocessing, export_encoder, load_exported
from contrastive_lab.index import build_index
from contrastive_lab.methods.simclr import SimCLR
from contrastive_lab.models import SmallCNN
from contrastive_lab.monitoring import DriftMonitor

PREP = Preprocessing(image_size=(16, 16), channels=3)
ITEMS = [name for name, _ in CHECKS]


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
    train_x, corpus_x, ref_x = (torch.rand(n, 3, 16, 16, generator=g) for n in (40, 60, 120))
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
                reference=reference)


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
    assert f"{len(CHECKS)}/{len(CHECKS)} checks pass" in text and len(CHECKS) == 8
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
