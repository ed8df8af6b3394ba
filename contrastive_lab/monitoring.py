"""Watching embeddings after deployment: anomaly scores and drift tests.

The training loss says nothing about what users send tomorrow. Two questions
an embedding can answer instead:

- Is THIS input unlike anything normal?  `knn_anomaly_score`: its distance to
  the k nearest embeddings of normal data (high = unusual); `roc_auc` measures
  how well a score separates normal from anomalous samples (0.5 = chance).
- Has the STREAM changed?  `mmd_test`: a two-sample test of whether a batch of
  embeddings comes from the same distribution as a reference set (maximum mean
  discrepancy with an RBF kernel, p-value by permutation; Gretton et al. 2012).
  `DriftMonitor` runs it on every incoming batch.

    scores = knn_anomaly_score(normal_emb, new_emb, k=10)          # (M,)
    monitor = DriftMonitor(reference_emb, model_version="simclr-v1", alpha=0.05)
    result = monitor.check(batch_emb)                                # result.p_value, result.drift

The permutation test is exact: on batches from the reference distribution it
raises a false alarm with probability at most alpha (measured in notebook 13).
"""
from __future__ import annotations

from dataclasses import dataclass, field

import torch
import torch.nn.functional as F

from .validate import check_matrix


def knn_anomaly_score(reference: torch.Tensor, samples: torch.Tensor, k: int = 10,
                      chunk: int = 2048) -> torch.Tensor:
    """Mean cosine distance (1 − cosine) from each sample to its k nearest reference points.

    reference (N, D): embeddings of normal data; samples (M, D). Rows are L2-normalised
    here, so raw features (pixels) can be scored the same way. Returns (M,) in [0, 2];
    higher = less like anything normal. A sample that is itself in `reference` finds
    itself at distance 0: score held-out data, not the reference.
    """
    check_matrix(reference, "reference")
    check_matrix(samples, "samples")
    if reference.shape[1] != samples.shape[1]:
        raise ValueError(f"reference and samples differ in dimension: {reference.shape[1]} vs {samples.shape[1]}")
    if not 1 <= k <= reference.shape[0]:
        raise ValueError(f"k must be between 1 and the number of reference points ({reference.shape[0]}), got {k}")
    ref = F.normalize(reference.float(), dim=1)
    out = []
    for start in range(0, len(samples), chunk):
        sim = F.normalize(samples[start:start + chunk].float(), dim=1) @ ref.T       # (m, N)
        out.append(1 - sim.topk(k, dim=1).values.mean(1))
    return torch.cat(out)


def roc_auc(normal_scores, anomaly_scores) -> float:
    """Area under the ROC curve of a score that should be HIGHER for anomalies.

    The probability that a random anomaly scores above a random normal sample
    (ties count half): 1.0 separates them perfectly, 0.5 is chance.
    """
    from sklearn.metrics import roc_auc_score

    normal = torch.as_tensor(normal_scores).flatten().double()
    anomaly = torch.as_tensor(anomaly_scores).flatten().double()
    if len(normal) == 0 or len(anomaly) == 0:
        raise ValueError("roc_auc needs at least one normal and one anomalous score")
    labels = torch.cat([torch.zeros(len(normal)), torch.ones(len(anomaly))])
    return float(roc_auc_score(labels.numpy(), torch.cat([normal, anomaly]).numpy()))


def median_bandwidth(x: torch.Tensor, max_points: int = 1000) -> float:
    """The median heuristic: the median distance between pairs of rows of x (N, D)
    (on the first `max_points` rows). A common width for an RBF kernel."""
    d = torch.pdist(x[:max_points].float())
    return float(d.median().clamp_min(1e-12))


def _rbf(a: torch.Tensor, b: torch.Tensor, bandwidth: float) -> torch.Tensor:
    """RBF kernel matrix (len(a), len(b)): exp(−‖a_i − b_j‖² / (2 · bandwidth²))."""
    sq = torch.cdist(a, b).pow(2)
    return torch.exp(-sq / (2 * bandwidth ** 2))


def _permutation_test(kernel: torch.Tensor, n: int, n_permutations: int,
                      generator: torch.Generator | None) -> tuple[float, float]:
    """MMD² of the first n rows against the rest, and its permutation p-value.

    kernel: (n + m, n + m) kernel matrix of the pooled sample. Every split, observed and
    permuted, is a weight vector w (+1/n on one side, −1/m on the other): MMD² = wᵀ K w.
    """
    m = len(kernel) - n
    base = torch.cat([torch.full((n,), 1 / n), torch.full((m,), -1 / m)])
    perms = torch.rand(n_permutations, n + m, generator=generator).argsort(1)   # a random order per row
    weights = torch.cat([base[None], base[perms]])                         # (1 + P, n + m); row 0 = observed
    stats = ((weights @ kernel) * weights).sum(1)
    observed = stats[0]
    p = (1 + (stats[1:] >= observed - 1e-12).sum().item()) / (1 + n_permutations)
    return float(observed), float(p)


def mmd2(x: torch.Tensor, y: torch.Tensor, bandwidth: float) -> float:
    """Squared maximum mean discrepancy between samples x (n, D) and y (m, D), RBF kernel.

    MMD² = mean k(x, x') + mean k(y, y') − 2 mean k(x, y)   (the biased estimate, ≥ 0),
    k(a, b) = exp(−‖a − b‖² / (2 · bandwidth²)). 0 when both samples are the same.
    """
    check_matrix(x, "x")
    check_matrix(y, "y")
    z = torch.cat([x.float(), y.float()])
    w = torch.cat([torch.full((len(x),), 1 / len(x)), torch.full((len(y),), -1 / len(y))])
    return float(w @ _rbf(z, z, bandwidth) @ w)


