"""Contrastive losses, each a plain function of tensors.

Distances and similarities:
    cosine_similarity_matrix(a, b)        (N, D), (M, D) → (N, M)
    pairwise_distance(a, b, distance)     "cosine" (1 − cos) or "euclidean"
Losses with a margin (notebook 02):
    contrastive_loss(z1, z2, same, margin)          Hadsell, Chopra & LeCun 2006
    triplet_loss(anchor, positive, negative, margin) Schroff et al. 2015 (FaceNet)
Losses with a temperature (notebooks 03 onwards):
    info_nce(query, positive_key, negative_keys, temperature)  van den Oord et al. 2018
    nt_xent(z1, z2, temperature)                    Chen et al. 2020 (SimCLR)
    supcon_loss(features, labels, temperature)      Khosla et al. 2020
    clip_loss(image_emb, text_emb, logit_scale)     Radford et al. 2021
Losses over learnable class centres (notebook 10):
    arcface_loss(embeddings, class_weights, labels, margin, scale)  Deng et al. 2019
Losses without negatives (notebook 07):
    negative_cosine(prediction, target)             BYOL / SimSiam
    vicreg_loss(z1, z2, ...), vicreg_terms(z1, z2)  Bardes et al. 2022
Text retrieval (notebook 09), at the end:
    multiple_negatives_ranking_loss(query, document, hard_negative, scale)   Sentence-BERT

Every loss returns a scalar tensor: the mean over the batch.

**Precision.** Every similarity, normalisation and log-sum-exp is computed in
float32 with autocast switched off for that block (`float32_block`), whatever
the input dtype. Under bf16 autocast a `.float()` alone does not help: the
matmul that follows is lowered to bf16 again, and at τ = 0.07 that moves the
loss by about 1 % (and SupCon's small values to −0.0).

**Temperature.** The temperature losses share one default,
`DEFAULT_TEMPERATURE` = 0.2: the value the course's SimCLR runs work best with
on the quick profile, and MoCo v2's. Papers use 0.1 (SupCon), 0.1–0.5 (SimCLR,
by batch size); CLIP learns its own (`clip_loss` takes the learned scale).
"""
from __future__ import annotations

import contextlib

import torch
import torch.nn.functional as F

from .validate import (check_labels, check_matrix, check_non_negative, check_positive,
                       check_same_shape, check_temperature, value_checks_enabled)

DISTANCES = ("cosine", "euclidean")
DEFAULT_TEMPERATURE = 0.2


def float32_block(x: torch.Tensor):
    """A `with` block in which autocast is off on x's device, so the maths inside runs in
    float32 (cast the inputs with `.float()` inside it). Outside autocast it changes nothing
    (nor on a device without autocast, such as `meta`)."""
    if not torch.amp.is_autocast_available(x.device.type):
        return contextlib.nullcontext()
    return torch.autocast(device_type=x.device.type, enabled=False)


def cosine_similarity_matrix(a: torch.Tensor, b: torch.Tensor | None = None) -> torch.Tensor:
    """cos(a_i, b_j) for every pair. a (N, D), b (M, D) (default: a) → (N, M) in [−1, 1]."""
    check_matrix(a, "a")
    b = a if b is None else b
    check_matrix(b, "b")
    if a.shape[1] != b.shape[1]:
        raise ValueError(f"a and b need the same dimension D, got {a.shape[1]} and {b.shape[1]}")
    with float32_block(a):
        return F.normalize(a.float(), dim=1) @ F.normalize(b.float(), dim=1).T


def pairwise_distance(a: torch.Tensor, b: torch.Tensor | None = None,
                      distance: str = "cosine") -> torch.Tensor:
    """Distance between every a_i and b_j: (N, D), (M, D) → (N, M).

    "cosine": 1 − cos(a_i, b_j), in [0, 2]. "euclidean": ‖a_i − b_j‖.
    """
    b = a if b is None else b
    if distance == "cosine":
        return 1.0 - cosine_similarity_matrix(a, b)
    if distance == "euclidean":
        check_matrix(a, "a")
        check_matrix(b, "b")
        with float32_block(a):
            a, b = a.float(), b.float()
            sq = (a * a).sum(1, keepdim=True) - 2 * a @ b.T + (b * b).sum(1)
            return sq.clamp_min(1e-12).sqrt()
    raise ValueError(f"distance must be one of {DISTANCES}, got {distance!r}")


