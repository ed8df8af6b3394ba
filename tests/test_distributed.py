"""contrastive_lab.distributed in one process: the world read from torchrun's environment,
sharded batches, and the losses against gathered keys, with W processes simulated by slicing.
(Two real processes on gloo: tests/test_distributed_gloo.py.)"""
import math

import pytest
import torch
import torch.nn as nn

from contrastive_lab.data import minibatches
from contrastive_lab.distributed import (WorldError, clip_loss_gathered, gather, gather_with_grad, global_clip_loss,
                                         global_info_nce, global_nt_xent, global_supcon_loss, info_nce_gathered,
                                         negatives_per_query, nt_xent_gathered, per_process_batch, rank_device,
                                         rank_seed, read_env, setup, shard_batches, supcon_loss_gathered,
                                         sync_batchnorm)
from contrastive_lab.losses import clip_loss, info_nce, nt_xent, supcon_loss

TORCHRUN = {"RANK": "1", "WORLD_SIZE": "2", "LOCAL_RANK": "1", "MASTER_ADDR": "127.0.0.1", "MASTER_PORT": "29500"}


# ---------------------------------------------------------------- the world from the environment
def test_no_torchrun_variables_mean_one_process():
    assert read_env({}) == (0, 1, 0)
    world = setup("cpu", env={})
    assert (world.rank, world.world_size, world.backend, world.is_main) == (0, 1, None, True)


def test_torchrun_variables_are_read():
    assert read_env(TORCHRUN) == (1, 2, 1)


@pytest.mark.parametrize("drop, message", [
    ("RANK", "WORLD_SIZE is set but RANK is not"),
    ("WORLD_SIZE", "RANK is set but WORLD_SIZE is not"),
    ("LOCAL_RANK", "LOCAL_RANK is not set"),
    ("MASTER_ADDR", "MASTER_ADDR not set: the processes cannot find each other"),
    ("MASTER_PORT", "MASTER_PORT not set"),
])
def test_a_half_set_world_names_what_is_missing(drop, message):
    env = {k: v for k, v in TORCHRUN.items() if k != drop}
    with pytest.raises(WorldError, match=message):
        read_env(env)


@pytest.mark.parametrize("change, message", [
    ({"RANK": "2"}, r"RANK must be in 0 … WORLD_SIZE − 1 = 1, got 2"),
    ({"RANK": "-1"}, "RANK must be in"),
    ({"WORLD_SIZE": "two"}, "WORLD_SIZE must be an integer, got 'two'"),
    ({"WORLD_SIZE": "0", "RANK": "0"}, "WORLD_SIZE must be at least 1"),
    ({"LOCAL_RANK": "3"}, "LOCAL_RANK must be in 0 … RANK = 1"),
])
def test_inconsistent_values_are_refused(change, message):
    with pytest.raises(WorldError, match=message):
        read_env({**TORCHRUN, **change})


def test_torchrun_with_one_process_needs_no_rendezvous():
    assert read_env({"RANK": "0", "WORLD_SIZE": "1"}) == (0, 1, 0)


def test_the_device_of_a_cpu_process_is_the_cpu(monkeypatch):
    monkeypatch.setenv("CLAB_DEVICE", "cpu")
    assert rank_device(1) == torch.device("cpu")


def test_sync_batchnorm_is_refused_on_cpu():
    """PyTorch's own SyncBatchNorm raises on CPU inside a process group (test_distributed_gloo.py)."""
    with pytest.raises(WorldError, match="SyncBatchNorm runs on CUDA GPUs only"):
        sync_batchnorm(nn.Sequential(nn.Linear(3, 3), nn.BatchNorm1d(3)), "cpu")


# ---------------------------------------------------------------- batches
def test_global_batch_must_split_over_the_processes():
    assert per_process_batch(512, 8) == 64
    with pytest.raises(WorldError, match="a global batch of 100 does not split over 8 processes"):
        per_process_batch(100, 8)


def test_shards_of_one_epoch_are_disjoint_and_cover_every_full_global_batch():
    n, batch, world = 50, 4, 3                         # global batch 12: 4 of them, 2 images dropped
    shards = [list(shard_batches(n, batch, torch.Generator().manual_seed(0), rank, world)) for rank in range(world)]
    assert [len(s) for s in shards] == [4, 4, 4]
    seen = torch.cat([b for s in shards for b in s])
    assert len(seen) == 48 and seen.unique().numel() == 48          # no index twice
    order = torch.randperm(n, generator=torch.Generator().manual_seed(0))
    assert torch.equal(shards[1][0], order[4:8])                    # rank 1: second slice of the first global batch


def test_one_process_shards_are_the_course_minibatches():
    a = list(shard_batches(30, 8, torch.Generator().manual_seed(3)))
    b = list(minibatches(30, 8, torch.Generator().manual_seed(3)))
    assert all(torch.equal(x, y) for x, y in zip(a, b)) and len(a) == len(b) == 3


def test_a_global_batch_larger_than_the_data_is_named():
    with pytest.raises(WorldError, match=r"global batch \(4 processes × 16\) is larger than the dataset \(60 images\)"):
        next(shard_batches(60, 16, None, 0, 4))


def test_every_rank_and_epoch_gets_its_own_augmentation_seed():
    seeds = {rank_seed(1, r, e) for r in range(8) for e in range(100)}
    assert len(seeds) == 800


