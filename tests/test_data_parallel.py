"""With one process, the data-parallel trainers ARE the course's trainers: the same batches, views
and losses. The gathered losses sum their gradients in another order, so the runs agree up to
float32 rounding, which Adam's normalised steps grow a little from step to step."""
import pytest
import torch

from contrastive_lab.data.shapes import make_captioned_scenes
from contrastive_lab.distributed import World
from contrastive_lab.methods import BYOL, MoCo, SimCLR, train_byol, train_clip, train_moco, train_simclr
from contrastive_lab.methods.clip import build_clip, clip_settings
from contrastive_lab.methods.data_parallel import (build_model, negatives_for_method, train_clip_data_parallel,
                                                   train_data_parallel)
from contrastive_lab.models import make_encoder
from contrastive_lab.text import Tokenizer
from conftest import TOY

ONE = World(rank=0, world_size=1, local_rank=0, device=torch.device("cpu"), backend=None)


def images(n=64):
    return torch.rand(n, 3, 16, 16, generator=torch.Generator().manual_seed(0))


@pytest.mark.parametrize("method", ["simclr", "moco", "byol"])
def test_one_process_is_the_course_trainer(method):
    single = {"simclr": lambda m, x: train_simclr(m, x, TOY, epochs=2, device="cpu", progress=False),
              "moco": lambda m, x: train_moco(m, x, TOY, epochs=2, device="cpu", progress=False),
              "byol": lambda m, x: train_byol(m, x, TOY, epochs=2, device="cpu", progress=False)}[method]
    torch.manual_seed(0)
    want = single(build_model(method, TOY, queue_size=64), images())
    torch.manual_seed(0)
    got = train_data_parallel(method, build_model(method, TOY, queue_size=64), images(), TOY, ONE, epochs=2,
                              progress=False)
    assert len(got.loss) == 8 and got.loss[0] == pytest.approx(want.loss[0], rel=1e-6)
    assert got.loss == pytest.approx(want.loss, rel=2e-3)


def test_one_process_clip_is_train_clip():
    scenes = make_captioned_scenes(64, "train", seed=0)
    scenes.images = scenes.images[:, :, ::2, ::2].contiguous()
    tok = Tokenizer.from_texts(c for p in scenes.captions for c in p)
    settings = clip_settings(TOY).replace(batch_size=16, epochs=2, embed_dim=8, text_width=8)
    torch.manual_seed(0)
    want = train_clip(build_clip(TOY, tok, settings), scenes, tok, settings, TOY, device="cpu", progress=False)
    torch.manual_seed(0)
    got = train_clip_data_parallel(build_clip(TOY, tok, settings), scenes, tok, settings, TOY, ONE, progress=False)
    assert len(got.loss) == 8 and got.loss[0] == pytest.approx(want.loss[0], rel=1e-6)
    assert got.loss == pytest.approx(want.loss, rel=2e-3)


def test_build_model_gives_the_course_models():
    assert isinstance(build_model("simclr", TOY), SimCLR)
    assert isinstance(build_model("moco", TOY, queue_size=32), MoCo)
    assert isinstance(build_model("byol", TOY), BYOL)
    with pytest.raises(ValueError, match="method must be one of"):
        build_model("simsiam", TOY)
    with pytest.raises(ValueError, match="CLIP needs the tokenizer"):
        build_model("clip", TOY)


def test_negatives_per_query_of_each_method():
    moco = MoCo(make_encoder(TOY), 8, queue_size=4096)
    assert negatives_for_method("simclr", None, 64, 8) == 2 * 64 * 8 - 2
    assert negatives_for_method("clip", None, 64, 8) == 64 * 8 - 1
    assert negatives_for_method("moco", moco, 64, 8) == 4096          # the queue, whatever the batch
    assert negatives_for_method("byol", None, 64, 8) == 0


def test_moco_queue_must_hold_a_global_batch():
    world = World(0, 4, 0, torch.device("cpu"), "gloo")               # checked before any collective
    with pytest.raises(ValueError, match=r"queue \(32 keys\) must hold at least one step's keys \(4 × 16\)"):
        train_data_parallel("moco", MoCo(make_encoder(TOY), 8, queue_size=32), images(), TOY, world)


@pytest.mark.parametrize("method", ["simclr", "moco", "byol"])
def test_data_parallel_steps_do_not_synchronise_with_the_host(method):
    """The gathered losses keep the training path's rule: 2 epochs × 4 steps, log_every 4,
    at most the loop's own two reads of the losses."""
    from contrastive_lab.device import count_host_syncs

    torch.manual_seed(0)
    model = build_model(method, TOY, queue_size=64)
    with count_host_syncs() as syncs:
        history = train_data_parallel(method, model, images(), TOY, ONE, epochs=2, progress=False)
    assert len(history.loss) == syncs.steps == 8 and syncs.step_total == 0, dict(syncs.in_steps)
    assert syncs.total <= 2, dict(syncs.by_op)
