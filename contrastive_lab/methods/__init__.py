"""Training methods, one small file each, saying only what is special about the method.

    simclr              encoder + projection head, two augmented views, NT-Xent
    moco                a momentum key encoder and a FIFO queue of negatives (shuffle-BN)
    byol                BYOL and SimSiam: a predictor and a stop-gradient / EMA target, no negatives
    vicreg              variance, invariance and covariance terms, no negatives
    supcon              positives from labels (SupCon) in the two-view loop
    supervised          the cross-entropy baseline the self-supervised methods are compared with
    clip                image and text encoders in one space, symmetric InfoNCE; the image–caption loop
    siglip              CLIP's towers with a sigmoid loss per pair and a learnable bias (notebook 08)
    dino                self-distillation: a student, its EMA teacher, a centred and sharpened target
    masked_autoencoder  paint back hidden patches: the generative baseline of notebook 11
    sentence_bert       a bi-encoder for text retrieval, trained with in-batch negatives (notebook 09)
    sentence_finetune   a pretrained sentence encoder fine-tuned with MNRL and mined hard negatives (notebook 09)
    verification        notebook 10's settings and embedder (identities never seen in training)
    momentum            EMA updates and the key queue: MoCo's and BYOL's state
    views               the shared loop over augmented views of images (multi-crop too), the recipe
    registry            `Method`: what the trainers and the CLI need to know about a method
    data_parallel       any registered method on one process or several (torchrun)
    course_models       the reference models trained once and shared between notebooks

What they share lives once: `views.py` (data on the device, views, the optimization
recipe), `momentum.py` (EMA encoders and the key queue of MoCo and BYOL) and
`contrastive_lab.train.fit` (the loop). A method the command line and the
multi-process trainer can run ends its file with a registry entry, `METHOD = Method(...)`
(`registry.py`); a new one is one new file (and a line here).
"""
from .byol import BYOL, SimSiam, byol_loss, simsiam_loss, train_byol, train_simsiam
from .clip import CLIP, CLIPSettings, build_clip, clip_settings, train_clip
from .moco import MoCo, moco_loss, train_moco
from .simclr import SimCLR, simclr_loss, simclr_step, train_simclr
from .supcon import supcon_views_loss, train_supcon
from .supervised import accuracy, train_supervised
from .vicreg import train_vicreg, vicreg_views_loss
from .data_parallel import train_method
from .registry import Method, Option, TrainingData, get_method, registered
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
    "Method", "Option", "TrainingData", "get_method", "registered", "train_method",
]