# ---------------------------------------------------------------- losses against gathered keys
def batch(w=3, n=4, d=6, seed=0, aligned=False):
    g = torch.Generator().manual_seed(seed)
    z1 = torch.randn(w * n, d, generator=g)
    z2 = z1 + 0.1 * torch.randn(w * n, d, generator=g) if aligned else torch.randn(w * n, d, generator=g)
    return z1, z2


def rows(x, rank, n=4):
    return x[rank * n:(rank + 1) * n]


def test_nt_xent_mean_over_simulated_ranks_is_the_big_batch_loss():
    z1, z2 = batch()
    per_rank = [nt_xent_gathered(rows(z1, r), rows(z2, r), z1, z2, r, 0.3) for r in range(3)]
    assert torch.stack(per_rank).mean().item() == pytest.approx(nt_xent(z1, z2, 0.3).item(), rel=1e-6)


def test_without_the_rank_offset_a_process_scores_the_wrong_keys():
    """Rank 2's rows with rank 0's targets: its positives are looked for in rank 0's rows."""
    z1, z2 = batch(d=32, aligned=True)               # twins close together: the right loss is small
    right = nt_xent_gathered(rows(z1, 2), rows(z2, 2), z1, z2, rank=2, temperature=0.2)
    wrong = nt_xent_gathered(rows(z1, 2), rows(z2, 2), z1, z2, rank=0, temperature=0.2)
    assert right.item() < 0.5 and wrong.item() > math.log(2 * 12 - 1)      # worse than a uniform guess


def test_info_nce_clip_and_supcon_against_gathered_keys_match_the_big_batch():
    z1, z2 = batch(seed=1)
    labels = torch.tensor([0, 1, 2, 3, 0, 5, 6, 7, 8, 9, 10, 1])     # positives across ranks; some anchors have none
    scale = torch.tensor(1 / 0.07)
    mean = lambda f: torch.stack([f(r) for r in range(3)]).mean().item()        # noqa: E731
    assert mean(lambda r: info_nce_gathered(rows(z1, r), rows(z2, r), z2, r, 0.3)) == \
        pytest.approx(info_nce(z1, z2, temperature=0.3).item(), rel=1e-6)
    assert mean(lambda r: clip_loss_gathered(rows(z1, r), rows(z2, r), z1, z2, r, scale)) == \
        pytest.approx(clip_loss(z1, z2, scale).item(), rel=1e-6)
    assert mean(lambda r: supcon_loss_gathered(rows(z1, r), rows(labels, r), z1, labels, r, 0.3)) == \
        pytest.approx(supcon_loss(z1, labels, 0.3).item(), rel=1e-6)


def test_gradients_through_gathered_losses_equal_the_big_batch_gradients():
    z1, z2 = batch(seed=2)
    a1, a2 = z1.clone().requires_grad_(), z2.clone().requires_grad_()
    torch.stack([nt_xent_gathered(rows(a1, r), rows(a2, r), a1, a2, r) for r in range(3)]).mean().backward()
    b1 = z1.clone().requires_grad_()
    nt_xent(b1, z2).backward()
    torch.testing.assert_close(a1.grad, b1.grad, rtol=1e-5, atol=1e-7)


def test_one_process_global_losses_are_the_plain_losses():
    z1, z2 = batch(w=1, n=6, seed=3)
    labels = torch.tensor([0, 1, 0, 1, 2, 2])
    assert gather_with_grad(z1) is z1 and gather(labels) is labels
    assert global_nt_xent(z1, z2).item() == pytest.approx(nt_xent(z1, z2).item(), rel=1e-6)
    assert global_info_nce(z1, z2).item() == pytest.approx(info_nce(z1, z2).item(), rel=1e-6)
    assert global_clip_loss(z1, z2, 10.0).item() == pytest.approx(clip_loss(z1, z2, 10.0).item(), rel=1e-6)
    assert global_supcon_loss(z1, labels).item() == pytest.approx(supcon_loss(z1, labels).item(), rel=1e-6)


def test_gathered_losses_at_random_init_are_ln_of_the_candidates():
    """Orthogonal views (no similarity at all): each view's softmax is uniform over 2nW − 1 candidates."""
    w, n = 2, 8
    eye = torch.eye(2 * w * n)
    z1, z2 = eye[:w * n], eye[w * n:]
    loss = nt_xent_gathered(rows(z1, 1, n), rows(z2, 1, n), z1, z2, 1, temperature=0.5)
    assert loss.item() == pytest.approx(math.log(2 * n * w - 1), rel=1e-6)


def test_shapes_that_do_not_fit_are_named():
    z1, z2 = batch()
    with pytest.raises(ValueError, match=r"expected the gathered batch \(n · W, D\)"):
        nt_xent_gathered(z1[:5], z2[:5], z1, z2, 0)
    with pytest.raises(ValueError, match=r"rank must be in 0 … 2 for 3 processes, got 3"):
        info_nce_gathered(rows(z1, 0), rows(z2, 0), z2, 3)


def test_negatives_per_query_grow_with_the_gather_not_with_accumulation():
    assert negatives_per_query(64) == 126
    assert negatives_per_query(64, world_size=8) == 1022
    assert negatives_per_query(64, world_size=8, gathered=False) == 126
    assert negatives_per_query(64, accumulation_steps=8) == 126
