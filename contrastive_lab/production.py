"""Notebooks 12 (serving embeddings) and 13 (watching them): their settings, the data they
build, and the service notebook 12 ships, rebuilt by notebook 13 in a few calls.

    settings = production_settings(profile)
    copies = near_duplicates(images, generator)                   # known transformations of each image
    corpus = jittered_copies(real_embeddings, settings.n_corpus, generator)
    threshold = threshold_for_precision(scores, is_match, target=0.95)
    flagged = scores >= threshold                                 # the course's one rule (evaluate.accepts)
    served = ship(model, path, version="simclr-v1", profile=profile, images=train_x)   # export, load back
    recall, mrr = source_recall(index, query_vectors, k=10)       # query i's one right answer is item i
    model_v2, history_v2 = simclr_v2(profile, data)               # the "new version", trained once, cached

The package pieces the notebook teaches live in their own modules: `export`
(ship the encoder), `index` (faiss), `monitoring` (anomalies, drift) and
`checklist` (the production checklist as code).
"""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch
import torch.nn as nn
import torch.nn.functional as F

from .augment import color_jitter, gaussian_blur, gaussian_noise, random_resized_crop
from .export import ExportedEncoder, Preprocessing, export_encoder, load_exported
from .methods.simclr import SimCLR, train_simclr
from .model_cache import data_fingerprint, train_or_load
from .models import make_encoder, prepare_model
from .profiles import Settings
from .train import History


@dataclass(frozen=True)
class ProductionSettings(Settings):
    """Sizes of notebooks 12 and 13, derived from a profile by `production_settings`.

    v2_epochs: SimCLR epochs of the "new model version" (v2, retrained from another seed)
        whose arrival notebook 12 simulates (`simclr_v2`); v1 is notebook 05's model (`course_simclr`).
    n_real: images embedded by the model for the vector-index benchmark;
        n_corpus: its size after topping up with jittered copies of those embeddings.
    n_queries: queries whose recall is measured (searched in one batch);
        n_single: of those, searched one at a time for the latency.
    k: neighbours retrieved (recall@k against exact search).
    hnsw_m, ef_construction, ef_search: HNSW's links per vector, build and search candidates.
    ivf_nlist, nprobe: IVF's k-means cells and the cells visited per query.
    compressed: the vector codec of the compressed IVF index ("SQ8": one byte per dimension).
    train_size: vectors the IVF (and PQ) k-means is trained on.
    n_catalogue: real images of the catalogue the service searches (notebooks 12 and 13);
        n_duplicates: of those, how many get a near-duplicate query.
    target_precision: precision the near-duplicate threshold is calibrated for.
    normal_classes: classes that count as "normal" for anomaly and drift detection.
    anomaly_k: neighbours the k-NN anomaly score averages over.
    n_reference, drift_batch, n_permutations, alpha: the drift monitor's reference size,
        batch size, test permutations and level.
    drift_pool: fresh images of normal traffic that batches are drawn from (shifted pools: half as many).
    n_null_batches: unshifted batches the false-alarm rate is measured on.
    stream_segment: batches per segment of the simulated stream.
    """

    v2_epochs: int
    n_real: int
    n_corpus: int
    n_queries: int
    n_single: int
    k: int
    hnsw_m: int
    ef_construction: int
    ef_search: tuple[int, ...]
    ivf_nlist: int
    nprobe: tuple[int, ...]
    compressed: str
    train_size: int
    n_catalogue: int
    n_duplicates: int
    target_precision: float
    normal_classes: tuple[int, ...]
    anomaly_k: int
    n_reference: int
    drift_batch: int
    drift_pool: int
    n_null_batches: int
    n_permutations: int
    alpha: float
    stream_segment: int


