"""The course's reference models, trained once and shared between notebooks.

Notebook 05 trains SimCLR and the supervised baseline; notebooks 11, 12 and 13 need
the same models. Each function here is that run, written once, through
`model_cache.train_or_load`: the first notebook that asks trains it (progress
line and all) and caches it; later ones load it in a second. Change any
setting and it is trained anew — a cached model is never served for another recipe.

    >>> model, history = course_simclr(profile, data)          # SimCLR: encoder + head
    >>> classifier, history = course_supervised(profile, data) # encoder + linear layer

Long runs survive a lost session: with $CLAB_CHECKPOINT_DIR set (on Colab, a folder of
your mounted Google Drive), each run checkpoints there every few minutes
(`train.CHECKPOINT_EVERY_S`) under a name made from its settings, and the same cell run
again after a disconnect resumes where it stopped.
"""
from __future__ import annotations

import torch
import torch.nn as nn

from ..evaluate.monitors import knn_monitor
from ..losses import DEFAULT_TEMPERATURE
from ..model_cache import cache_key, data_fingerprint, train_or_load
from ..models import make_encoder
from ..train import CHECKPOINT_EVERY_S, History, checkpoint_folder
from .simclr import SimCLR, train_simclr
from .supervised import train_supervised

SEED = 0


def _data_settings(data) -> dict:
    """The data a model is trained and monitored on, by name, sizes and content: the same
    counts drawn with another seed, or another copy of a dataset, give another key."""
    return {"dataset": data.name, "n_train": len(data.train_x), "n_val": len(data.val_x),
            "n_test": len(data.test_x),
            "fingerprint": data_fingerprint(data.train_x, data.train_y, data.val_x, data.val_y)}


def _checkpointing(name: str, settings: dict) -> dict:
    """fit's checkpoint arguments for a course run: a file in $CLAB_CHECKPOINT_DIR named by the
    run's settings, saved every CHECKPOINT_EVERY_S seconds; nothing when the folder is not set."""
    folder = checkpoint_folder()
    if folder is None:
        return {}
    return {"checkpoint": folder / f"{name}-{cache_key(name, settings)}.pt", "checkpoint_every_s": CHECKPOINT_EVERY_S}


def course_simclr(profile, data, device=None, *, temperature: float = DEFAULT_TEMPERATURE,
                  epochs: int | None = None) -> tuple[SimCLR, History]:
    """Notebook 05's SimCLR on `data.train_x` (an ImageDataset), with the profile's recipe and
    SimCLR's own epoch count (`profile.epochs_of("simclr")`).

    The k-NN accuracy of the encoder is monitored on the validation split about ten times
    over the run (`history.metrics["knn"]`; the test split is left for the final tables).
    Checkpointed to $CLAB_CHECKPOINT_DIR when it is set (see the module docstring).
    Returns (model, history); model.encoder is the backbone to keep.
    """
    epochs = profile.epochs_of("simclr") if epochs is None else epochs
    settings = {"profile": profile, "data": _data_settings(data), "temperature": temperature,
                "epochs": epochs, "augment": profile.augment, "seed": SEED}

    def build() -> SimCLR:
        torch.manual_seed(SEED)
        return SimCLR(make_encoder(profile), proj_dim=profile.proj_dim)

    def train(model: SimCLR) -> History:
        monitor = knn_monitor(model.encoder, data.train_x, data.train_y, data.val_x, data.val_y,
                              k=profile.knn_k) if len(data.val_x) else None
        return train_simclr(model, data.train_x, profile, temperature=temperature, epochs=epochs,
                            evaluate=monitor, eval_every=max(profile.eval_every, epochs // 10), device=device,
                            seed=SEED, **_checkpointing("simclr", settings))

    return train_or_load("simclr", settings, build, train, device=device)


def course_supervised(profile, data, device=None, *, epochs: int | None = None) -> tuple[nn.Module, History]:
    """Notebook 05's supervised baseline: the same encoder + a linear layer, cross-entropy on all
    training labels, the profile's augmentation. Checkpointed to $CLAB_CHECKPOINT_DIR when it
    is set. Returns (classifier, history); classifier[0] is the encoder."""
    epochs = profile.epochs // 2 if epochs is None else epochs
    n_classes = len(data.classes)
    settings = {"profile": profile, "data": _data_settings(data), "epochs": epochs,
                "augment": profile.augment, "seed": SEED}

    def build() -> nn.Module:
        torch.manual_seed(SEED)
        encoder = make_encoder(profile)
        return nn.Sequential(encoder, nn.Linear(encoder.feature_dim, n_classes))

    def train(classifier: nn.Module) -> History:
        trained, history = train_supervised(classifier[0], data.train_x, data.train_y, profile,
                                            n_classes=n_classes, epochs=epochs, device=device, seed=SEED,
                                            **_checkpointing("supervised", settings))
        classifier[1].load_state_dict(trained[1].state_dict())   # trained[0] is classifier[0], trained in place
        classifier.to(next(trained.parameters()).device)
        return history

    return train_or_load("supervised", settings, build, train, device=device)
