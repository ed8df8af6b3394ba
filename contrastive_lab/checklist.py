"""The production checklist for an embedding service, as code.

Each checkable item runs against a `Deployment` (the served model, its index, held-out
queries, calibrated thresholds, a drift monitor) and says pass or fail WITH A REASON.
The items that need a person are listed as questions: code cannot know whether your
positive pairs mean what your users mean by "similar".

    deployment = Deployment(model=served, index=index, training_ids=fingerprints(train_x),
                            training=training_record_from_results(0.2, 128, fingerprints(val_x)),
                            validation=HeldOutQueries(images, labels, gallery_labels, min_recall=0.8),
                            thresholds=Thresholds({"near_duplicate": 0.93}, fingerprints(val_x)),
                            monitor=DriftMonitor(reference, model_version=served.version),
                            fine_tuning=FineTuningRecord(served.version, "random init", "50,000 catalogue images",
                                                         "Recall@10 on held-out queries", 0.02, 0.99))
    results = run_checklist(deployment)
    print(report(results))

The checks, in order (see CHECKS):
1. negative strategy chosen           (in-batch, queue or hard-mined, the best of ≥ 2 compared on validation)
2. τ and batch size tuned jointly     (the served (τ, batch) is the best cell of a τ × batch grid scored on
                                       validation identities disjoint from the training identities)
3. outputs are L2-normalised          (the served model's outputs on held-out images have length 1)
4. projection head dropped            (no ProjectionHead / head / projector / predictor inside)
5. index metric matches training      (cosine training ⇔ inner product or L2 over unit vectors)
6. index version = model version      (and the same dimension)
7. Recall@K and MRR tracked           (held-out queries, none seen in training, at or above their floors)
8. thresholds calibrated on held-out  (calibration identities disjoint from training identities)
9. drift monitor configured           (reference from the served model version, a sane alpha)
10. domain fine-tuning recorded       (how the served model was adapted to its domain, from which base,
                                       on which data, and its held-out in-domain score before and after)
The first item of the guide's list, positive pairs that mean what users mean, is a question
for a person (QUESTIONS).
"""
from __future__ import annotations

import hashlib
import json
import os
import statistics
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import torch

from .export import ExportedEncoder
from .index import VectorIndex
from .models import ProjectionHead
from .monitoring import DriftMonitor
from .spread import RESULTS_DIR, load_spread, values_of

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


NEGATIVE_STRATEGIES = ("in-batch", "queue", "hard-mined")


@dataclass
class TrainingRecord:
    """How the served model was trained, and the validation comparisons that chose how.

    negatives: the served model's negative strategy, one of NEGATIVE_STRATEGIES: "in-batch"
        (the other views of the batch, SimCLR), "queue" (keys of earlier batches, MoCo) or
        "hard-mined" (the most similar wrong items, best with a curriculum).
    temperature, batch_size: the served model's τ and training batch size.
    strategy_scores: {strategy: validation score} of the negative strategies compared when
        choosing (≥ 2, the served one among them), e.g. {"in-batch": 0.48, "queue": 0.36}.
    grid: {(τ, batch size): validation score} of the τ × batch sweep: every τ with every batch
        size (≥ 2 values of each), the served (τ, batch) among the cells.
    validation_ids: identities of the validation data the scores were measured on (e.g.
        `fingerprints(val_x)`); none of them may be a training identity.
    metric: what the scores are ("validation k-NN accuracy, mean over 3 seeds"); higher = better.
    tolerance: how far below the grid's best cell the served cell may score and still count as
        tuned (e.g. the spread over seeds, within which cells are a tie); 0 = it must be the best.
    """

    negatives: str
    temperature: float
    batch_size: int
    strategy_scores: dict[str, float]
    grid: dict[tuple[float, int], float]
    validation_ids: set
    metric: str = "validation score"
    tolerance: float = 0.0


