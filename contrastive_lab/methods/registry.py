"""The method registry: everything the trainers and the CLI need to know about a method, in one entry.

A method file that can be trained from the command line and on several
processes ends with one entry, for example (methods/simclr.py):

    METHOD = Method(
        name="simclr", title="SimCLR",
        options=(Option("temperature", DEFAULT_TEMPERATURE, "τ of NT-Xent"),),
        build=lambda profile, options, data: SimCLR(make_encoder(profile, in_channels=data.channels),
                                                    profile.proj_dim),
        loss=lambda run: simclr_loss(run.part, run.options.temperature, gathered=True),
        negatives_per_query=lambda model, batch, world: 2 * batch * world - 2,
    )

`methods.data_parallel.train_method` (one process or many, under torchrun) and
`cli` read only these entries: neither names a method. What an entry says:

    name, title        the CLI's METHOD and the name messages use
    options            the method's own settings (each a CLI flag, e.g. --temperature)
    data               "images" (views of each image, made by `views.train_on_views`) or
                       "captions" (image–caption pairs, `clip.train_on_captions`)
    views              how many views of which sizes (`augment.Views`: multi-crop)
    build              (profile, options, data) → the model
    trainable_part     model → the module whose forward runs every trainable parameter:
                       what DDP wraps (default: the model)
    loss               Run → loss_fn(*inputs) → loss: the step's loss on the inputs
                       (the views, or images and caption ids), computed with `run.part`
                       and its negatives gathered from every process
                       (`distributed.global_*`, which on one process are the plain losses)
    after_step         model → a function called after every optimizer step (an EMA, a clamp)
    shared_generator   a name: the loss draws from a generator in the same state on every
                       process (MoCo's shuffle across processes), checkpointed under it
    negatives_per_query (model, batch per process, processes) → negatives one query is scored against
    check              (model, options, global batch) → raises ValueError for settings that cannot work
    recipe             profile → `train.Recipe` (batch, epochs, lr, optimizer, schedule)
    n_train            profile → how many images (or scenes) the CLI trains on by default
    sizes              profile → the model's sizes beyond the profile's, for the experiment record
    served             model → what the CLI exports for serving: the model (its `encoder` is
                       kept, the head dropped) or a `Projected` module (CLIP's image side)

Every method file of the package with a `METHOD` is registered (`registered()`);
a method of your own is one file with a `METHOD`, found by its import path:
`get_method("my_pkg.my_method")` or `"my_pkg.my_method:MY_METHOD"`, and on the
command line `python -m contrastive_lab.cli train my_pkg.my_method ...`.
"""
from __future__ import annotations

import importlib
import pkgutil
from pathlib import Path
from collections.abc import Callable
from dataclasses import dataclass, field
from types import SimpleNamespace
from typing import Any

import torch
import torch.nn as nn

from ..augment import Views
from ..train import Recipe

DATA_KINDS = ("images", "captions")
PACKAGE = __name__.rpartition(".")[0]          # contrastive_lab.methods


@dataclass(frozen=True)
class Option:
    """One setting of a method: a keyword of its loss or model and a CLI flag (--queue-size
    for "queue_size"). A bool option is a switch (--symmetric); others take a value of the
    default's type."""

    name: str
    default: Any
    help: str

    @property
    def flag(self) -> str:
        return "--" + self.name.replace("_", "-")


@dataclass(frozen=True)
class Run:
    """What a method's `loss` is built from, for one training run.

    model: the whole model (its EMA twins, queues and buffers included).
    part: its trainable part (`Method.trainable_part`), wrapped in DDP on several
        processes: call THIS for the forward that takes gradient, so that DDP sees it.
    options: the method's options by name (`options.temperature`).
    shared: a generator in the same state on every process, on the device (when the
        method names `shared_generator`), else None.
    """

    model: nn.Module
    part: nn.Module
    options: SimpleNamespace
    shared: torch.Generator | None = None


@dataclass
class TrainingData:
    """What a run trains on, as `Method.build` and the trainers take it.

    images: (N, C, H, W), uint8 or float in [0, 1].
    captions: N lists of phrasings, one list per image ("captions" methods), else None.
    tokenizer: turns captions into ids (built from the training captions), else None.
    """

    images: torch.Tensor
    captions: list[list[str]] | None = None
    tokenizer: Any = None

    @property
    def channels(self) -> int:
        return self.images.shape[1]

    def __len__(self) -> int:
        return len(self.images)


def _identity(model: nn.Module) -> nn.Module:
    return model


def _no_after_step(model: nn.Module):
    return None


