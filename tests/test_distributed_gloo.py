"""Two real processes on gloo (CPU, 127.0.0.1): one step of each method with negatives gathered
across processes gives the loss and the gradients of one process on the concatenated batch.

Both processes are started once for the module (each start imports torch: a few seconds);
each runs every check and saves what it measured, and the tests compare with one process
computing the same step on the whole batch. BatchNorm is in eval mode in the equivalence
checks: in train mode each process normalises over its own batch (SyncBatchNorm, CUDA
only, is what makes it global), and the last check shows that difference.
"""
import os
import time

import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp

from contrastive_lab.augment import DIGITS_RECIPE, two_views
from contrastive_lab.data import make_cluttered_digits
from contrastive_lab.data.shapes import make_captioned_scenes
from contrastive_lab.distributed import cleanup, free_port, gather_with_grad, global_clip_loss, setup
from contrastive_lab.losses import clip_loss, nt_xent
from contrastive_lab.methods.clip import build_clip, clip_settings, tokenize_captions
from contrastive_lab.methods.data_parallel import prepare_data_parallel, views_loss
from contrastive_lab.methods.moco import MoCo, moco_loss
from contrastive_lab.methods.simclr import SimCLR
from contrastive_lab.models import SmallCNN
from contrastive_lab.profiles import QUICK
from contrastive_lab.text import Tokenizer

WORLD, N = 2, 4                      # 2 processes, 4 images each
TOY = QUICK.replace(cnn_widths=(4, 8, 8, 8), proj_dim=8, channels_last=False)
TIMEOUT_S = 120


def views():
    """Two augmented views of 8 cluttered digits (16 × 16), the same in every process."""
    images, _ = make_cluttered_digits(WORLD * N, "train", seed=0)
    return two_views(images[:, :, ::2, ::2].contiguous(), DIGITS_RECIPE, torch.Generator().manual_seed(0))


def with_batchnorm_statistics(model):
    """Set BatchNorm's running statistics to those of the views, so that eval mode normalises
    for real (with the initial 0 / 1 every embedding points almost the same way)."""
    norms = [m for m in model.modules() if isinstance(m, torch.nn.modules.batchnorm._BatchNorm)]
    for m in norms:
        m.momentum = None                          # a cumulative average: one batch sets the statistics
    with torch.no_grad():
        model.train()(torch.cat(views()))
    for m in norms:
        m.momentum = 0.1
    return model


def simclr_model():
    torch.manual_seed(0)
    return with_batchnorm_statistics(SimCLR(SmallCNN(TOY.cnn_widths), TOY.proj_dim))


def moco_model():
    torch.manual_seed(0)
    return with_batchnorm_statistics(MoCo(SmallCNN(TOY.cnn_widths), TOY.proj_dim, queue_size=16, momentum=0.9))


def clip_batch():
    scenes = make_captioned_scenes(WORLD * N, "train", seed=0)
    tok = Tokenizer.from_texts(c for p in scenes.captions for c in p)
    torch.manual_seed(0)
    model = build_clip(TOY, tok, clip_settings(TOY).replace(embed_dim=8, text_width=8))
    return model, scenes.images[:, :, ::2, ::2].contiguous(), tokenize_captions(tok, scenes.captions)[:, 0]


def grads(model):
    return {name: p.grad.detach().clone() for name, p in model.named_parameters() if p.grad is not None}


# ---------------------------------------------------------------- what each process runs
def worker(rank, port, out_dir):
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port), RANK=str(rank), WORLD_SIZE=str(WORLD),
                      LOCAL_RANK=str(rank))
    torch.set_num_threads(1)
    world = setup("cpu", timeout_s=TIMEOUT_S)
    mine = slice(rank * N, (rank + 1) * N)
    out = {}

    # the gather: forward concatenates in rank order; backward sums every rank's gradient
    x = torch.full((2, 3), float(rank + 1), requires_grad=True)
    weights = torch.arange(12.0).view(4, 3) * (rank + 1)           # each rank's loss weighs the rows differently
    gathered = gather_with_grad(x)
    (gathered * weights).sum().backward()
    out["gathered"], out["x_grad"] = gathered.detach(), x.grad.clone()
    from torch.distributed._functional_collectives import all_gather_single_autograd
    x2 = x.detach().clone().requires_grad_()
    (all_gather_single_autograd(x2, 0, dist.group.WORLD) * weights).sum().backward()
    out["x_grad_library"] = x2.grad.clone()
    copies = [torch.empty_like(x) for _ in range(WORLD)]            # the classic bug: a plain all_gather
    dist.all_gather(copies, x.detach())
    copies[rank] = x                                                # only this rank's own slot keeps its gradient
    x.grad = None
    (torch.cat(copies) * weights).sum().backward()
    out["x_grad_cut"] = x.grad.clone()

    v1, v2 = views()
    for mode in ("eval", "train"):                                  # SimCLR, BatchNorm in eval / train mode
        model = simclr_model()
        ddp = prepare_data_parallel("simclr", model, TOY, world)
        model.train(mode == "train")
        loss = views_loss("simclr", model, ddp, 0.2)(v1[mine], v2[mine])
        loss.backward()
        out[f"simclr_{mode}"] = (loss.detach(), grads(model))

    model = moco_model()                                            # MoCo: queue of every rank's keys
    ddp = prepare_data_parallel("moco", model, TOY, world)
    model.eval()
    loss = views_loss("moco", model, ddp, 0.2)(v1[mine], v2[mine])
    loss.backward()
    out["moco"] = (loss.detach(), grads(model.query_net), model.queue.queue.clone(), model.queue.ptr.clone())

    model, images, ids = clip_batch()                               # CLIP: every caption of every rank
    ddp = prepare_data_parallel("clip", model, TOY, world)
    model.eval()
    image_emb, text_emb, scale = ddp(images[mine], ids[mine])
    loss = global_clip_loss(image_emb, text_emb, scale)
    loss.backward()
    out["clip"] = (loss.detach(), grads(model))

    try:                                                            # PyTorch's SyncBatchNorm on a CPU tensor
        torch.nn.SyncBatchNorm(3)(torch.randn(4, 3))
        out["syncbn_cpu"] = "ran"
    except ValueError as exc:
        out["syncbn_cpu"] = str(exc)
    torch.save(out, os.path.join(out_dir, f"rank{rank}.pt"))
    cleanup()


