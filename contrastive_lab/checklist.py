"""The production checklist for an embedding service, as code.

Each checkable item runs against a `Deployment` (the served model, its index, held-out
queries, calibrated thresholds, a drift monitor) and says pass or fail WITH A REASON.
The items that need a person are listed as questions: code cannot know whether your
positive pairs mean what your users mean by "similar".

    deployment = Deployment(model=served, index=index, training_ids=fingerprints(train_x),
                            validation=HeldOutQueries(images, labels, gallery_labels, min_recall=0.8),
                            thresholds=Thresholds({"near_duplicate": 0.93}, fingerprints(val_x)),
                            monitor=DriftMonitor(reference, model_version=served.version),
                            fine_tuning=FineTuningRecord(served.version, "random init", "50,000 catalogue images",
                                                         "Recall@10 on held-out queries", 0.02, 0.99))
    results = run_checklist(deployment)
    print(report(results))

The checks, in order (see CHECKS):
1. outputs are L2-normalised          (the served model's outputs on held-out images have length 1)
2. projection head dropped            (no ProjectionHead / head / projector / predictor inside)
3. index metric matches training      (cosine training ⇔ inner product or L2 over unit vectors)
4. index version = model version      (and the same dimension)
5. Recall@K and MRR tracked           (held-out queries, none seen in training, at or above their floors)
6. thresholds calibrated on held-out  (calibration identities disjoint from training identities)
7. drift monitor configured           (reference from the served model version, a sane alpha)
8. domain fine-tuning recorded        (how the served model was adapted to its domain, from which base,
                                       on which data, and its held-out in-domain score before and after)
"""
from __future__ import annotations

import hashlib
from collections.abc import Callable
from dataclasses import dataclass, field

import torch

from .export import ExportedEncoder
from .index import VectorIndex
from .models import ProjectionHead
from .monitoring import DriftMonitor

HEAD_NAMES = ("head", "projector", "projection_head", "predictor")

QUESTIONS = {
    "positive_pairs": "Positive pairs: is it written down what makes two items a positive pair for this "
                      "model (which augmentations, which pairs), and does that match what users call 'similar'?",
    "alerts": "Alerts: who is told when the drift monitor fires or Recall@K falls below its floor, "
              "and what do they do?",
}


def fingerprints(images: torch.Tensor) -> set[str]:
    """One identity per image: the SHA-1 of its pixel bytes. images (N, …) → a set of N hex strings
    (fewer if some images are identical). Use your own ids (person, product) where you have them."""
    x = images.detach().cpu().contiguous()
    return {hashlib.sha1(row.numpy().tobytes()).hexdigest() for row in x}


@dataclass
class HeldOutQueries:
    """Queries the deployment must keep answering well.

    images: (Q, C, H, W) query images, none of them used in training.
    labels: (Q,) each query's label; gallery_labels: (N,) the label of every index entry
        (entry i of the index has gallery_labels[i]); a hit is an entry with the query's label.
    k: the K of Recall@K and of MRR@K.
    min_recall, min_mrr: floors recorded when the deployment was validated (0 = none recorded).
    """

    images: torch.Tensor
    labels: torch.Tensor
    gallery_labels: torch.Tensor
    k: int = 10
    min_recall: float = 0.0
    min_mrr: float = 0.0


@dataclass
class Thresholds:
    """Decision thresholds (e.g. {"near_duplicate": 0.93}) and the identities they were calibrated on."""

    values: dict[str, float]
    calibration_ids: set = field(default_factory=set)


@dataclass
class FineTuningRecord:
    """How the served model was adapted to its domain, and what that did, measured.

    model_version: the model this record describes (the served model's version tag).
    base_model: what its training started from ("all-MiniLM-L6-v2@1110a243", "random init").
    data: the in-domain training data ("1,200 docstring (summary, document) pairs").
    metric: what was measured on held-out in-domain queries ("Recall@10 on 500 held-out queries").
    base_score, tuned_score: that metric for the base model and for the served model (higher = better).
    """

    model_version: str
    base_model: str
    data: str
    metric: str
    base_score: float
    tuned_score: float


@dataclass
class Deployment:
    """Everything the checklist looks at.

    model: the served model (`load_exported` / `ExportedEncoder`).
    index: the VectorIndex it queries.
    training_ids: identities of the training data (e.g. `fingerprints(train_x)`).
    validation, thresholds, monitor, fine_tuning: may be None (the matching check then fails).
    notes: answers to QUESTIONS by key ("positive_pairs", "alerts"), shown in the report.
    """

    model: ExportedEncoder
    index: VectorIndex
    training_ids: set
    validation: HeldOutQueries | None = None
    thresholds: Thresholds | None = None
    monitor: DriftMonitor | None = None
    fine_tuning: FineTuningRecord | None = None
    notes: dict[str, str] = field(default_factory=dict)