def _no_negatives(model: nn.Module, batch: int, world: int) -> int:
    return 0


def _no_check(model: nn.Module, options: SimpleNamespace, global_batch: int) -> None:
    return None


def _no_sizes(profile) -> dict:
    return {}


def _profile_n_train(profile) -> int:
    return profile.n_train


class Projected(nn.Sequential):
    """An encoder followed by a linear projection into a shared space (CLIP's image side):
    what a method exports when its embeddings live after a projection."""

    def __init__(self, encoder: nn.Module, projection: nn.Linear):
        super().__init__(encoder, projection)


@dataclass(frozen=True, repr=False)
class Method:
    """A training method as the trainers and the CLI see it (see the module docstring)."""

    name: str
    title: str
    build: Callable[..., nn.Module]
    loss: Callable[[Run], Callable]
    options: tuple[Option, ...] = ()
    data: str = "images"
    views: Views = field(default_factory=Views)
    trainable_part: Callable[[nn.Module], nn.Module] = _identity
    after_step: Callable[[nn.Module], Callable[[], None] | None] = _no_after_step
    shared_generator: str | None = None
    negatives_per_query: Callable[[nn.Module, int, int], int] = _no_negatives
    check: Callable[[nn.Module, SimpleNamespace, int], None] = _no_check
    recipe: Callable[[Any], Recipe] | None = None
    n_train: Callable[[Any], int] = _profile_n_train
    sizes: Callable[[Any], dict] = _no_sizes
    served: Callable[[nn.Module], nn.Module] = _identity

    def __post_init__(self):
        if not self.name.isidentifier():
            raise ValueError(f"a method's name is a word (letters, digits, _), got {self.name!r}")
        if self.data not in DATA_KINDS:
            raise ValueError(f"{self.name}: data must be one of {DATA_KINDS}, got {self.data!r}")
        names = [o.name for o in self.options]
        if len(set(names)) != len(names):
            raise ValueError(f"{self.name}: an option is named twice in {names}")

    def __repr__(self) -> str:
        return (f"Method({self.name!r}, data={self.data!r}, views={self.views}, "
                f"options={ {o.name: o.default for o in self.options} })")

    def recipe_for(self, profile) -> Recipe:
        """The run's recipe: the method's own, else the profile's (with the method's epoch count)."""
        return self.recipe(profile) if self.recipe is not None else Recipe.of(profile, self.name)

    def options_of(self, **given) -> SimpleNamespace:
        """The method's options: the defaults, with the `given` ones that are not None.
        A name the method does not have raises ValueError."""
        defaults = {o.name: o.default for o in self.options}
        unknown = sorted(set(given) - set(defaults))
        if unknown:
            raise ValueError(f"{self.name} has no option(s) {unknown}; its options are {sorted(defaults)}")
        return SimpleNamespace(**{**defaults, **{k: v for k, v in given.items() if v is not None}})


# ---------------------------------------------------------------- finding methods
def registered() -> dict[str, Method]:
    """name → Method of every module of `contrastive_lab.methods` that defines `METHOD`.

    The modules are imported by name here, not by an import statement, so that a model's
    cache key (`code_version`, the import closure of its training code) does not take in
    every method through this file."""
    found = {}
    for info in sorted(pkgutil.iter_modules([str(Path(__file__).parent)]), key=lambda i: i.name):
        module = importlib.import_module(f"{PACKAGE}.{info.name}")
        method = getattr(module, "METHOD", None)
        if isinstance(method, Method):
            found[method.name] = method
    return found


def get_method(spec: str | Method) -> Method:
    """A method by name ("simclr"), or by the import path of a module of your own that defines
    `METHOD` ("my_pkg.my_method"), or of any Method in it ("my_pkg.my_method:TOY")."""
    if isinstance(spec, Method):
        return spec
    known = registered()
    if spec in known:
        return known[spec]
    module_name, _, attribute = spec.partition(":")
    if "." not in module_name and not attribute:
        try:                                    # a bare word: a module of that name, if there is one
            importlib.import_module(module_name)
        except ImportError:
            raise ValueError(f"unknown method {spec!r}; the package's are {sorted(known)}, or give the import "
                             "path of a module that defines METHOD (my_pkg.my_method, or my_pkg.my_method:NAME)") from None
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        raise ValueError(f"method {spec!r}: cannot import {module_name!r} ({exc}); is its folder on PYTHONPATH?") from None
    method = getattr(module, attribute or "METHOD", None)
    if not isinstance(method, Method):
        raise ValueError(f"method {spec!r}: {module_name} has no Method named {attribute or 'METHOD'!r}")
    return method
