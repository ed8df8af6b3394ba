"""Plots that beat numbers: embeddings, spheres, training curves, image grids.

Every function draws into a new (or given) matplotlib figure and returns it;
call `plt.show()` in the notebook.
"""
from __future__ import annotations

import matplotlib.pyplot as plt
import numpy as np
import torch

CMAP = "tab10"


def _np(x) -> np.ndarray:
    return x.detach().cpu().numpy() if isinstance(x, torch.Tensor) else np.asarray(x)


def show_images(x: torch.Tensor, labels=None, n: int = 16, ncols: int = 8, title: str | None = None,
                size: float = 1.1):
    """A grid of the first n images of x (N, C, H, W) in [0, 1], labels as titles."""
    n = min(n, len(x))
    nrows = (n + ncols - 1) // ncols
    fig, axes = plt.subplots(nrows, ncols, figsize=(ncols * size, nrows * size + 0.3 * bool(title)),
                             squeeze=False)
    for i, ax in enumerate(axes.flat):
        ax.axis("off")
        if i < n:
            img = _np(x[i]).transpose(1, 2, 0)
            ax.imshow(img.squeeze(-1) if img.shape[-1] == 1 else img.clip(0, 1),
                      cmap="gray" if img.shape[-1] == 1 else None)
            if labels is not None:
                ax.set_title(str(_np(labels[i]).item() if hasattr(labels[i], "item") else labels[i]),
                             fontsize=8)
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    return fig


def show_views(x: torch.Tensor, views: list[torch.Tensor], n: int = 8, names=None):
    """Originals in the first row, then one row per augmented view of the same images."""
    rows = [x] + list(views)
    names = names or ["original"] + [f"view {i + 1}" for i in range(len(views))]
    fig, axes = plt.subplots(len(rows), n, figsize=(n * 1.1, len(rows) * 1.15), squeeze=False)
    for r, (batch, name) in enumerate(zip(rows, names)):
        for c in range(n):
            ax = axes[r, c]
            ax.imshow(_np(batch[c]).transpose(1, 2, 0).clip(0, 1))
            ax.set_xticks([])
            ax.set_yticks([])
            if c == 0:
                ax.set_ylabel(name, fontsize=8)
    fig.tight_layout()
    return fig


def plot_on_sphere(emb, labels, ax=None, title: str | None = None, s: float = 6):
    """3-D unit vectors (N, 3) on the unit sphere, coloured by label."""
    emb, labels = _np(emb), _np(labels)
    if emb.shape[1] != 3:
        raise ValueError(f"plot_on_sphere needs (N, 3) points, got {emb.shape}")
    if ax is None:
        fig = plt.figure(figsize=(4.8, 4.8))
        ax = fig.add_subplot(projection="3d")
    u, v = np.mgrid[0:2 * np.pi:30j, 0:np.pi:15j]
    ax.plot_wireframe(np.cos(u) * np.sin(v), np.sin(u) * np.sin(v), np.cos(v), color="0.85", lw=0.4)
    ax.scatter(emb[:, 0], emb[:, 1], emb[:, 2], c=labels, cmap=CMAP, s=s, vmin=0, vmax=9, depthshade=False)
    ax.set_box_aspect((1, 1, 1))
    ax.set_axis_off()
    if title:
        ax.set_title(title)
    return ax.figure