@dataclass
class Deployment:
    """Everything the checklist looks at.

    model: the served model (`load_exported` / `ExportedEncoder`).
    index: the VectorIndex it queries.
    training_ids: identities of the training data (e.g. `fingerprints(train_x)`).
    training: how the served model was trained and tuned (TrainingRecord).
    validation, thresholds, monitor, fine_tuning, training: may be None (the matching check then fails).
    notes: answers to QUESTIONS by key ("positive_pairs", "alerts"), shown in the report.
    """

    model: ExportedEncoder
    index: VectorIndex
    training_ids: set
    validation: HeldOutQueries | None = None
    thresholds: Thresholds | None = None
    monitor: DriftMonitor | None = None
    fine_tuning: FineTuningRecord | None = None
    training: TrainingRecord | None = None
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


def _training_overlap(d: Deployment, ids: set, what: str, fix: str) -> str | None:
    """None when the identities `ids` share none with the deployment's training identities,
    else why not ("12 of the 500 validation identities were in the training data: <fix>")."""
    if not d.training_ids:
        return "the deployment does not record its training identities"
    shared = len(ids & d.training_ids)
    if shared:
        return f"{shared} of the {len(ids)} {what} identities were in the training data: {fix}"
    return None


NO_TRAINING_RECORD = ("no training record: record the served model's negative strategy, τ and batch size, the "
                      "validation scores of ≥ 2 negative strategies and of a τ × batch grid, and the validation "
                      "identities (TrainingRecord, or training_record_from_results)")


def _scores(scores: dict[str, float]) -> str:
    """'in-batch 0.484, queue 0.359': best first."""
    return ", ".join(f"{key} {value:.3f}" for key, value in sorted(scores.items(), key=lambda kv: -kv[1]))


def check_negative_strategy(d: Deployment) -> tuple[bool, str]:
    r = d.training
    if r is None:
        return False, NO_TRAINING_RECORD
    if r.negatives not in NEGATIVE_STRATEGIES:
        return False, f"negative strategy {r.negatives!r} is none of {', '.join(NEGATIVE_STRATEGIES)}"
    scores = r.strategy_scores
    if len(scores) < 2 or r.negatives not in scores:
        return False, (f"the served strategy {r.negatives!r} was not compared on validation with another one "
                       f"(scores recorded for {sorted(scores) or 'none'}): score ≥ 2 strategies, the served one included")
    best = max(scores, key=scores.get)
    text = f"{r.metric}: {_scores(scores)}"
    if scores[r.negatives] < scores[best]:
        return False, (f"serves {r.negatives!r} but {best!r} scored {scores[best] - scores[r.negatives]:.3f} higher "
                       f"({text})")
    return True, f"{r.negatives!r}, the best of {len(scores)} strategies compared ({text})"


