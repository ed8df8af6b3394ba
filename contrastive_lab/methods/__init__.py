"""Training methods, one small file each, saying only what is special about the method.

    simclr              encoder + projection head, two augmented views, NT-Xent
    moco                a momentum key encoder and a FIFO queue of negatives
    byol                BYOL and SimSiam: a predictor and a stop-gradient / EMA target, no negatives
    vicreg              variance, invariance and covariance terms, no negatives
    supcon              positives from labels (SupCon) in the two-view loop
    supervised          the cross-entropy baseline the self-supervised methods are compared with
    clip                image and text encoders in one space, symmetric InfoNCE
    sentence_bert       a bi-encoder trained on (query, document) pairs (notebook 09)
    sentence_finetune   a pretrained sentence encoder fine-tuned with MNRL and mined hard negatives (notebook 09)
    masked_autoencoder  the generative baseline: reconstruct masked patches (notebook 11)
    verification        notebook 10's settings for verification on unseen identities
    data_parallel       SimCLR, MoCo, BYOL and CLIP on several processes
    course_models       the course's reference models, trained once and shared between notebooks

What they share lives once: `views.py` (data on the device, views, the profile's
optimizer recipe), `momentum.py` (EMA encoders and the key queue of MoCo and BYOL) and
`contrastive_lab.train.fit` (the loop). The names above are importable from here; import
the last six from their modules.
"""
from .byol import BYOL, SimSiam, byol_loss, simsiam_loss, train_byol, train_simsiam
from .clip import CLIP, CLIPSettings, build_clip, clip_settings, train_clip
from .moco import MoCo, moco_loss, train_moco
from .simclr import SimCLR, simclr_loss, simclr_step, train_simclr
from .supcon import supcon_views_loss, train_supcon
from .supervised import accuracy, train_supervised
from .vicreg import train_vicreg, vicreg_views_loss
from .views import train_on_views

__all__ = [
    "BYOL", "SimSiam", "byol_loss", "simsiam_loss", "train_byol", "train_simsiam",
    "CLIP", "CLIPSettings", "build_clip", "clip_settings", "train_clip",
    "MoCo", "moco_loss", "train_moco",
    "SimCLR", "simclr_loss", "simclr_step", "train_simclr",
    "supcon_views_loss", "train_supcon",
    "accuracy", "train_supervised",
    "train_vicreg", "vicreg_views_loss",
    "train_on_views",
]
