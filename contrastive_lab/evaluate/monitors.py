"""Metrics measured during training: functions `fit(evaluate=...)` calls every few epochs.

    knn_monitor(encoder, train_x, train_y, test_x, test_y)   {"knn": k-NN accuracy of the encoder now}
    retrieval_monitor(encoder, x, y)                         {"val R@1": …, "val R@10": …}
"""
from __future__ import annotations

import torch
import torch.nn as nn

from ..models import embed
from .knn import knn_accuracy, recall_at_k


def knn_monitor(encoder: nn.Module, train_x: torch.Tensor, train_y: torch.Tensor,
                test_x: torch.Tensor, test_y: torch.Tensor, k: int = 20, name: str = "knn"):
    """A () → {name: k-NN accuracy} function for `fit(evaluate=...)`: embeds both sets
    with the encoder as it is at that moment and scores the test set."""
    def evaluate() -> dict[str, float]:
        return {name: knn_accuracy(embed(encoder, train_x), train_y, embed(encoder, test_x), test_y, k)}
    return evaluate


def retrieval_monitor(encoder: nn.Module, x: torch.Tensor, y: torch.Tensor, ks=(1, 10), name: str = "val"):
    """A () → {"val R@1": …, "val R@10": …} function for `fit(evaluate=...)`: embeds the held-out
    images x (N, C, H, W) with the encoder as it is at that moment, and scores label retrieval
    among them (each image queries the others, `exclude_self`)."""
    def evaluate() -> dict[str, float]:
        z = embed(encoder, x)
        recall = recall_at_k(gallery_emb=z, gallery_labels=y, query_emb=z, query_labels=y, k=list(ks),
                             exclude_self=True)
        return {f"{name} R@{k}": recall[k] for k in ks}
    return evaluate