def paired_distance(a: torch.Tensor, b: torch.Tensor, distance: str = "cosine") -> torch.Tensor:
    """Distance between matching rows: a (N, D), b (N, D) → (N,), in float32."""
    if distance not in DISTANCES:
        raise ValueError(f"distance must be one of {DISTANCES}, got {distance!r}")
    check_same_shape(a, b, "a", "b")
    with float32_block(a):
        if distance == "cosine":
            return 1.0 - F.cosine_similarity(a.float(), b.float(), dim=1)
        return ((a.float() - b.float()) ** 2).sum(1).clamp_min(1e-12).sqrt()


def contrastive_loss(z1: torch.Tensor, z2: torch.Tensor, same: torch.Tensor,
                     margin: float = 1.0, distance: str = "euclidean") -> torch.Tensor:
    """Pairwise contrastive (margin) loss.

    For each pair i with distance d_i:
        same pair:      d_i²
        different pair: max(0, margin − d_i)²
    and the loss is the mean over the N pairs.

    Args:
        z1, z2: (N, D) embeddings of the two sides of each pair.
        same: (N,) bool or 0/1 (any dtype): whether pair i is a positive pair.
        margin: how far apart different pairs are pushed (≥ 0).
        distance: "euclidean" or "cosine".
    """
    check_same_shape(z1, z2, "z1", "z2")
    check_labels(same, z1.shape[0], "same")
    if value_checks_enabled() and not ((same == 0) | (same == 1)).all():
        raise ValueError(f"same must hold only 0/1 or True/False (is pair i a positive pair?), got values "
                         f"{sorted(set(same.unique().tolist()))[:6]}")
    check_non_negative(margin, "margin")
    d = paired_distance(z1, z2, distance)
    same = same.to(d.dtype)
    return (same * d ** 2 + (1 - same) * F.relu(margin - d) ** 2).mean()


def triplet_loss(anchor: torch.Tensor, positive: torch.Tensor, negative: torch.Tensor,
                 margin: float = 0.2, distance: str = "cosine") -> torch.Tensor:
    """Triplet margin loss, mean over the batch.

        loss_i = max(0, d(a_i, p_i) − d(a_i, n_i) + margin)

    Args:
        anchor, positive, negative: (N, D) each; row i is one triplet.
        margin: required gap between the negative and positive distance (≥ 0).
        distance: "cosine" (1 − cos) or "euclidean".

    Which triplets to feed is the miner's job (`contrastive_lab.mining`).
    """
    check_same_shape(anchor, positive, "anchor", "positive")
    check_same_shape(anchor, negative, "anchor", "negative")
    check_non_negative(margin, "margin")
    d_ap = paired_distance(anchor, positive, distance)
    d_an = paired_distance(anchor, negative, distance)
    return F.relu(d_ap - d_an + margin).mean()


