"""How good is an embedding? Measured, not asserted. One module per job:

    knn        nearest neighbours with labels: knn_accuracy, recall_at_k, choose_knn_k
    geometry   the embedding on the sphere: alignment, uniformity (Wang & Isola 2020)
    probe      the linear probe on frozen features: linear_probe, linear_probe_features,
               fit_logistic_regression, principal_components, frozen_features
    retrieval  ranking on a (Q, D) score matrix: ndcg_at_k, mrr_at_k, retrieval_recall_at_k,
               retrieval_metrics; label_retrieval_metrics on embeddings
    roc        verification of pairs: ROC, AUC, EER, TAR@FAR, thresholds, gallery/probe split
    monitors   metrics during training, for fit(evaluate=...): knn_monitor, retrieval_monitor
    toolkit    a results table from one call: evaluate_encoder, label_subset, Table,
               raw_pixel_features (the baseline), single_thread

Every name is importable from here, `from contrastive_lab.evaluate import knn_accuracy`.

Conventions shared by every function:
- the reference set (the training set, the memory, the gallery) comes before the set
  that is scored (the test set, the queries), as in `knn_accuracy(train…, test…)` and
  `linear_probe(backbone, train…, test…)`; `recall_at_k` and `label_retrieval_metrics`
  take their four tensors by name only (gallery_emb=…, query_emb=…);
- a pair or a candidate is accepted when score >= threshold (`accepts`);
- `temperature` is τ itself (a vote weighted by exp(cos / τ)), never 1/τ.
"""
from .geometry import alignment, uniformity
from .knn import KNN_K_GRID, choose_knn_k, knn_accuracy, recall_at_k
from .monitors import knn_monitor, retrieval_monitor
from .probe import (PROBE_L2_GRID, ProbeResult, fit_logistic_regression, frozen_features, linear_probe,
                    linear_probe_features, principal_components)
from .retrieval import label_retrieval_metrics, mrr_at_k, ndcg_at_k, retrieval_metrics, retrieval_recall_at_k
from .roc import (accepts, auc, confusion_counts, equal_error_rate, far_frr, first_per_identity, gallery_probe_split,
                  pair_scores, roc, tar_at_far, threshold_at_far, verification_pairs, verification_report)
from .toolkit import LABEL_FRACTIONS, Table, evaluate_encoder, label_subset, raw_pixel_features, single_thread

__all__ = [
    "alignment", "uniformity",
    "KNN_K_GRID", "choose_knn_k", "knn_accuracy", "recall_at_k",
    "knn_monitor", "retrieval_monitor",
    "PROBE_L2_GRID", "ProbeResult", "fit_logistic_regression", "frozen_features", "linear_probe",
    "linear_probe_features", "principal_components",
    "label_retrieval_metrics", "mrr_at_k", "ndcg_at_k", "retrieval_metrics", "retrieval_recall_at_k",
    "accepts", "auc", "confusion_counts", "equal_error_rate", "far_frr", "first_per_identity", "gallery_probe_split",
    "pair_scores", "roc", "tar_at_far", "threshold_at_far", "verification_pairs", "verification_report",
    "LABEL_FRACTIONS", "Table", "evaluate_encoder", "label_subset", "raw_pixel_features", "single_thread",
]