@dataclass
class CheckResult:
    item: str
    passed: bool
    reason: str

    def __str__(self) -> str:
        return f"{'✓' if self.passed else '✗'} {self.item}: {self.reason}"


@torch.no_grad()
def _embed(model, images: torch.Tensor, batch_size: int = 256) -> torch.Tensor:
    return torch.cat([model(images[s:s + batch_size]).float() for s in range(0, len(images), batch_size)])


def check_outputs_normalised(d: Deployment) -> tuple[bool, str]:
    if d.validation is None:
        return False, "no held-out images to run the model on"
    z = _embed(d.model, d.validation.images[:64])
    norms = z.norm(dim=1)
    worst = (norms - 1).abs().max().item()
    if worst > 1e-3:
        return False, (f"output lengths range {norms.min().item():.3g}–{norms.max().item():.3g}, not 1: "
                       "the export does not L2-normalise (export_encoder(normalize=True))")
    return True, f"{len(z)} outputs have length 1 (largest deviation {worst:.1e})"


def check_head_dropped(d: Deployment) -> tuple[bool, str]:
    for name, module in d.model.named_modules():
        parts = name.split(".")
        if isinstance(module, ProjectionHead) or any(p in HEAD_NAMES for p in parts):
            return False, (f"the served model contains {name!r} ({type(module).__name__}): export the "
                           "encoder only (export_encoder(model) drops the head)")
    dropped = getattr(d.model, "meta", {}).get("dropped", [])
    return True, "no projection head in the served model" + (f" (export dropped {dropped})" if dropped else "")


def check_index_metric(d: Deployment) -> tuple[bool, str]:
    similarity = getattr(d.model, "meta", {}).get("similarity", "cosine")
    m = d.index.meta
    ranks_by = {("inner_product", True): "cosine", ("l2", True): "cosine",
                ("inner_product", False): "dot", ("l2", False): "euclidean"}[(m.metric, m.normalized)]
    described = f"{m.metric.replace('_', ' ')} over {'unit' if m.normalized else 'UNNORMALISED'} vectors"
    if ranks_by != similarity:
        return False, (f"training compared {similarity} similarity but the index ranks by {described} "
                       f"(= {ranks_by}); build it over unit vectors with metric inner_product")
    return True, f"training compared {similarity}; the index ranks by {described} (= {ranks_by})"


def check_index_version(d: Deployment) -> tuple[bool, str]:
    version = getattr(d.model, "version", None)
    if version is None:
        return False, "the served model carries no version tag: export it with export_encoder(version=…)"
    m = d.index.meta
    if m.model_version != version:
        return False, (f"the index holds vectors of model {m.model_version!r}, the served model is {version!r}: "
                       "re-embed the corpus with the served model and rebuild the index")
    dim = getattr(d.model, "embedding_dim", m.dim)
    if dim != m.dim:
        return False, f"the model outputs {dim} dimensions, the index holds {m.dim}"
    return True, f"index and model are both {version!r} ({m.count:,} vectors of {m.dim} dimensions)"


def retrieval_scores(d: Deployment) -> dict[str, float]:
    """Recall@K (a hit in the top K) and MRR@K (1 / rank of the first hit, 0 if none) of the
    held-out queries, searched through the deployment's model and index."""
    v = d.validation
    _, ids = d.index.search(_embed(d.model, v.images), v.k)
    ids = torch.from_numpy(ids)
    hit = (v.gallery_labels[ids.clamp_min(0)] == v.labels[:, None]) & (ids >= 0)     # (Q, K)
    first = torch.where(hit.any(1), hit.float().argmax(1) + 1, torch.zeros_like(ids[:, 0]))
    rr = torch.where(first > 0, 1.0 / first.clamp_min(1).float(), torch.zeros(len(first)))
    return {"recall": hit.any(1).float().mean().item(), "mrr": rr.mean().item()}


def check_retrieval_tracked(d: Deployment) -> tuple[bool, str]:
    v = d.validation
    if v is None:
        return False, "no held-out queries: Recall@K and MRR are not tracked"
    if not d.training_ids:
        return False, "the deployment does not record its training identities, so 'held out' cannot be verified"
    seen = len(fingerprints(v.images) & d.training_ids)
    if seen:
        return False, f"{seen} of the {len(v.images)} 'held-out' queries were training images"
    if v.min_recall <= 0 and v.min_mrr <= 0:
        return False, "no floor recorded for Recall@K or MRR, so a drop would go unnoticed"
    try:
        s = retrieval_scores(d)
    except Exception as exc:             # e.g. the model's vectors do not fit the index
        return False, f"the held-out queries could not be searched: {exc}"
    text = (f"Recall@{v.k} {s['recall']:.2f} (floor {v.min_recall:.2f}), MRR@{v.k} {s['mrr']:.2f} "
            f"(floor {v.min_mrr:.2f}) on {len(v.images)} held-out queries")
    if s["recall"] < v.min_recall or s["mrr"] < v.min_mrr:
        return False, text + ": below the floor"
    return True, text