def info_nce(query: torch.Tensor, positive_key: torch.Tensor,
             negative_keys: torch.Tensor | None = None,
             temperature: float = DEFAULT_TEMPERATURE) -> torch.Tensor:
    """InfoNCE: a softmax cross-entropy that picks each query's positive among negatives.

    With s(u, v) = cos(u, v) / temperature,
        loss_i = −log  exp(s(q_i, k⁺_i)) / (exp(s(q_i, k⁺_i)) + Σ_neg exp(s(q_i, k⁻)))

    Args:
        query: (N, D).
        positive_key: (N, D); row i is the positive of query i.
        negative_keys: None → in-batch negatives: the other rows of positive_key
            (logits are the N×N matrix, the diagonal is the target).
            (M, D) → explicit negatives shared by every query (a MoCo queue).
        temperature: > 0. Smaller sharpens the softmax onto the hardest negatives.

    Returns the mean over the N queries. At random init (all similarities ≈ 0)
    it is ≈ ln(number of candidates): ln N in-batch, ln(M + 1) with explicit negatives.
    """
    check_same_shape(query, positive_key, "query", "positive_key")
    check_temperature(temperature)
    if negative_keys is None and query.shape[0] < 2:
        raise ValueError("info_nce with in-batch negatives needs at least 2 pairs (N ≥ 2) so that negatives "
                         "exist; give negative_keys for a single query")
    if negative_keys is not None:
        check_matrix(negative_keys, "negative_keys")
        if negative_keys.shape[1] != query.shape[1]:
            raise ValueError(f"negative_keys must have dimension D={query.shape[1]}, "
                             f"got shape {tuple(negative_keys.shape)}")
    with float32_block(query):
        q = F.normalize(query.float(), dim=1)
        k = F.normalize(positive_key.float(), dim=1)
        if negative_keys is None:
            logits = q @ k.T / temperature                          # (N, N), positives on the diagonal
            target = torch.arange(q.shape[0], device=q.device)
        else:
            neg = F.normalize(negative_keys.float(), dim=1)
            pos_logit = (q * k).sum(1, keepdim=True)                # (N, 1)
            logits = torch.cat([pos_logit, q @ neg.T], 1) / temperature   # (N, 1 + M)
            target = torch.zeros(q.shape[0], dtype=torch.long, device=q.device)
        return F.cross_entropy(logits, target)


def nt_xent(z1: torch.Tensor, z2: torch.Tensor, temperature: float = DEFAULT_TEMPERATURE) -> torch.Tensor:
    """NT-Xent, SimCLR's loss over 2N views.

    z1[i] and z2[i] are two views of image i. Each of the 2N views has one
    positive (its twin) and 2N − 2 negatives (every other view); its own
    similarity is masked out. The loss is the mean over all 2N views; at
    random init it is ≈ ln(2N − 1).

    Args:
        z1, z2: (N, D) each, N ≥ 2.
        temperature: > 0.
    """
    check_same_shape(z1, z2, "z1", "z2")
    check_temperature(temperature)
    n = z1.shape[0]
    if n < 2:
        raise ValueError("nt_xent needs at least 2 images (N ≥ 2) so that negatives exist")
    with float32_block(z1):
        z = F.normalize(torch.cat([z1, z2]).float(), dim=1)     # (2N, D)
        logits = z @ z.T / temperature                          # (2N, 2N)
        self_mask = torch.eye(2 * n, dtype=torch.bool, device=z.device)
        logits = logits.masked_fill(self_mask, float("-inf"))
        target = (torch.arange(2 * n, device=z.device) + n) % (2 * n)   # view i's twin: i ± N
        return F.cross_entropy(logits, target)


def supcon_loss(features: torch.Tensor, labels: torch.Tensor,
                temperature: float = DEFAULT_TEMPERATURE) -> torch.Tensor:
    """Supervised contrastive loss (Khosla et al. 2020, the L_out form).

    Every other sample with the same label is a positive:
        loss_i = −1/|P(i)| Σ_{p∈P(i)} log  exp(s_ip) / Σ_{a≠i} exp(s_ia)
    with s = cos / temperature. Anchors without any positive are skipped (the
    mean runs over the anchors that have one; a batch where none has one gives
    0, or a ValueError when value checks are on).

    Args:
        features: (N, D) (for two views, concatenate them and repeat the labels).
        labels: (N,) integer class labels (any integer dtype, or bool).
        temperature: > 0.
    """
    check_matrix(features, "features")
    check_labels(labels, features.shape[0])
    if labels.dtype.is_floating_point or labels.dtype.is_complex:
        raise ValueError(f"labels must be integer class ids, got dtype {labels.dtype} "
                         "(a NaN label would match nothing); convert whole-number labels with labels.long()")
    check_temperature(temperature)
    with float32_block(features):
        z = F.normalize(features.float(), dim=1)
        n = z.shape[0]
        logits = z @ z.T / temperature
        self_mask = torch.eye(n, dtype=torch.bool, device=z.device)
        logits = logits.masked_fill(self_mask, float("-inf"))
        log_prob = logits - torch.logsumexp(logits, dim=1, keepdim=True)
        positive = (labels[:, None] == labels[None, :]) & ~self_mask
        n_pos = positive.sum(1)                                 # (N,) positives per anchor
        has_pos = n_pos > 0
        if value_checks_enabled() and not has_pos.any():
            raise ValueError("supcon_loss: no sample has a positive (every label is unique in the batch)")
        pos_log_prob = torch.where(positive, log_prob, torch.zeros_like(log_prob)).sum(1)
        # masks multiplied in rather than boolean indexing: no host synchronisation
        per_anchor = pos_log_prob / n_pos.clamp_min(1)
        return -(per_anchor * has_pos).sum() / has_pos.sum().clamp_min(1)