def production_settings(profile) -> ProductionSettings:
    """Notebooks 12 and 13's sizes for a profile.

    quick (CPU, 2 cores): 10,000 real embeddings topped up to a 100,000-vector corpus,
    one HNSW build (a build is the slowest step: about 10 s on one core), IVF trained
    on a 10,000-vector sample. full (GPU): 50,000 real embeddings in a 1,000,000-vector
    corpus, HNSW with M = 32 (faiss-cpu either way: the index runs on the CPU).
    """
    quick = profile.backbone == "small_cnn"
    return ProductionSettings(
        v2_epochs=profile.sweep_epochs // 2 if quick else profile.sweep_epochs,
        n_real=10_000 if quick else 50_000,
        n_corpus=100_000 if quick else 1_000_000,
        n_queries=profile.n_test,
        n_single=200 if quick else 1000,
        k=10,
        hnsw_m=16 if quick else 32,
        ef_construction=40,
        ef_search=(16, 32, 64, 128),
        ivf_nlist=256 if quick else 4096,
        nprobe=(1, 2, 4, 8, 16, 32),
        compressed="SQ8",
        train_size=10_000 if quick else 200_000,
        n_catalogue=2000 if quick else 10_000,
        n_duplicates=500 if quick else 2500,
        target_precision=0.95,
        normal_classes=(0, 1, 2, 3, 4, 5, 6),
        anomaly_k=10,
        n_reference=300 if quick else 1000,
        drift_batch=100,
        drift_pool=1000 if quick else 5000,
        n_null_batches=100 if quick else 500,
        n_permutations=99 if quick else 199,
        alpha=0.05,
        stream_segment=20 if quick else 50,
    )