def check_thresholds(d: Deployment) -> tuple[bool, str]:
    t = d.thresholds
    if t is None or not t.values:
        return False, "no calibrated thresholds"
    if not t.calibration_ids:
        return False, "the thresholds do not record what they were calibrated on"
    if not d.training_ids:
        return False, "the deployment does not record its training identities"
    shared = len(t.calibration_ids & d.training_ids)
    if shared:
        return False, (f"{shared} of the {len(t.calibration_ids)} calibration identities were in the training "
                       "data: thresholds set on training identities are too optimistic; calibrate on held-out ones")
    names = ", ".join(f"{k} = {v:.3f}" for k, v in t.values.items())
    return True, f"{names}, calibrated on {len(t.calibration_ids):,} identities not used in training"


def check_drift_monitor(d: Deployment) -> tuple[bool, str]:
    mon = d.monitor
    if mon is None:
        return False, "no drift monitor: a shift in the inputs would only show when users complain"
    version = getattr(d.model, "version", None)
    if mon.model_version != version:
        return False, (f"the monitor's reference embeddings come from model {mon.model_version!r}, "
                       f"the served model is {version!r}: rebuild the reference with the served model")
    if mon.reference.shape[1] != getattr(d.model, "embedding_dim", mon.reference.shape[1]):
        return False, "the monitor's reference has another dimension than the model's outputs"
    if len(mon.reference) < 100 or not 0 < mon.alpha <= 0.1:
        return False, (f"reference of {len(mon.reference)} embeddings at alpha {mon.alpha}: use ≥ 100 "
                       "reference embeddings and alpha ≤ 0.1")
    return True, f"MMD test on each batch against {len(mon.reference)} reference embeddings, alpha {mon.alpha}"


def check_fine_tuning(d: Deployment) -> tuple[bool, str]:
    r = d.fine_tuning
    if r is None:
        return False, ("no fine-tuning record: write down the base model, the in-domain data, and a held-out "
                       "in-domain metric for the base and the served model (FineTuningRecord)")
    version = getattr(d.model, "version", None)
    if r.model_version != version:
        return False, (f"the fine-tuning record describes model {r.model_version!r}, the served model is {version!r}: "
                       "record how the served model was adapted and what it scored")
    if not (r.base_model and r.data and r.metric):
        return False, "the fine-tuning record leaves the base model, the data or the metric blank"
    text = f"{version!r} from {r.base_model}, on {r.data}: {r.metric} {r.base_score:.3f} → {r.tuned_score:.3f}"
    if r.tuned_score < r.base_score:
        return False, (text + ": the served model scores below its base on its own domain; "
                       "serve the base or fix the fine-tune")
    return True, text


CHECKS: tuple[tuple[str, Callable[[Deployment], tuple[bool, str]]], ...] = (
    ("outputs are L2-normalised", check_outputs_normalised),
    ("projection head dropped", check_head_dropped),
    ("index metric matches training similarity", check_index_metric),
    ("index version equals model version", check_index_version),
    ("Recall@K and MRR tracked on held-out queries", check_retrieval_tracked),
    ("thresholds calibrated on identities disjoint from training", check_thresholds),
    ("drift monitor configured", check_drift_monitor),
    ("domain fine-tuning recorded for the served model", check_fine_tuning),
)


def run_checklist(deployment: Deployment) -> list[CheckResult]:
    """Run every check of CHECKS; a check that crashes fails with the error as its reason."""
    results = []
    for item, check in CHECKS:
        try:
            passed, reason = check(deployment)
        except Exception as exc:
            passed, reason = False, f"the check could not run: {type(exc).__name__}: {exc}"
        results.append(CheckResult(item, bool(passed), reason))
    return results


def report(results: list[CheckResult], notes: dict[str, str] | None = None) -> str:
    """The results, one line each, then the questions only a person can answer
    (with the deployment's notes as answers where it has them)."""
    lines = [str(r) for r in results]
    lines.append(f"{sum(r.passed for r in results)}/{len(results)} checks pass. For a person to answer:")
    for key, question in QUESTIONS.items():
        answer = (notes or {}).get(key)
        lines.append(f"  ? {question}" + (f"\n      answer on file: {answer}" if answer else "\n      (no answer on file)"))
    return "\n".join(lines)


__all__ = ["Deployment", "HeldOutQueries", "Thresholds", "FineTuningRecord", "CheckResult", "CHECKS", "QUESTIONS",
           "run_checklist", "report", "fingerprints", "retrieval_scores"]
