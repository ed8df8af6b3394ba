"""MoCo's shuffle-BN on one device, worked out on tiny tensors."""
import pytest
import torch
import torch.nn as nn

from contrastive_lab.device import count_host_syncs
from contrastive_lab.methods.moco import MoCo, encode_in_groups, moco_loss, train_moco
from contrastive_lab.models import SmallCNN
from contrastive_lab.profiles import QUICK


def plain_batchnorm():
    """BatchNorm without a learned scale or shift: it only subtracts the batch mean and
    divides by the batch std (eps negligible), so its outputs can be worked out by hand."""
    return nn.BatchNorm1d(1, affine=False, eps=1e-12).train()


X = torch.tensor([[0.0], [2.0], [10.0], [14.0]])


def test_one_group_is_the_plain_forward():
    bn = plain_batchnorm()
    torch.testing.assert_close(encode_in_groups(bn, X, 1), plain_batchnorm()(X))


def test_each_group_is_normalized_with_its_own_statistics():
    # groups {0, 2} and {10, 14}: each has std 1 (biased) around means 1 and 12
    out = encode_in_groups(plain_batchnorm(), X, 2)
    assert out.flatten().tolist() == pytest.approx([-1.0, 1.0, -1.0, 1.0])
    # one group of all four would give other values: mean 6.5, std √32.75 ≈ 5.723
    assert plain_batchnorm()(X).flatten()[0].item() == pytest.approx(-6.5 / 32.75 ** 0.5, rel=1e-5)


def test_shuffled_groups_come_back_in_the_input_order():
    # order [0, 2, 1, 3]: groups {0, 10} (mean 5, std 5) and {2, 14} (mean 8, std 6)
    out = encode_in_groups(plain_batchnorm(), X, 2, order=torch.tensor([0, 2, 1, 3]))
    assert out.flatten().tolist() == pytest.approx([-1.0, -1.0, 1.0, 1.0])   # row i is still image i


def test_a_batch_that_does_not_split_says_how_to_fix_it():
    with pytest.raises(ValueError, match="multiple of bn_groups"):
        encode_in_groups(plain_batchnorm(), torch.zeros(6, 1), 4)
    with pytest.raises(ValueError, match="bn_groups must be >= 1"):
        MoCo(SmallCNN((4, 8, 8, 8)), proj_dim=8, bn_groups=0)


def test_shuffle_bn_keys_are_the_key_net_on_shuffled_groups():
    torch.manual_seed(0)
    model = MoCo(SmallCNN((4, 8, 8, 8)), proj_dim=8, queue_size=16, momentum=0.0, bn_groups=2)
    v1, v2 = torch.rand(2, 4, 3, 16, 16, generator=torch.Generator().manual_seed(1))
    torch.manual_seed(5)
    moco_loss(model, 0.2)(v1, v2)
    torch.manual_seed(5)
    order = torch.randperm(4)                       # the permutation the step drew
    with torch.no_grad():
        want = nn.functional.normalize(encode_in_groups(model.key_net, v2, 2, order), dim=1)
    torch.testing.assert_close(model.queue.keys[:4], want)
    unshuffled = nn.functional.normalize(encode_in_groups(model.key_net, v2, 2), dim=1)
    assert not torch.allclose(model.queue.keys[:4], unshuffled)   # the grouping changed the keys


def test_symmetric_loss_queues_both_views_and_trains_both():
    """Gradient reaches the images of BOTH views through the query network (the keys take
    none); without `symmetric` only view 1 is a query, so view 2 gets no gradient."""
    for symmetric in (True, False):
        torch.manual_seed(0)
        model = MoCo(SmallCNN((4, 8, 8, 8)), proj_dim=8, queue_size=16, bn_groups=2, symmetric=symmetric)
        v1, v2 = torch.rand(2, 4, 3, 16, 16, generator=torch.Generator().manual_seed(1))
        v1.requires_grad_(True)
        v2.requires_grad_(True)
        moco_loss(model, 0.2)(v1, v2).backward()
        assert all(p.grad is None for p in model.key_net.parameters())
        assert v1.grad.abs().sum() > 0
        if symmetric:
            assert v2.grad.abs().sum() > 0
            assert model.queue.ptr.item() == 8               # 4 keys of each view
        else:
            assert v2.grad is None
            assert model.queue.ptr.item() == 4


def test_symmetric_loss_is_the_mean_of_both_directions():
    """With momentum 1 the key network stays as it is, so both halves can be recomputed by hand."""
    from contrastive_lab.losses import info_nce

    torch.manual_seed(0)
    model = MoCo(SmallCNN((4, 8, 8, 8)), proj_dim=8, queue_size=16, momentum=1.0, symmetric=True)
    v1, v2 = torch.rand(2, 4, 3, 16, 16, generator=torch.Generator().manual_seed(1))
    queue = model.queue.keys.clone()
    loss = moco_loss(model, 0.2)(v1, v2)
    with torch.no_grad():
        k1, k2 = (nn.functional.normalize(model.key_net(v), dim=1) for v in (v1, v2))
        want = 0.5 * (info_nce(model.query_net(v1), k2, queue, 0.2) + info_nce(model.query_net(v2), k1, queue, 0.2))
    torch.testing.assert_close(loss.detach(), want)
    torch.testing.assert_close(model.queue.keys[:8], torch.cat([k1, k2]))


def test_shuffle_bn_training_does_not_synchronise_with_the_host():
    toy = QUICK.replace(cnn_widths=(4, 8, 8, 8), proj_dim=8, batch_size=16, channels_last=False, log_every=4)
    x = torch.rand(64, 3, 16, 16, generator=torch.Generator().manual_seed(0))
    model = MoCo(SmallCNN(toy.cnn_widths), 8, queue_size=64, bn_groups=2, symmetric=True)
    with count_host_syncs() as syncs:
        history = train_moco(model, x, toy, epochs=2, device="cpu", progress=False)
    assert len(history.loss) == 8
    assert syncs.total <= 2, dict(syncs.by_op)
