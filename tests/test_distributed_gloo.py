"""Two real processes on gloo (CPU, 127.0.0.1): one step of each method with negatives gathered
across processes gives the loss and the gradients of one process on the concatenated batch.

Both processes are started once for the module (each start imports torch: a few seconds);
each runs every check and saves what it measured, and the tests compare with one process
computing the same step on the whole batch. BatchNorm is in eval mode in the equivalence
checks: in train mode each process normalises over its own batch, unless its layers are
`GlobalBatchNorm` (`--sync-bn`): then a train-mode SimCLR step equals one process on the
whole batch too. MoCo shuffles its keys' images across the processes (shuffle-BN), so the
key encoder's BatchNorm never normalizes a key with the companions of its query.
"""
import os

import pytest
import torch
import torch.distributed as dist

from contrastive_lab.augment import DIGITS_RECIPE, two_views
from contrastive_lab.data import make_cluttered_digits
from contrastive_lab.data.shapes import make_captioned_scenes
from contrastive_lab.device import count_host_syncs, training_step
from contrastive_lab.distributed import (cleanup, free_port, gather_with_grad, global_batchnorm, global_clip_loss,
                                         run_processes, setup, shared_generator)
from contrastive_lab.losses import clip_loss, nt_xent
from contrastive_lab.methods.clip import build_clip, clip_settings, tokenize_captions
from contrastive_lab.methods.data_parallel import prepare_data_parallel, views_loss
from contrastive_lab.methods.moco import MoCo, moco_loss
from contrastive_lab.methods.simclr import SimCLR
from contrastive_lab.models import SmallCNN
from contrastive_lab.profiles import QUICK
from contrastive_lab.text import Tokenizer
from contrastive_lab.validate import value_checks

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


def moco_model(symmetric=False):
    torch.manual_seed(0)
    return with_batchnorm_statistics(MoCo(SmallCNN(TOY.cnn_widths), TOY.proj_dim, queue_size=16, momentum=0.9,
                                          symmetric=symmetric))


def numbered_images():
    """WORLD · 2N images, image i filled with (i + 1) / 100: its number can be read back anywhere."""
    return ((torch.arange(WORLD * 2 * N) + 1.0) / 100).view(-1, 1, 1, 1).expand(-1, 3, 16, 16).contiguous()


def numbers(x):
    return sorted((x.float().mean((1, 2, 3)) * 100).round().long().sub(1).tolist())


def bn_loss_weights():
    """Weights of a loss on BatchNorm's output, one per value of the global batch."""
    return torch.arange(WORLD * N * 3 * 16).view(WORLD * N, 3, 4, 4).float().cos()


def batchnorm_input():
    return torch.randn(WORLD * N, 3, 4, 4, generator=torch.Generator().manual_seed(3)) * 2 + 1


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

    model = simclr_model()                                          # SimCLR, train mode, GlobalBatchNorm
    ddp = prepare_data_parallel("simclr", model, TOY, world, sync_bn=True)
    model.train()
    with value_checks(False), count_host_syncs(as_if_gpu=True) as syncs, training_step():   # as inside fit
        loss = views_loss("simclr", model, ddp, 0.2)(v1[mine], v2[mine])
        loss.backward()
    norms = [m for m in model.modules() if isinstance(m, torch.nn.modules.batchnorm._BatchNorm)]
    out["simclr_global_bn"] = (loss.detach(), grads(model), dict(syncs.in_steps), [type(m).__name__ for m in norms],
                               {k: v.clone() for k, v in model.state_dict().items() if "running" in k})

    x = batchnorm_input()[mine].clone().requires_grad_()            # GlobalBatchNorm on its own
    bn = global_batchnorm(torch.nn.BatchNorm2d(3))
    with torch.no_grad():
        bn.weight.copy_(torch.tensor([1.5, 0.5, 2.0]))
        bn.bias.copy_(torch.tensor([0.1, -0.2, 0.3]))
    y = bn(x)
    (y * bn_loss_weights()[mine]).sum().backward()
    out["global_bn"] = (y.detach(), x.grad.clone(), bn.weight.grad.clone(), bn.bias.grad.clone(),
                        bn.running_mean.clone(), bn.running_var.clone())

    for name, symmetric in (("moco", False), ("moco_symmetric", True)):    # MoCo: queue of every rank's keys
        model = moco_model(symmetric)
        ddp = prepare_data_parallel("moco", model, TOY, world)
        model.eval()
        loss = views_loss("moco", model, ddp, 0.2, shared_generator(5))(v1[mine], v2[mine])
        loss.backward()
        out[name] = (loss.detach(), grads(model.query_net), model.queue.queue.clone(), model.queue.ptr.clone())

    torch.manual_seed(0)                                            # shuffle-BN: what each BatchNorm sees
    model = MoCo(SmallCNN(TOY.cnn_widths), TOY.proj_dim, queue_size=64, symmetric=True).train()
    ddp = prepare_data_parallel("moco", model, TOY, world)
    images = numbered_images()[rank * 2 * N:(rank + 1) * 2 * N]     # this rank's 8 numbered images
    seen = {"query": [], "key": []}
    model.query_net.register_forward_pre_hook(lambda m, a: seen["query"].append(numbers(a[0])))
    model.key_net.register_forward_pre_hook(lambda m, a: seen["key"].append(numbers(a[0])))
    loss_fn = views_loss("moco", model, ddp, 0.2, shared_generator(7))
    for _ in range(5):
        loss_fn(images, images).backward()
    out["shuffle_bn"] = (seen, model.queue.ptr.clone())

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
    run_processes(worker, WORLD, (free_port(), out_dir), TIMEOUT_S)
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
def one_process_simclr_step(train: bool):
    """The reference: one process, the whole batch, BatchNorm in train or eval mode."""
    model = simclr_model().train(train)
    v1, v2 = views()
    z1, z2 = model(torch.cat([v1, v2])).chunk(2)
    loss = nt_xent(z1, z2, 0.2)
    loss.backward()
    return model, loss


