"""Collapse meters and a diagnosis of training failures.

Meters (on embeddings z of shape (N, D)):
    embedding_std(z)     mean per-dimension std of the L2-normalized rows;
                         healthy ≈ 1/√D, complete collapse → 0
    std_ratio(z)         embedding_std · √D: ≈ 1 healthy, → 0 collapsed
    singular_values(z)   the spectrum of the normalized embeddings (largest first)
    effective_rank(z)    exp(entropy of the normalized singular values), 1 … D
                         (Roy & Vetterli 2007; RankMe, Garrido et al. 2023).
                         Scale-free: it describes the SHAPE of the spread,
                         however small. Points collapsed onto one direction
                         plus tiny noise read a HIGH rank (the noise is
                         isotropic); read std_ratio first, as `diagnose` does
    uniformity(z)        from contrastive_lab.evaluate (Wang & Isola 2020)

`diagnose(history, embeddings, ...)` reads a training run and names the known
failure signatures it finds, each with the evidence and a fix.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F

from .evaluate import uniformity
from .validate import check_matrix


def embedding_std(z: torch.Tensor) -> float:
    """Mean over dimensions of the std of L2-normalized z (N, D). Healthy ≈ 1/√D; collapsed → 0."""
    check_matrix(z, "z")
    return F.normalize(z.float(), dim=1).std(0).mean().item()


def std_ratio(z: torch.Tensor) -> float:
    """embedding_std(z) · √D: about 1 for embeddings spread over the sphere, 0 for complete collapse."""
    return embedding_std(z) * math.sqrt(z.shape[1])


def singular_values(z: torch.Tensor) -> torch.Tensor:
    """Singular values (min(N, D),) of the L2-normalized, centred embeddings, largest first."""
    check_matrix(z, "z")
    zn = F.normalize(z.float(), dim=1)
    return torch.linalg.svdvals(zn - zn.mean(0))


def effective_rank(z: torch.Tensor, eps: float = 1e-12) -> float:
    """exp(H(p)) with p = σ / Σσ over the singular values of the centred, normalized z (N, D).

    D equal singular values give D; data spread over a k-dimensional subspace
    gives about k; all points exactly equal gives 0. It ignores how LARGE the
    spread is: one point plus noise of any size (a collapsed embedding that is
    not perfectly collapsed) reads close to min(N − 1, D), the rank of the noise.
    So it answers "in how many directions do the points spread?" only once
    `std_ratio` has said that they spread at all. With N points it is at most N − 1.
    """
    s = singular_values(z)
    total = s.sum()
    if total <= eps:
        return 0.0
    p = s / total
    p = p[p > eps]
    return math.exp(-(p * p.log()).sum().item())


def collapse_report(z: torch.Tensor) -> dict[str, float]:
    """All the meters at once: {"std_ratio", "effective_rank", "uniformity"}."""
    zn = F.normalize(z.float(), dim=1)
    return {"std_ratio": std_ratio(zn), "effective_rank": effective_rank(zn),
            "uniformity": uniformity(zn)}


@dataclass(frozen=True)
class Finding:
    """One failure signature found in a run."""

    name: str
    evidence: str
    advice: str

    def __str__(self) -> str:
        return f"{self.name}: {self.evidence}\n  fix: {self.advice}"


VICREG_GAMMA = 1.0          # the std target of VICReg's variance term (losses.vicreg_loss's default)


def _tail(values, fraction=0.2):
    values = list(values)
    n = max(1, int(len(values) * fraction))
    return values[-n:]


def diagnose(history=None, embeddings: torch.Tensor | None = None, *, loss: str | None = None,
             batch_size: int | None = None, margin: float | None = None, n_negatives: int | None = None,
             std_threshold: float = 0.1, rank_fraction: float = 0.15,
             n_outputs: int | None = None) -> list[Finding]:
    """Name the known failure signatures in a run.

    Args:
        history: a train.History (or anything with a `.loss` list of step losses).
        embeddings: (N, D) embeddings of held-out data from the trained model.
        loss: "nt_xent", "info_nce", "triplet", "vicreg" or "dino" — which loss the history holds.
            With "vicreg" the embeddings are the raw (unnormalized) projections the
            loss saw, and their per-dimension std is also compared with VICReg's
            target gamma = 1.
        batch_size: N of the batch (for nt_xent: chance loss ln(2N − 1); info_nce: ln N).
        n_negatives: for info_nce with explicit negatives (a queue): chance is ln(n_negatives + 1).
        margin: for the triplet loss.
        std_threshold: std_ratio below this is complete collapse.
        rank_fraction: effective rank below this fraction of D is dimensional collapse
            (healthy projections of the course's runs use 20–50 % of D; VICReg without its
            covariance term about 10 %).
        n_outputs: for "dino", K, the number of outputs of the head (the entropies are
            read against ln K); the history must hold the two entropies `train_dino` logs.

    Returns a list of Findings (empty when nothing known is wrong). Signatures:
    NaN/Inf loss (too-low temperature or learning rate), a first loss far above
    chance ln(#candidates) (temperature too low: logits too sharp), loss stuck
    at chance (nothing learned), triplet loss stuck at the margin (collapse),
    std → 0 (complete collapse; for VICReg also the raw std far below gamma),
    few dominant singular values (dimensional collapse); for DINO, one output
    dimension taking over (no centring) and a uniform output (no sharpening).
    """
    findings = _dino_findings(history, n_outputs) if loss == "dino" else []
    losses = list(getattr(history, "loss", []) or [])
    if losses and not all(math.isfinite(v) for v in losses):
        first = next(i for i, v in enumerate(losses) if not math.isfinite(v))
        findings.append(Finding(
            "NaN loss", f"the loss became {losses[first]} at step {first + 1}",
            "raise the temperature (τ ≥ 0.05 is safe), lower the learning rate, or use float32 logits"))
        losses = losses[:first]
    if losses:
        recent = sum(_tail(losses)) / len(_tail(losses))
        chance = None
        if loss == "nt_xent" and batch_size:
            chance, label = math.log(2 * batch_size - 1), f"ln(2N − 1) = {math.log(2 * batch_size - 1):.3f}"
        elif loss == "info_nce" and (n_negatives or batch_size):
            k = (n_negatives + 1) if n_negatives else batch_size
            chance, label = math.log(k), f"ln({k}) = {math.log(k):.3f}"
        if chance is not None and losses[0] > 2 * chance:
            findings.append(Finding(
                "temperature too low", f"the first loss {losses[0]:.2f} is {losses[0] / chance:.1f}× the chance "
                f"level {label}: the logits cos/τ are so sharp that the hardest negatives take the whole softmax",
                "raise the temperature (0.1–0.5 is the usual range for NT-Xent / InfoNCE) and check that "
                "the features are L2-normalized before the dot product"))
        if chance is not None and abs(recent - chance) < 0.02 * chance:
            findings.append(Finding(
                "nothing learned", f"the loss sits at {recent:.3f}, the chance level {label}",
                "check that positives really match (same image, two views), raise the learning rate, "
                "or lower the temperature"))
        if loss == "triplet" and margin is not None and margin > 0 and abs(recent - margin) < 0.05 * margin:
            findings.append(Finding(
                "triplet loss stuck at the margin", f"the loss sits at {recent:.3f} ≈ margin {margin}: "
                "d(a, p) ≈ d(a, n), typical of every point collapsed together",
                "start with easier mining (semi-hard or batch-all) before batch-hard, or lower the learning rate"))
    if embeddings is not None:
        ratio = std_ratio(embeddings)
        rank = effective_rank(embeddings)
        d = embeddings.shape[1]
        raw_std = embeddings.float().std(0).mean().item() if loss == "vicreg" else None
        if ratio < std_threshold:
            findings.append(Finding(
                "complete collapse", f"std ratio {ratio:.3f} (healthy ≈ 1): every input maps to nearly one point",
                "add negatives (contrastive loss), a stop-gradient / EMA target with a predictor, "
                "or a variance term (VICReg)"))
        elif raw_std is not None and raw_std < std_threshold * VICREG_GAMMA:
            findings.append(Finding(
                "complete collapse", f"per-dimension std of the raw projections {raw_std:.3f}, far below "
                f"VICReg's target γ = {VICREG_GAMMA:g} (std ratio {ratio:.3f}): the points shrink onto one vector",
                "keep the variance term (variance_weight > 0); it holds every dimension's std at γ"))
        elif rank < rank_fraction * d:
            findings.append(Finding(
                "dimensional collapse", f"effective rank {rank:.1f} of {d} dimensions: a few singular values dominate",
                "add a covariance / decorrelation term, a projection head, or weaker augmentations"))
    return findings


DINO_TAKEOVER = 0.2    # entropy of the mean output below 0.2 · ln K: one dimension wins for every image
DINO_UNIFORM = 0.9     # mean entropy per image above 0.9 · ln K: every output is nearly flat


def _dino_findings(history, n_outputs: int | None) -> list[Finding]:
    """DINO's two collapses, from the teacher's output entropies that `methods.dino.train_dino`
    logs at every step (the mean of the last fifth of the run is read):

    - "entropy of the mean output" (of the average softmax over the batch) near 0: every image
      puts its mass on the same output dimension — the collapse centring prevents;
    - "mean entropy per image" near ln K: each image's output is close to uniform, so the
      teacher says nothing — the collapse sharpening (a low teacher temperature) prevents.
    """
    if not n_outputs or n_outputs < 2:
        raise ValueError(f"diagnose(loss='dino') needs n_outputs = K ≥ 2, the head's number of outputs, "
                         f"got {n_outputs}")
    metrics = getattr(history, "metrics", None) or {}
    names = ("entropy of the mean output", "mean entropy per image")
    missing = [n for n in names if not metrics.get(n)]
    if missing:
        raise ValueError(f"diagnose(loss='dino') reads the history's metrics {missing}: train with "
                         "methods.dino.train_dino, which logs them at every step")
    top = math.log(n_outputs)
    mean_output, per_image = (sum(_tail(v for _, v in metrics[n])) / len(_tail(metrics[n])) for n in names)
    findings = []
    if mean_output < DINO_TAKEOVER * top:
        findings.append(Finding(
            "one output dimension takes over", f"the entropy of the teacher's mean output is {mean_output:.2f} nats "
            f"of ln K = {top:.2f}: every image puts its mass on the same few of the {n_outputs} outputs",
            "centre the teacher's logits (subtract an EMA of their batch mean: train_dino(centering=True)) "
            "and keep the centre's momentum below 1"))
    if per_image > DINO_UNIFORM * top:
        findings.append(Finding(
            "uniform output", f"each image's teacher output has entropy {per_image:.2f} nats of ln K = {top:.2f}: "
            "close to uniform, so the teacher teaches nothing",
            "sharpen the teacher: a teacher temperature well below the student's (DINO: 0.04 against 0.1)"))
    return findings


def report(findings: list[Finding]) -> str:
    """Findings as text, or a line saying no known failure signature was found."""
    if not findings:
        return "no known failure signature found"
    return "\n".join(str(f) for f in findings)