def near_duplicates(images: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
    """A near-duplicate of every image, made by known transformations (the kind a re-upload,
    a filter or a screenshot applies): a crop of 70-100 % of the area resized back, brightness,
    contrast and saturation ±20 %, a hue shift up to 0.05 turn, a light blur half the time, and
    pixel noise. images (N, C, H, W) in [0, 1] → the same shape."""
    x = random_resized_crop(images, scale=(0.7, 1.0), generator=generator)
    x = color_jitter(x, 0.2, 0.2, 0.2, 0.05, p=1.0, generator=generator)
    x = gaussian_blur(x, sigma=(0.1, 1.0), p=0.5, generator=generator)
    return gaussian_noise(x, std=0.02, generator=generator)


def median_nn_distance(z: torch.Tensor, sample: int = 2000) -> float:
    """Median cosine distance from a row of z (N, D) (the first `sample` rows) to its nearest other row."""
    z = F.normalize(z.float(), dim=1)
    sim = z[:sample] @ z.T
    sim[torch.arange(min(sample, len(z))), torch.arange(min(sample, len(z)))] = -2.0
    return float((1 - sim.max(1).values).median())


def jittered_copies(real: torch.Tensor, n_total: int, generator: torch.Generator | None = None,
                    distance: float | None = None) -> torch.Tensor:
    """Top a set of real embeddings (N, D), unit rows, up to n_total unit vectors.

    The first N rows are `real` itself; every further row is a copy of a real row (cycling
    through them) plus Gaussian noise, renormalised. The noise is scaled so that a copy
    lies at cosine distance ≈ `distance` from its source: by default the median distance of
    a real embedding to its nearest real neighbour, so the copies thicken the real
    clusters instead of filling the sphere evenly (Gaussian filler would not look like
    embeddings at all). Returns (n_total, D).
    """
    if n_total < len(real):
        raise ValueError(f"n_total ({n_total}) must be at least the number of real rows ({len(real)})")
    real = F.normalize(real.float(), dim=1)
    d = median_nn_distance(real) if distance is None else distance
    n_extra, dim = n_total - len(real), real.shape[1]
    source = real[torch.arange(n_extra) % len(real)]
    # noise of length s orthogonal-ish to a unit vector: cosine distance ≈ s² / 2
    noise = torch.randn(n_extra, dim, generator=generator) * (2 * d) ** 0.5 / dim ** 0.5
    return torch.cat([real, F.normalize(source + noise, dim=1)])


def threshold_for_precision(scores: torch.Tensor, is_match: torch.Tensor, target: float) -> float:
    """The threshold t whose decisions "score >= t" find the most matches at precision ≥ target.

    scores: (P,) similarity of every candidate pair; is_match: (P,) bool, the pair is a true match.
    Among the cuts that reach the target, the one with the most true matches wins (highest
    recall); of equally good cuts, the highest (fewest pairs flagged). Tied scores fall on
    the same side. t sits halfway between the last flagged score and the next lower one
    (1e-6 below the lowest score when every pair is flagged), a margin on both sides for
    new pairs; a new score exactly at t is flagged, as `evaluate.accepts` decides everywhere
    in the course. Returns +inf when no cut reaches the target (then nothing is flagged).
    """
    scores, is_match = scores.flatten().double(), is_match.flatten().bool()
    if scores.shape != is_match.shape:
        raise ValueError(f"scores and is_match must have the same length, got {scores.numel()} and {is_match.numel()}")
    if not 0 < target <= 1:
        raise ValueError(f"target precision must be in (0, 1], got {target}")
    order = scores.argsort(descending=True)
    s, m = scores[order], is_match[order].double()
    tp = m.cumsum(0)                                 # matches among the top i+1 pairs
    precision = tp / torch.arange(1, len(s) + 1, dtype=torch.float64)
    can_cut = torch.cat([s[1:] < s[:-1], torch.tensor([True])])      # not inside a run of tied scores
    ok = (precision >= target) & can_cut & (tp > 0)
    if not ok.any():
        return float("inf")
    best = tp[ok].max()
    i = int(torch.nonzero(ok & (tp == best)).min())
    below = s[i + 1] if i + 1 < len(s) else s[i] - 2e-6
    return float((s[i] + below) / 2)


V2_SEED = 1          # v2: the same recipe as v1 (seed 0), from another random init


def simclr_v2(profile, data, device=None) -> tuple[SimCLR, History]:
    """The "new model version" of notebooks 12 and 13: notebook 05's SimCLR recipe on
    `data.train_x`, from another random init (seed V2_SEED) and on a shorter schedule
    (`production_settings(profile).v2_epochs`). Trained once and cached (`model_cache`), so
    notebook 13 loads the v2 that notebook 12 trained. Returns (model, history)."""
    epochs = production_settings(profile).v2_epochs
    settings = {"profile": profile, "n_train": len(data.train_x), "data": data_fingerprint(data.train_x),
                "epochs": epochs, "seed": V2_SEED}

    def build() -> SimCLR:
        torch.manual_seed(V2_SEED)
        return SimCLR(make_encoder(profile), proj_dim=profile.proj_dim)

    def train(model: SimCLR) -> History:
        return train_simclr(model, data.train_x, profile, epochs=epochs, seed=V2_SEED, device=device, desc="SimCLR v2")

    return train_or_load("simclr-v2", settings, build, train, device=device)


def encoder_builder(profile) -> Callable[[dict], nn.Module]:
    """`export.load_exported`'s builder for the course's SimCLR exports. The architecture is
    code, so the file holds only its name: this rebuilds the profile's encoder, or encoder +
    projection head when the export kept the head (architecture {"head": True})."""
    def build(meta: dict) -> nn.Module:
        backbone = meta["architecture"]["backbone"]
        if backbone != profile.backbone:
            raise ValueError(f"the export was made with backbone {backbone!r}, this profile builds "
                             f"{profile.backbone!r}: load it with the profile it was trained under")
        if meta["architecture"].get("head"):
            return SimCLR(make_encoder(profile), proj_dim=profile.proj_dim)
        return make_encoder(profile)
    return build


def ship(model: nn.Module, path, *, version: str, profile, images: torch.Tensor, device=None,
         normalize: bool = True, drop_head: bool = True) -> ExportedEncoder:
    """Export `model` (a SimCLR: encoder + head) as notebook 12 does, and load it back the
    way the service runs it (`load_exported` with `encoder_builder(profile)`, on `device`).

    images: (N, C, H, W), what the model was trained on: their size and channels become the
    export's preprocessing. normalize=False or drop_head=False reproduce the export bugs
    of notebook 12 (the export records the head, so it loads back as it was written).
    """
    preprocessing = Preprocessing(image_size=tuple(images.shape[2:]), channels=images.shape[1])
    architecture = {"backbone": profile.backbone, "widths": list(profile.cnn_widths)}
    if not drop_head:
        architecture["head"] = True
    export_encoder(model, path, version=version, preprocessing=preprocessing, architecture=architecture,
                   normalize=normalize, drop_head=drop_head)
    return prepare_model(load_exported(path, encoder_builder(profile)), device, profile.channels_last)


def source_recall(index, query_vectors: torch.Tensor, k: int = 10) -> tuple[float, float]:
    """(Recall@k, MRR@k) of `index` (a `index.VectorIndex`) when query i's one right answer is
    item i of the index: the edited copy of catalogue image i should find image i.
    query_vectors: (Q, D), Q ≤ the index's size."""
    _, ids = index.search(query_vectors, k)
    hit = torch.from_numpy(ids) == torch.arange(len(ids))[:, None]     # (Q, k)
    rank = hit.float().argmax(1) + 1                                   # where the original came
    return hit.any(1).float().mean().item(), torch.where(hit.any(1), 1 / rank, 0.0).mean().item()


__all__ = ["ProductionSettings", "production_settings", "near_duplicates", "median_nn_distance",
           "jittered_copies", "threshold_for_precision", "simclr_v2", "encoder_builder", "ship", "source_recall"]
