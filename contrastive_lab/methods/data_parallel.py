"""Any registered method on one process or several (torchrun): what changes, and nothing else.

Each process builds the same model (same seed), takes its shard of every global
batch and trains with the course's own loops (`views.train_on_views` for
images, `clip.train_on_captions` for image–caption pairs, both on `train.fit`).
What a method needs here is in its registry entry (`registry.Method`), so this
file names no method:

- its trainable part (`Method.trainable_part`: the module whose forward runs
  every trainable parameter) is wrapped in DDP, so the gradients are averaged
  over the processes during backward;
- its loss (`Method.loss`) is built on that DDP module and takes its negatives
  from every process (`distributed.global_*`, targets offset by rank): SimCLR's
  2N views see all 2NW, CLIP's N pairs all NW; MoCo queues EVERY process's keys,
  so all the queues stay equal, and shuffles the keys' images across the
  processes (shuffle-BN) with a generator in the same state on every process
  (`Method.shared_generator`, checkpointed); BYOL has no negatives;
- its after-step hook (an EMA, a clamp) runs on every process after every step.

With `sync_bn`, every BatchNorm of the trainable part normalizes over the global
batch (`distributed.global_batchnorm`: one all-reduce per layer, no host sync);
MoCo's key network keeps per-process BatchNorm: shuffle-BN is its remedy.

With one process (world size 1) this is the single-process trainer of each
method, step for step (tests/test_data_parallel.py).

    world = distributed.setup()
    method = get_method("simclr")
    data = TrainingData(train_x)
    torch.manual_seed(0)
    model = method.build(profile, method.options_of(temperature=0.2), data)
    history = train_method(method, model, data, profile, world, checkpoint="run.pt")
"""
from __future__ import annotations

import torch
import torch.nn as nn

from ..device import get_world_size
from ..distributed import World, global_batchnorm, shared_generator, wrap_ddp
from ..models import prepare_model
from ..train import History
from .clip import train_on_captions
from .registry import Method, Run, TrainingData, get_method
from .views import train_on_views

ONE_PROCESS = World(rank=0, world_size=1, local_rank=0, device=torch.device("cpu"), backend=None)


def prepare_data_parallel(method: Method | str, model: nn.Module, profile, world: World, *,
                          sync_bn: bool = False) -> nn.Module:
    """Put `model` on the process's device (channels_last as the profile says), optionally
    with BatchNorm over the global batch (`global_batchnorm`), and return its trainable
    part wrapped in DDP (itself on one process)."""
    part = get_method(method).trainable_part(model)
    if sync_bn:
        global_batchnorm(part)                        # in place: BatchNorm children are replaced
    prepare_model(model, world.device, profile.channels_last)
    return wrap_ddp(part, world)


def method_loss(method: Method | str, model: nn.Module, part: nn.Module, *, shared: torch.Generator | None = None,
                **options):
    """The loss_fn(*inputs) of `method` for `model`, its forward through `part` (the DDP-wrapped
    trainable part from `prepare_data_parallel`), with negatives from every process.
    options: the method's options (the defaults for those not given). shared: the generator
    in the same state on every process, for a method that names `shared_generator`."""
    method = get_method(method)
    if method.shared_generator is not None and shared is None and get_world_size() > 1:
        raise ValueError(f"{method.title} on several processes needs `shared`, a generator in the same state on "
                         "every process (distributed.shared_generator)")
    return method.loss(Run(model, part, method.options_of(**options), shared))


def train_method(method: Method | str, model: nn.Module, data: TrainingData | torch.Tensor, profile,
                 world: World = ONE_PROCESS, *, options: dict | None = None, batch_size: int | None = None,
                 epochs: int | None = None, lr: float | None = None, checkpoint=None, seed: int = 0,
                 sync_bn: bool = False, progress: bool = True) -> History:
    """Train `model` (built by `method.build`) with `method` on this process's shard of `data`
    (every process passes all of it: a TrainingData, or images (N, C, H, W)).

    options: the method's options (defaults for those not given; they must be the ones the
    model was built with). batch_size is per process; batch_size, epochs and lr default to
    the method's recipe (`Method.recipe_for(profile)`). A method's `check` runs first (e.g.
    MoCo's queue must hold one step's keys). checkpoint: a file path, saved every epoch and
    resumed from (with any number of processes). Returns this process's History (rank 0's
    progress is shown).
    """
    method = get_method(method)
    data = data if isinstance(data, TrainingData) else TrainingData(data)
    recipe = method.recipe_for(profile).given(batch_size=batch_size, epochs=epochs, lr=lr)
    method.check(model, recipe.batch_size, world.world_size)
    part = prepare_data_parallel(method, model, profile, world, sync_bn=sync_bn)
    shared = shared_generator(seed + 2, world.device) if method.shared_generator is not None else None
    loss_fn = method_loss(method, model, part, shared=shared, **(options or {}))
    common = dict(recipe=recipe, device=world.device, after_step=method.after_step(model), checkpoint=checkpoint,
                  seed=seed, progress=progress, desc=f"{method.name} ×{world.world_size}", rank=world.rank,
                  world_size=world.world_size,
                  generators={method.shared_generator: shared} if shared is not None else None)
    if method.data == "captions":
        return train_on_captions(loss_fn, model, data, data.tokenizer, profile, **common)
    return train_on_views(loss_fn, model, data.images, profile, views=method.views, **common)
