"""The evaluation toolkit (notebook 11): every number of a results table for one encoder, from one call.

    evaluate_encoder(encoder, data, name=...)   probe and k-NN at 1/10/100 % labels, R@K, MRR, nDCG
    label_subset(labels, fraction, seed)        class-balanced labelled subset (indices)
    Table                                       rows of numbers that print as a table
    raw_pixel_features(x)                       the baseline that bites: pixels as features
    single_thread()                             torch on one CPU thread inside a block
"""
from __future__ import annotations

import contextlib

import torch
import torch.nn as nn

from .knn import KNN_K_GRID, choose_knn_k, knn_accuracy
from .probe import FROZEN_HINT, frozen_features, linear_probe_features
from .retrieval import label_retrieval_metrics


def raw_pixel_features(x: torch.Tensor) -> torch.Tensor:
    """Images (N, C, H, W) → (N, C·H·W) flattened pixels, centred per image. The baseline."""
    flat = x.flatten(1).float()
    return flat - flat.mean(1, keepdim=True)


LABEL_FRACTIONS = (0.01, 0.1, 1.0)


def label_subset(labels: torch.Tensor, fraction: float, seed: int = 0, balanced: bool = True) -> torch.Tensor:
    """Indices (sorted, int64) of a labelled subset holding `fraction` of `labels` (N,).

    balanced=True (the default): the same number of examples from every class,
    per_class = max(1, round(fraction · N / C)), drawn at random without
    repeats — 1 % of 5,000 digits is 5 of each digit, not a random 50 that may
    hold 2 sevens and 10 sixes. balanced=False: round(fraction · N) examples
    drawn at random, whatever their classes. fraction = 1 returns every index.
    Raises ValueError when a class has fewer examples than per_class.
    """
    if not isinstance(labels, torch.Tensor) or labels.ndim != 1 or len(labels) == 0:
        shape = tuple(labels.shape) if isinstance(labels, torch.Tensor) else type(labels).__name__
        raise ValueError(f"expected labels of shape (N,) with N >= 1, got {shape}")
    if isinstance(fraction, bool) or not isinstance(fraction, (int, float)) or not 0 < fraction <= 1:
        raise ValueError(f"fraction must be in (0, 1] (0.01 for 1 % of the labels), got {fraction!r}")
    n = len(labels)
    if fraction == 1:
        return torch.arange(n)
    g = torch.Generator().manual_seed(seed)
    if not balanced:
        return torch.randperm(n, generator=g)[:max(1, round(fraction * n))].sort().values
    classes, counts = labels.unique(return_counts=True)
    per_class = max(1, round(fraction * n / len(classes)))
    if (counts < per_class).any():
        short = classes[counts < per_class][0].item()
        raise ValueError(f"class {short} has only {counts[classes == short].item()} examples, fewer than the "
                         f"{per_class} per class that fraction={fraction} asks for; use a smaller fraction "
                         "or balanced=False")
    picks = []
    for c in classes:
        members = torch.where(labels == c)[0]
        picks.append(members[torch.randperm(len(members), generator=g)[:per_class]])
    return torch.cat(picks).sort().values


class Table:
    """Rows of results (dicts with the same keys) that print as an aligned text table.

        >>> table = Table([{"encoder": "SimCLR", "probe": 0.671}, {"encoder": "raw pixels", "probe": 0.118}])
        >>> print(table)
        encoder     probe
        SimCLR      0.671
        raw pixels  0.118
        >>> table.row("SimCLR")["probe"], table.column("probe")
        (0.671, [0.671, 0.118])

    Floats print with `digits` decimals; rows are looked up by their first column.
    `table + other` stacks the rows of two tables. `details` keeps what a row was
    computed with (chosen k, chosen L2 …), keyed by the row's first column.
    """

    def __init__(self, rows: list[dict], digits: int = 3, details: dict | None = None):
        rows = [dict(r) for r in rows]
        if not rows:
            raise ValueError("a Table needs at least one row")
        self.columns = list(rows[0])
        for r in rows[1:]:
            if list(r) != self.columns:
                raise ValueError(f"every row must have the columns {self.columns}, got {list(r)}")
        self.rows, self.digits, self.details = rows, digits, dict(details or {})

    def _cell(self, value) -> str:
        return f"{value:.{self.digits}f}" if isinstance(value, float) else str(value)

    def __str__(self) -> str:
        cells = [self.columns] + [[self._cell(r[c]) for c in self.columns] for r in self.rows]
        widths = [max(len(row[i]) for row in cells) for i in range(len(self.columns))]
        lines = []
        for row in cells:
            first = row[0].ljust(widths[0])              # names left, numbers right
            lines.append("  ".join([first] + [v.rjust(w) for v, w in zip(row[1:], widths[1:])]).rstrip())
        return "\n".join(lines)

    __repr__ = __str__

    def __len__(self) -> int:
        return len(self.rows)

    def __add__(self, other: "Table") -> "Table":
        return Table(self.rows + other.rows, self.digits, {**self.details, **other.details})

    def row(self, key) -> dict:
        """The row whose first column equals `key`."""
        for r in self.rows:
            if r[self.columns[0]] == key:
                return r
        raise KeyError(f"no row {key!r}; rows: {[r[self.columns[0]] for r in self.rows]}")

    def column(self, name: str) -> list:
        """Every row's value in column `name`."""
        if name not in self.columns:
            raise KeyError(f"no column {name!r}; columns: {self.columns}")
        return [r[name] for r in self.rows]