def clip_loss(image_emb: torch.Tensor, text_emb: torch.Tensor, logit_scale) -> torch.Tensor:
    """CLIP's symmetric InfoNCE over an image–text batch.

    logits = logit_scale · cos(image_i, text_j)  (N, N); pair i is (image_i, text_i).
    loss = ½ [CE(logits, diag) + CE(logitsᵀ, diag)]: image→text and text→image.

    Args:
        image_emb, text_emb: (N, D) each.
        logit_scale: the multiplier itself (= 1 / temperature), a positive float
            or 0-dim tensor; CLIP learns log(scale), starts at 1/0.07 and clamps at 100.
    """
    check_same_shape(image_emb, text_emb, "image_emb", "text_emb")
    check_positive(logit_scale, "logit_scale")
    if image_emb.shape[0] < 2:
        raise ValueError("clip_loss needs at least 2 image-text pairs (N ≥ 2) so that negatives exist")
    with float32_block(image_emb):
        img = F.normalize(image_emb.float(), dim=1)
        txt = F.normalize(text_emb.float(), dim=1)
        scale = logit_scale.float() if isinstance(logit_scale, torch.Tensor) else logit_scale
        logits = scale * img @ txt.T
        target = torch.arange(img.shape[0], device=img.device)
        return 0.5 * (F.cross_entropy(logits, target) + F.cross_entropy(logits.T, target))