def check_tau_batch_tuned(d: Deployment) -> tuple[bool, str]:
    r = d.training
    if r is None:
        return False, NO_TRAINING_RECORD
    taus, batches = sorted({t for t, _ in r.grid}), sorted({b for _, b in r.grid})
    if len(taus) < 2 or len(batches) < 2:
        return False, (f"the grid holds τ {taus} × batch {batches}: tune jointly, with ≥ 2 values of each "
                       "(τ tuned at one batch size does not transfer to another)")
    missing = [(t, b) for t in taus for b in batches if (t, b) not in r.grid]
    if missing:
        return False, f"the grid is not every τ with every batch size: {len(missing)} cells missing, e.g. {missing[0]}"
    served = (r.temperature, r.batch_size)
    if served not in r.grid:
        return False, f"the served τ = {r.temperature}, batch {r.batch_size} is not a cell of the grid (τ {taus} × batch {batches})"
    if not r.validation_ids:
        return False, "the record does not say which identities the grid was scored on"
    leak = _training_overlap(d, r.validation_ids, "validation", "tune on a validation split carved out before training")
    if leak:
        return False, leak
    best = max(r.grid, key=r.grid.get)
    gap = r.grid[best] - r.grid[served]
    text = (f"τ = {r.temperature}, batch {r.batch_size}: {r.metric} {r.grid[served]:.3f} on a {len(taus)} × {len(batches)} "
            f"grid, {len(r.validation_ids):,} validation identities disjoint from training")
    if gap > r.tolerance:
        return False, (f"{text}; the best cell is τ = {best[0]}, batch {best[1]} at {r.grid[best]:.3f}, "
                       f"{gap:.3f} higher (tolerance {r.tolerance:.3f})")
    where = "it is the best cell" if served == best else f"{gap:.3f} below the best (τ = {best[0]}, batch {best[1]}), within {r.tolerance:.3f}"
    return True, f"{text}; {where}"


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
    leak = _training_overlap(d, t.calibration_ids, "calibration", "thresholds set on training identities are too "
                             "optimistic; calibrate on held-out ones")
    if leak:
        return False, leak
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
    ("negative strategy chosen on validation", check_negative_strategy),
    ("τ and batch size tuned jointly on identities disjoint from training", check_tau_batch_tuned),
    ("outputs are L2-normalised", check_outputs_normalised),
    ("projection head dropped", check_head_dropped),
    ("index metric matches training similarity", check_index_metric),
    ("index version equals model version", check_index_version),
    ("Recall@K and MRR tracked on held-out queries", check_retrieval_tracked),
    ("thresholds calibrated on identities disjoint from training", check_thresholds),
    ("drift monitor configured", check_drift_monitor),
    ("domain fine-tuning recorded for the served model", check_fine_tuning),
)


def training_record_from_results(temperature: float, batch_size: int, validation_ids: set, *,
                                 tolerance: float | None = None,
                                 results: str | os.PathLike | None = None) -> TrainingRecord:
    """The TrainingRecord of a served SimCLR model (in-batch negatives) trained at `temperature`
    and `batch_size`, from the course's results files in `results` (benchmarks/results):

    - seeds_06.json: SimCLR (in-batch) against MoCo (queue) at equal batch and steps, the
      validation k-NN of notebook 06 on each seed → strategy_scores, the mean over seeds;
    - tau_batch.json (benchmarks/tau_batch_sweep.py): SimCLR's validation k-NN on a τ × batch
      grid → grid, the mean over seeds of each cell.

    validation_ids: the identities of that validation split (`fingerprints(data.val_x)` of
    `load_image_dataset(profile.dataset, …, n_val=profile.n_val)`); the files hold scores only.
    tolerance: as in TrainingRecord; None (the default) takes the spread over seeds of the
      grid's best cell (its highest minus its lowest seed): a served cell closer to the best
      than the best cell's own seed-to-seed spread is a tie with it, not a worse choice.
    """
    folder = Path(results or RESULTS_DIR)
    spread = load_spread("06", folder)
    strategies = {"in-batch": statistics.mean(values_of(spread, "validation, SimCLR batch 32")),
                  "queue": statistics.mean(values_of(spread, "validation, MoCo kept m"))}
    path = folder / "tau_batch.json"
    if not path.is_file():
        raise FileNotFoundError(f"no τ × batch sweep in {folder} ({path.name}): run "
                                "OMP_NUM_THREADS=1 python benchmarks/tau_batch_sweep.py")
    sweep = json.loads(path.read_text())
    grid = {(cell["tau"], cell["batch"]): cell[sweep["metric"]]["mean"] for cell in sweep["summary"]}
    if tolerance is None:
        best = max(sweep["summary"], key=lambda cell: cell[sweep["metric"]]["mean"])[sweep["metric"]]
        tolerance = best["max"] - best["min"]
    return TrainingRecord("in-batch", temperature, batch_size, strategies, grid, set(validation_ids),
                          metric="validation k-NN (mean over seeds)", tolerance=tolerance)


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


__all__ = ["Deployment", "HeldOutQueries", "Thresholds", "FineTuningRecord", "TrainingRecord", "CheckResult", "CHECKS",
           "QUESTIONS", "NEGATIVE_STRATEGIES", "run_checklist", "report", "fingerprints", "retrieval_scores",
           "training_record_from_results"]