def plot_history(history, metrics=(), ax=None, title: str | None = None):
    """Loss per step (smoothed) and, on a second axis, metrics per epoch."""
    if ax is None:
        _, ax = plt.subplots(figsize=(6, 3.2))
    loss = np.asarray(history.loss)
    if len(loss):
        w = max(1, len(loss) // 50)
        smooth = np.convolve(loss, np.ones(w) / w, mode="valid")
        ax.plot(np.arange(len(smooth)) + w - 1, smooth, color="C0", label="loss")
    ax.set_xlabel("step")
    ax.set_ylabel("loss")
    if metrics:
        steps_per_epoch = len(loss) / max(len(history.epoch_loss), 1)
        ax2 = ax.twinx()
        for i, name in enumerate(metrics):
            pts = np.asarray(history.metrics.get(name, []), dtype=float)
            if len(pts):
                ax2.plot(pts[:, 0] * steps_per_epoch, pts[:, 1], "o-", color=f"C{i + 1}", label=name)
        ax2.set_ylabel(", ".join(metrics))
        ax2.legend(loc="center right", fontsize=8)
    if title:
        ax.set_title(title)
    return ax.figure


def plot_bars(results: dict[str, float], ax=None, title: str | None = None, ylabel: str = "accuracy",
              chance: float | None = None):
    """Bar chart of named results (e.g. baselines beside a trained model), values printed on the bars."""
    if ax is None:
        _, ax = plt.subplots(figsize=(1.3 * len(results) + 1.5, 3))
    names, values = list(results), list(results.values())
    bars = ax.bar(names, values, color=[f"C{i}" for i in range(len(names))])
    for b, v in zip(bars, values):
        ax.text(b.get_x() + b.get_width() / 2, v, f"{v:.2f}", ha="center", va="bottom", fontsize=8)
    if chance is not None:
        ax.axhline(chance, color="0.4", ls="--", lw=1, label="chance")
        ax.legend(fontsize=8)
    ax.set_ylabel(ylabel)
    ax.tick_params(axis="x", labelsize=8)
    if title:
        ax.set_title(title)
    return ax.figure


def plot_spectrum(spectra: dict, ax=None, title: str | None = "singular-value spectrum"):
    """Singular values (largest first, log scale) of one or more embeddings: name → (K,) values.

    A healthy embedding decays slowly; dimensional collapse drops off a cliff
    after a few values. Use diagnose.singular_values(z) to get them.
    """
    if ax is None:
        _, ax = plt.subplots(figsize=(5, 3.2))
    for name, values in spectra.items():
        v = _np(values)
        ax.semilogy(np.arange(1, len(v) + 1), np.maximum(v, 1e-8), label=name)
    ax.set_xlabel("index")
    ax.set_ylabel("singular value")
    ax.legend(fontsize=8)
    if title:
        ax.set_title(title)
    return ax.figure


def plot_heatmap(values, rows, cols, ax=None, title: str | None = None, row_label: str = "",
                 col_label: str = "", colorbar_label: str = "", fmt: str = "{:.3f}", notes=None):
    """A grid of numbers as colours, each cell printed: values (R, C), rows (R,) and cols (C,)
    the tick labels (e.g. τ down the side, batch size along the top). notes: (R, C) strings
    printed under each number (a spread, a step count), or None."""
    v = _np(values).astype(float)
    if v.shape != (len(rows), len(cols)):
        raise ValueError(f"values of shape {v.shape} do not fit {len(rows)} rows × {len(cols)} columns")
    if ax is None:
        _, ax = plt.subplots(figsize=(1.4 * len(cols) + 2.2, 0.7 * len(rows) + 1.4))
    im = ax.imshow(v, cmap="viridis", aspect="auto")
    middle = (np.nanmin(v) + np.nanmax(v)) / 2
    for i in range(len(rows)):
        for j in range(len(cols)):
            text = fmt.format(v[i, j]) + (f"\n{notes[i][j]}" if notes is not None else "")
            ax.text(j, i, text, ha="center", va="center", fontsize=8, color="black" if v[i, j] > middle else "white")
    ax.set_xticks(range(len(cols)), [str(c) for c in cols])
    ax.set_yticks(range(len(rows)), [str(r) for r in rows])
    ax.set_xlabel(col_label)
    ax.set_ylabel(row_label)
    ax.figure.colorbar(im, ax=ax, label=colorbar_label)
    if title:
        ax.set_title(title, fontsize=10)
    return ax.figure