def negative_cosine(prediction: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """BYOL / SimSiam regression loss: 2 − 2·cos(prediction_i, target_i), mean over rows.

    prediction, target: (N, D). The loss is 0 when every pair points the same
    way, 4 when opposite. It has no negatives: nothing in it stops every input
    from mapping to one point — the methods' asymmetry (predictor, stop-gradient,
    EMA target) is what prevents collapse. Detach `target` yourself where the
    method stops its gradient.
    """
    check_same_shape(prediction, target, "prediction", "target")
    with float32_block(prediction):
        return (2 - 2 * F.cosine_similarity(prediction.float(), target.float(), dim=1)).mean()


def vicreg_terms(z1: torch.Tensor, z2: torch.Tensor, gamma: float = 1.0,
                 eps: float = 1e-4) -> dict[str, torch.Tensor]:
    """VICReg's three terms (Bardes, Ponce & LeCun 2022), each a scalar tensor:

        invariance  mean squared distance between z1_i and z2_i
        variance    mean over dimensions of max(0, gamma − std_d), summed over both branches
        covariance  sum of squared off-diagonal covariances / D, summed over both branches

    z1, z2: (N, D), N ≥ 2, NOT normalized (the variance term needs the scale).
    Computed in float32 with autocast off. `vicreg_loss` weighs and adds them.
    """
    check_same_shape(z1, z2, "z1", "z2")
    check_non_negative(gamma, "gamma")
    check_non_negative(eps, "eps")
    n, d = z1.shape
    if n < 2:
        raise ValueError("VICReg needs at least 2 samples to measure variance")

    def variance(z):
        return F.relu(gamma - torch.sqrt(z.var(0) + eps)).mean()

    def covariance(z):
        zc = z - z.mean(0)
        cov = zc.T @ zc / (n - 1)
        off = cov - torch.diag(torch.diagonal(cov))
        return off.pow(2).sum() / d

    with float32_block(z1):
        z1, z2 = z1.float(), z2.float()
        return {"invariance": F.mse_loss(z1, z2),
                "variance": variance(z1) + variance(z2),
                "covariance": covariance(z1) + covariance(z2)}


def vicreg_loss(z1: torch.Tensor, z2: torch.Tensor, invariance_weight: float = 25.0,
                variance_weight: float = 25.0, covariance_weight: float = 1.0,
                gamma: float = 1.0, eps: float = 1e-4) -> torch.Tensor:
    """VICReg: invariance_weight · invariance + variance_weight · variance + covariance_weight · covariance.

    z1, z2: (N, D), N ≥ 2, NOT normalized. The terms are those of `vicreg_terms`
    (call it to see them). Set variance_weight=0 to watch it collapse. Returns a scalar.
    """
    for name, weight in (("invariance_weight", invariance_weight), ("variance_weight", variance_weight),
                         ("covariance_weight", covariance_weight)):
        check_non_negative(weight, name)
    terms = vicreg_terms(z1, z2, gamma, eps)
    return (invariance_weight * terms["invariance"] + variance_weight * terms["variance"]
            + covariance_weight * terms["covariance"])


# ====================================================================== ArcFace (notebook 10)
import math  # noqa: E402  (this section is appended; keeps the module head untouched)


def _check_class_labels(labels: torch.Tensor, n: int, n_classes: int) -> None:
    """labels (n,) integer class indices, each in [0, n_classes). The range is a value check:
    it reads the labels, so it is skipped inside `fit` (validate.value_checks)."""
    check_labels(labels, n)
    if labels.dtype.is_floating_point or labels.dtype == torch.bool:
        raise ValueError(f"labels must be integer class indices, got dtype {labels.dtype}")
    if value_checks_enabled() and n > 0:
        low, high = int(labels.min()), int(labels.max())
        if low < 0 or high >= n_classes:
            raise ValueError(f"labels must lie in [0, C) with C = class_weights.shape[0] = {n_classes}, "
                             f"got labels from {low} to {high}; give class_weights one row per class")


def arcface_loss(embeddings: torch.Tensor, class_weights: torch.Tensor, labels: torch.Tensor,
                 margin: float = 0.5, scale: float = 30.0) -> torch.Tensor:
    """ArcFace: softmax cross-entropy over classes with an additive angular margin (Deng et al. 2019).

    Every class c has a learnable centre direction W_c. With θ_ic the angle between
    embedding i and W_c (both L2-normalized here), the logits are

        s · cos(θ_iy + m)   for the true class y of sample i,
        s · cos θ_ic        for every other class c,

    and the loss is the mean cross-entropy. The margin m (radians) makes the true
    class win only if the sample is m closer to its centre than to any other: classes
    become compact caps on the sphere with gaps between them, which is what a
    verification threshold on cosine needs. The scale s sets the softmax's sharpness
    (logits in [−s, s]); s ≈ 30–64 in face recognition.

    When θ + m > π: cos(θ + m) would rise again as θ grows, so the loss would push a
    sample that is already far from its centre farther away. There the target logit
    continues as s · (cos θ − (1 − cos m)), which meets s · cos(θ + m) = −s at
    θ = π − m and keeps falling as θ grows: continuous and monotonic. (insightface
    uses cos θ − m·sin m there, which jumps at π − m.)

    With m = 0 it is softmax cross-entropy on cosine logits (NormFace / "normalized
    softmax") at temperature 1/s.

    Args:
        embeddings: (N, D) features.
        class_weights: (C, D) one row per training class (an nn.Parameter of the trainer).
        labels: (N,) integer class of each row, in [0, C).
        margin: additive angle in radians, ≥ 0 (0.5 ≈ 28.6° in the paper).
        scale: s > 0.

    Computed in float32 with autocast off, so bf16 training keeps exact logits.

        >>> W = torch.nn.Parameter(torch.randn(640, 64))
        >>> loss = arcface_loss(model(x), W, y)        # y in 0..639
    """
    check_matrix(embeddings, "embeddings")
    check_matrix(class_weights, "class_weights")
    if embeddings.shape[1] != class_weights.shape[1]:
        raise ValueError(f"embeddings (N, D) and class_weights (C, D) need the same D, got "
                         f"{tuple(embeddings.shape)} and {tuple(class_weights.shape)}")
    _check_class_labels(labels, embeddings.shape[0], class_weights.shape[0])
    check_non_negative(margin, "margin")
    check_positive(scale, "scale")
    labels = labels.long()                                                # any integer dtype
    with float32_block(embeddings):
        z = F.normalize(embeddings.float(), dim=1)
        w = F.normalize(class_weights.float(), dim=1)
        cos = z @ w.T                                                     # (N, C)
        true = labels[:, None] == torch.arange(w.shape[0], device=labels.device)[None, :]
        cos_y = (cos * true).sum(1)                                       # (N,) cos θ of the true class
        theta = torch.acos(cos_y.clamp(-1 + 1e-6, 1 - 1e-6))
        target = torch.where(theta + margin <= math.pi, torch.cos(theta + margin),
                             cos_y - (1 - math.cos(margin)))
        logits = scale * torch.where(true, target[:, None], cos)
        return F.cross_entropy(logits, labels)


# ====================================================================== Text retrieval (notebook 09)
def multiple_negatives_ranking_loss(query: torch.Tensor, document: torch.Tensor,
                                    hard_negative: torch.Tensor | None = None,
                                    scale: float = 20.0, symmetric: bool = False) -> torch.Tensor:
    """Sentence-BERT's MultipleNegativesRankingLoss: each query must pick its own document
    out of every document in the batch (Henderson et al. 2017; Reimers & Gurevych 2019).

    It is InfoNCE over in-batch negatives with scale = 1 / temperature
    (scale 20 ↔ τ = 0.05): with s(u, v) = scale · cos(u, v),
        loss_i = −log  exp(s(q_i, d_i)) / Σ_j exp(s(q_i, c_j))
    where the candidates c are the N documents of the batch, plus the N hard
    negatives when given (one per query, shared by every query, as
    sentence-transformers does). Larger batches give more negatives per query.

    Data: (query, positive document) pairs, optionally with one hard negative each
    (a document that looks relevant but is not, e.g. BM25's top wrong answer).

    symmetric=True adds the other direction, as sentence-transformers'
    MultipleNegativesSymmetricRankingLoss: each document must also pick its own
    query among the N queries of the batch, and the two losses are averaged
    (hard negatives, being documents, only take part in the query → document half).

    Args:
        query, document: (N, D); row i of document is the answer to query i.
        hard_negative: None or (N, D).
        scale: > 0, the logit multiplier.
        symmetric: also score document → query (see above).
    Returns the mean over the N queries; ≈ ln N at random init (ln 2N with hard negatives;
    symmetric: the mean of ln 2N and ln N).
    The similarities and the log-sum-exp are computed in float32 with autocast off.
    """
    check_same_shape(query, document, "query", "document")
    if hard_negative is not None:
        check_same_shape(query, hard_negative, "query", "hard_negative")
    check_positive(scale, "scale")
    if hard_negative is None and query.shape[0] < 2:
        raise ValueError("multiple_negatives_ranking_loss needs at least 2 pairs (N ≥ 2) so that negatives "
                         "exist, or a hard_negative for each query")
    with float32_block(query):
        q = F.normalize(query.float(), dim=1)
        candidates = document if hard_negative is None else torch.cat([document, hard_negative])
        c = F.normalize(candidates.float(), dim=1)
        logits = scale * q @ c.T                                # (N, N) or (N, 2N); answers on the diagonal
        target = torch.arange(q.shape[0], device=q.device)
        forward = F.cross_entropy(logits, target)
        if not symmetric:
            return forward
        backward = F.cross_entropy(logits[:, :q.shape[0]].T, target)    # document j picks among the N queries
        return (forward + backward) / 2