@pytest.fixture(scope="module")
def ranks(tmp_path_factory):
    out_dir = str(tmp_path_factory.mktemp("gloo"))
    context = mp.spawn(worker, args=(free_port(), out_dir), nprocs=WORLD, join=False)
    deadline = time.monotonic() + TIMEOUT_S
    while not context.join(timeout=5):
        if time.monotonic() > deadline:
            for p in context.processes:
                p.kill()
            pytest.fail(f"the {WORLD} processes did not finish within {TIMEOUT_S} s")
    return [torch.load(os.path.join(out_dir, f"rank{r}.pt"), weights_only=True) for r in range(WORLD)]


def max_diff(a: dict, b: dict) -> float:
    assert a.keys() == b.keys()
    return max((a[k] - b[k]).abs().max().item() for k in a)


def same_gradients(got: dict, want: dict, tol: float = 1e-5) -> bool:
    """Within tol of one process's gradients, relative to their largest entry when that exceeds 1
    (float32 keeps about 7 digits: CLIP's logit-scale gradient is about 100)."""
    scale = max(1.0, max(g.abs().max().item() for g in want.values()))
    return max_diff(got, want) <= tol * scale


# ---------------------------------------------------------------- the gather
def test_gather_concatenates_every_rank_in_rank_order(ranks):
    want = torch.tensor([1.0, 1, 2, 2])[:, None].expand(4, 3)
    for r in ranks:
        assert torch.equal(r["gathered"], want)


def test_gather_sends_every_ranks_gradient_to_the_slice_it_came_from(ranks):
    """Rank r's loss is Σ gathered · (r + 1) · w, so each slice's gradient is (1 + 2) · w of its rows."""
    w = torch.arange(12.0).view(4, 3)
    for rank, r in enumerate(ranks):
        torch.testing.assert_close(r["x_grad"], 3 * w[2 * rank:2 * rank + 2])
        torch.testing.assert_close(r["x_grad_library"], r["x_grad"])    # the library's autograd gather agrees


def test_a_plain_all_gather_cuts_the_gradient_of_the_other_ranks(ranks):
    w = torch.arange(12.0).view(4, 3)
    for rank, r in enumerate(ranks):
        torch.testing.assert_close(r["x_grad_cut"], (rank + 1) * w[2 * rank:2 * rank + 2])   # its own loss only


# ---------------------------------------------------------------- one step = one big batch
def test_simclr_step_with_gathered_negatives_equals_one_process_on_the_whole_batch(ranks):
    model = simclr_model().eval()
    v1, v2 = views()
    z1, z2 = model(torch.cat([v1, v2])).chunk(2)
    loss = nt_xent(z1, z2, 0.2)
    loss.backward()
    mean_loss = torch.stack([r["simclr_eval"][0] for r in ranks]).mean()
    assert abs(mean_loss.item() - loss.item()) <= 1e-5
    for r in ranks:                                        # DDP averaged: every rank holds the same gradients
        assert same_gradients(r["simclr_eval"][1], grads(model))


def test_batchnorm_in_train_mode_normalises_per_process(ranks):
    model = simclr_model().train()
    v1, v2 = views()
    z1, z2 = model(torch.cat([v1, v2])).chunk(2)
    nt_xent(z1, z2, 0.2).backward()
    assert max_diff(ranks[0]["simclr_train"][1], grads(model)) > 1e-4     # not one big batch any more


def test_moco_step_keeps_every_queue_equal_to_the_single_process_queue(ranks):
    model = moco_model().eval()
    v1, v2 = views()
    loss = moco_loss(model, 0.2)(v1, v2)
    loss.backward()
    assert abs(torch.stack([r["moco"][0] for r in ranks]).mean().item() - loss.item()) <= 1e-5
    for r in ranks:
        assert same_gradients(r["moco"][1], grads(model.query_net))
        torch.testing.assert_close(r["moco"][2], model.queue.queue)      # all 8 keys, in rank order
        assert r["moco"][3].item() == model.queue.ptr.item() == 8


def test_clip_step_with_gathered_pairs_equals_one_process_on_the_whole_batch(ranks):
    model, images, ids = clip_batch()
    model.eval()
    loss = clip_loss(*model(images, ids))
    loss.backward()
    assert abs(torch.stack([r["clip"][0] for r in ranks]).mean().item() - loss.item()) <= 1e-5
    for r in ranks:
        assert same_gradients(r["clip"][1], grads(model))


def test_pytorch_syncbatchnorm_raises_on_cpu_inside_a_process_group(ranks):
    assert "expected input tensor to be on GPU" in ranks[0]["syncbn_cpu"]