def test_simclr_step_with_gathered_negatives_equals_one_process_on_the_whole_batch(ranks):
    model, loss = one_process_simclr_step(train=False)
    mean_loss = torch.stack([r["simclr_eval"][0] for r in ranks]).mean()
    assert abs(mean_loss.item() - loss.item()) <= 1e-5
    for r in ranks:                                        # DDP averaged: every rank holds the same gradients
        assert same_gradients(r["simclr_eval"][1], grads(model))


def test_batchnorm_in_train_mode_normalises_per_process(ranks):
    model, _ = one_process_simclr_step(train=True)
    assert max_diff(ranks[0]["simclr_train"][1], grads(model)) > 1e-4     # not one big batch any more


@pytest.mark.parametrize("name, symmetric", [("moco", False), ("moco_symmetric", True)])
def test_moco_step_keeps_every_queue_equal_to_the_single_process_queue(ranks, name, symmetric):
    """With the keys shuffled across the processes and put back in order (eval mode: BatchNorm's
    statistics fixed), each process's keys are the single process's: the same loss, gradients
    and queue. symmetric: both views are queries, both batches of keys queued."""
    model = moco_model(symmetric).eval()
    v1, v2 = views()
    loss = moco_loss(model, 0.2)(v1, v2)
    loss.backward()
    assert abs(torch.stack([r[name][0] for r in ranks]).mean().item() - loss.item()) <= 1e-5
    keys = 16 if symmetric else 8
    for r in ranks:
        assert same_gradients(r[name][1], grads(model.query_net))
        if not symmetric:                                               # in rank order: the same queue
            torch.testing.assert_close(r[name][2], model.queue.queue)
        else:                                                           # [k1; k2] per rank, in rank order
            per_rank = model.queue.queue[:keys].view(2, WORLD, N, -1).transpose(0, 1).reshape(keys, -1)
            torch.testing.assert_close(r[name][2][:keys], per_rank)
        assert r[name][3].item() == model.queue.ptr.item() % 16 == keys % 16


def test_the_key_encoders_batchnorm_never_sees_a_batch_aligned_with_its_queries(ranks):
    """5 symmetric steps on 2 processes × 8 numbered images: every batch the key encoder
    normalized mixes both processes' images and is never the batch of that process's queries."""
    for rank, r in enumerate(ranks):
        seen, ptr = r["shuffle_bn"]
        own = list(range(rank * 2 * N, (rank + 1) * 2 * N))
        assert seen["query"] == [own] * 10                              # each view's queries: own images
        assert len(seen["key"]) == 10                                   # 2 batches of keys × 5 steps
        for keys in seen["key"]:
            assert len(keys) == 2 * N and keys != own                   # never the queries' batch
            assert set(keys) - set(own)                                 # other processes' images in it
        assert ptr.item() == (5 * 2 * WORLD * 2 * N) % 64               # every process's keys queued
    all_keys = [k for r in ranks for k in r["shuffle_bn"][0]["key"]]
    for step in range(0, 10):                                           # together: every image once per batch
        assert sorted(ranks[0]["shuffle_bn"][0]["key"][step] + ranks[1]["shuffle_bn"][0]["key"][step]) == \
            list(range(WORLD * 2 * N))
    assert len({tuple(k) for k in all_keys}) > 2                        # a new draw every time


def test_global_batchnorm_equals_batchnorm_over_the_concatenated_batch(ranks):
    x = batchnorm_input().requires_grad_()
    bn = torch.nn.BatchNorm2d(3)
    with torch.no_grad():
        bn.weight.copy_(torch.tensor([1.5, 0.5, 2.0]))
        bn.bias.copy_(torch.tensor([0.1, -0.2, 0.3]))
    y = bn(x)
    (y * bn_loss_weights()).sum().backward()
    got = [r["global_bn"] for r in ranks]
    torch.testing.assert_close(torch.cat([g[0] for g in got]), y.detach(), atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(torch.cat([g[1] for g in got]), x.grad, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(got[0][2] + got[1][2], bn.weight.grad, atol=1e-4, rtol=1e-5)  # DDP sums, then averages
    torch.testing.assert_close(got[0][3] + got[1][3], bn.bias.grad, atol=1e-4, rtol=1e-5)
    for g in got:
        torch.testing.assert_close(g[4], bn.running_mean)
        torch.testing.assert_close(g[5], bn.running_var)


def test_a_train_mode_simclr_step_with_global_batchnorm_equals_one_process_on_the_whole_batch(ranks):
    model, loss = one_process_simclr_step(train=True)
    running = {k: v for k, v in model.state_dict().items() if "running" in k}
    assert abs(torch.stack([r["simclr_global_bn"][0] for r in ranks]).mean().item() - loss.item()) <= 1e-5
    for r in ranks:
        got_loss, got_grads, step_syncs, kinds, got_running = r["simclr_global_bn"]
        assert set(kinds) == {"GlobalBatchNorm"} and step_syncs == {}   # no host sync, no copy in the step
        assert same_gradients(got_grads, grads(model), tol=1e-4)
        for k in running:
            torch.testing.assert_close(got_running[k], running[k], atol=1e-5, rtol=1e-4)


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