@dataclass
class MMDResult:
    """statistic: MMD² of the two samples; p_value: share of permutations scoring at least as
    high (counting the observed split); bandwidth: the kernel width used."""

    statistic: float
    p_value: float
    bandwidth: float
    n_permutations: int


def mmd_test(x: torch.Tensor, y: torch.Tensor, n_permutations: int = 199, bandwidth: float | None = None,
             generator: torch.Generator | None = None) -> MMDResult:
    """Permutation test of "x and y come from the same distribution", statistic MMD².

    x (n, D), y (m, D). The rows are pooled and re-split at random `n_permutations`
    times; p = (1 + #{permuted MMD² ≥ observed}) / (1 + n_permutations). Under the
    null hypothesis P(p ≤ alpha) ≤ alpha for every alpha (an exact test).
    bandwidth: the RBF width; default the median heuristic on the pooled rows.
    """
    check_matrix(x, "x")
    check_matrix(y, "y")
    if x.shape[1] != y.shape[1]:
        raise ValueError(f"x and y differ in dimension: {x.shape[1]} vs {y.shape[1]}")
    if n_permutations < 1:
        raise ValueError(f"n_permutations must be ≥ 1, got {n_permutations}")
    z = torch.cat([x.float(), y.float()])
    bw = bandwidth if bandwidth is not None else median_bandwidth(z)
    observed, p = _permutation_test(_rbf(z, z, bw), len(x), n_permutations, generator)
    return MMDResult(observed, p, float(bw), n_permutations)


def false_alarm_rate(pool: torch.Tensor, n_reference: int, batch_size: int, trials: int = 100,
                     alpha: float = 0.05, n_permutations: int = 99, bandwidth: float | None = None,
                     generator: torch.Generator | None = None) -> float:
    """How often the MMD test raises an alarm when nothing has changed.

    pool: (N, D) embeddings of unshifted data, N ≥ n_reference + batch_size. Each trial
    splits a random subset into a reference of n_reference rows and a batch of batch_size
    rows (both from the same distribution, so every alarm is false) and tests them at level
    alpha. Returns the fraction of trials with p ≤ alpha; an exact test keeps it ≤ alpha up
    to sampling noise (binomial: about ±2·sqrt(alpha / trials)). The pool's kernel matrix
    is computed once, so trials are cheap even for wide features such as raw pixels.
    """
    check_matrix(pool, "pool")
    if n_reference + batch_size > len(pool):
        raise ValueError(f"the pool has {len(pool)} rows; each trial needs n_reference + batch_size = "
                         f"{n_reference + batch_size}")
    bw = bandwidth if bandwidth is not None else median_bandwidth(pool)
    z = pool.float()
    kernel = _rbf(z, z, bw)
    alarms = 0
    for _ in range(trials):
        pick = torch.randperm(len(z), generator=generator)[:n_reference + batch_size]
        _, p = _permutation_test(kernel[pick][:, pick], n_reference, n_permutations, generator)
        alarms += p <= alpha
    return alarms / trials


@dataclass
class DriftResult:
    statistic: float
    p_value: float
    drift: bool


@dataclass
class DriftMonitor:
    """An MMD drift test run on each incoming batch of embeddings.

    reference: (N, D) embeddings of data the deployment is known to handle well
        (held-out, from the SAME model version as the served model).
    model_version: the version tag of the model that made `reference`.
    alpha: the false-alarm rate accepted per batch (the test's level). When
        alpha · (n_permutations + 1) is a whole number (0.05 · 200 = 10) the level is exact.
    bandwidth: fixed from the reference by the median heuristic, so statistics of
        successive batches are comparable. The reference's own kernel block is computed
        once; each batch adds only its rows.
    """

    reference: torch.Tensor
    model_version: str
    alpha: float = 0.05
    n_permutations: int = 199
    seed: int = 0
    bandwidth: float = field(default=0.0)

    def __post_init__(self):
        check_matrix(self.reference, "reference")
        if not 0 < self.alpha < 1:
            raise ValueError(f"alpha must be in (0, 1), got {self.alpha}")
        if not self.bandwidth:
            self.bandwidth = median_bandwidth(self.reference)
        self._generator = torch.Generator().manual_seed(self.seed)
        self._ref = self.reference.float()
        self._k_ref = _rbf(self._ref, self._ref, self.bandwidth)

    def check(self, batch: torch.Tensor) -> DriftResult:
        """Test one batch (M, D) against the reference: drift is flagged when p ≤ alpha."""
        check_matrix(batch, "batch")
        if batch.shape[1] != self._ref.shape[1]:
            raise ValueError(f"batch has {batch.shape[1]} dimensions, the reference {self._ref.shape[1]}: "
                             "embed it with the model the monitor was built for")
        b = batch.float()
        k_rb = _rbf(self._ref, b, self.bandwidth)
        kernel = torch.cat([torch.cat([self._k_ref, k_rb], 1),
                            torch.cat([k_rb.T, _rbf(b, b, self.bandwidth)], 1)])
        statistic, p = _permutation_test(kernel, len(self._ref), self.n_permutations, self._generator)
        return DriftResult(statistic, p, p <= self.alpha)


__all__ = ["knn_anomaly_score", "roc_auc", "median_bandwidth", "mmd2", "mmd_test", "MMDResult",
           "false_alarm_rate", "DriftMonitor", "DriftResult"]