@contextlib.contextmanager
def single_thread():
    """Run torch on one CPU thread inside the block (and restore the count after).

    The probe's L-BFGS and the k-NN votes are thousands of small tensor ops; split
    over two threads each op waits for the other thread, and on a busy 2-core
    machine that made a probe 10-15× slower than on one thread (same result).
    """
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(before)


def _fraction_name(fraction: float) -> str:
    return f"{100 * fraction:g}%"


def evaluate_encoder(encoder, data, *, name: str, fractions=LABEL_FRACTIONS, knn_ks=KNN_K_GRID,
                     temperature: float | None = None, ks=(1, 10), k_rank: int = 10,
                     pca_dim: int | None = None, seed: int = 0, batch_size: int = 512) -> Table:
    """Every metric of the course for one encoder, as a one-row Table.

    Args:
        encoder: an nn.Module (its features are `embed(encoder, x, normalize=False)`;
            its weights and buffers are fingerprinted before and after, and a change
            raises RuntimeError: evaluation must not train it), or any function
            images (N, C, H, W) → features (N, D), such as `raw_pixel_features`.
        data: an ImageDataset (train_x/train_y, val_x/val_y, test_x/test_y); the
            validation split must not be empty.
        name: the row's name (first column).
        fractions: label fractions; for each, `label_subset` draws a class-balanced
            subset of the training labels AND of the validation labels (a learner
            with 1 % of the labels has 1 % of the validation labels too):
            - "probe f": `linear_probe_features` on that subset, its L2 chosen on the
              validation subset, scored on the whole test set;
            - "k-NN f": cosine k-NN with the subset as memory, k from `knn_ks` chosen on
              the validation subset (`choose_knn_k`), scored on the test set;
        ks, k_rank: retrieval of test queries in the training gallery, relevant =
            same label (`label_retrieval_metrics`): "R@k" for k in ks, "MRR@k_rank",
            "nDCG@k_rank". It uses no labels to rank, so it has no fraction.
        temperature: the k-NN vote (None: one vote per neighbour; see `knn_accuracy`).
        pca_dim: passed to the probe (for thousands of raw pixels); capped at the
            number of labelled examples of each fraction.

    Returns Table([{ "encoder": name, "probe 1%": …, …, "k-NN 1%": …, …, "R@1": …, … }]),
    with `table.details[name]` = {"probe_l2": {f: l2}, "knn_k": {f: k}, "dim": D}.
    """
    if not callable(encoder):
        raise TypeError(f"encoder must be an nn.Module or a function images → features, got {type(encoder).__name__}")
    for attr in ("train_x", "train_y", "val_x", "val_y", "test_x", "test_y"):
        if getattr(data, attr, None) is None:
            raise TypeError(f"data must be an ImageDataset (load_image_dataset(..., n_val=...)); it has no {attr}")
    if len(data.val_x) == 0:
        raise ValueError("data has no validation split; load it with n_val > 0 "
                         "(load_image_dataset(..., n_val=profile.n_val)) so k and L2 are chosen on it")
    if isinstance(encoder, nn.Module):
        features = frozen_features(encoder, (data.train_x, data.val_x, data.test_x), batch_size=batch_size,
                                   changed=f"{name}: the encoder's weights or buffers changed while it was "
                                           f"evaluated; {FROZEN_HINT}")
    else:
        features = [encoder(x) for x in (data.train_x, data.val_x, data.test_x)]
    train_f, val_f, test_f = (f.detach().float().cpu() for f in features)

    with single_thread():
        return _evaluate_features(train_f, val_f, test_f, data, name, fractions, knn_ks, temperature, ks,
                                  k_rank, pca_dim, seed)


def _evaluate_features(train_f, val_f, test_f, data, name, fractions, knn_ks, temperature, ks, k_rank,
                       pca_dim, seed) -> Table:
    row: dict = {"encoder": name}
    details = {"probe_l2": {}, "knn_k": {}, "dim": train_f.shape[1]}
    subsets = {f: (label_subset(data.train_y, f, seed), label_subset(data.val_y, f, seed)) for f in fractions}
    for f, (tr, va) in subsets.items():
        dim = None if pca_dim is None else min(pca_dim, len(tr))        # PCA keeps at most N components
        result = linear_probe_features(train_f[tr], data.train_y[tr], test_f, data.test_y, val_f=val_f[va],
                                       val_y=data.val_y[va], pca_dim=dim, seed=seed, details=True)
        row[f"probe {_fraction_name(f)}"] = result.accuracy
        details["probe_l2"][f] = result.l2
    for f, (tr, va) in subsets.items():
        k, _ = choose_knn_k(train_f[tr], data.train_y[tr], val_f[va], data.val_y[va], knn_ks, temperature)
        row[f"k-NN {_fraction_name(f)}"] = knn_accuracy(train_f[tr], data.train_y[tr], test_f, data.test_y, k,
                                                        temperature=temperature)
        details["knn_k"][f] = k
    row.update(label_retrieval_metrics(gallery_emb=train_f, gallery_labels=data.train_y, query_emb=test_f,
                                       query_labels=data.test_y, ks=ks, k_rank=k_rank))
    return Table([row], details={name: details})
