"""Encoders, embed, profiles and device choice."""
import dataclasses

import pytest
import torch

from contrastive_lab.device import get_device, seed_everything
from contrastive_lab.models import ProjectionHead, SmallCNN, embed, make_encoder, resnet18_cifar
from contrastive_lab.profiles import FULL, QUICK, get_profile


def test_small_cnn_shapes():
    x = torch.rand(4, 3, 32, 32)
    assert SmallCNN()(x).shape == (4, 128)
    assert SmallCNN(out_dim=3)(x).shape == (4, 3)
    assert SmallCNN(in_channels=1)(torch.rand(2, 1, 28, 28)).shape == (2, 128)


def test_resnet18_cifar_keeps_resolution_in_the_stem():
    net = resnet18_cifar()
    assert net.conv1.stride == (1, 1) and isinstance(net.maxpool, torch.nn.Identity)
    assert net(torch.rand(2, 3, 32, 32)).shape == (2, 512) and net.feature_dim == 512


def test_make_encoder_follows_the_profile():
    assert isinstance(make_encoder(QUICK), SmallCNN)
    assert make_encoder(FULL).feature_dim == 512
    with pytest.raises(ValueError, match="unknown backbone"):
        make_encoder(QUICK.replace(backbone="vit"))


def test_embed_is_normalized_gradless_and_restores_mode():
    model = torch.nn.Sequential(SmallCNN(), ProjectionHead(128, 32, 8))
    model.train()
    z = embed(model, torch.rand(10, 3, 32, 32), batch_size=4)
    assert z.shape == (10, 8) and not z.requires_grad
    torch.testing.assert_close(z.norm(dim=1), torch.ones(10))
    assert model.training


def test_profiles_are_frozen_and_chosen_by_env(monkeypatch):
    with pytest.raises(dataclasses.FrozenInstanceError):
        QUICK.epochs = 3
    monkeypatch.setenv("CLAB_PROFILE", "full")
    assert get_profile().name == "full"
    assert get_profile("quick").name == "quick"      # the argument wins
    monkeypatch.setenv("CLAB_PROFILE", "huge")
    with pytest.raises(ValueError, match="unknown profile 'huge'"):
        get_profile()
    assert QUICK.replace(epochs=2).epochs == 2
    with pytest.raises(ValueError, match="no field"):
        QUICK.replace(epoch=2)


def test_default_profile_without_gpu_is_quick(monkeypatch):
    monkeypatch.delenv("CLAB_PROFILE", raising=False)
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert get_profile().name == "quick"


def test_device_choice(monkeypatch):
    monkeypatch.delenv("CLAB_DEVICE", raising=False)
    assert get_device("cpu").type == "cpu"
    if not torch.cuda.is_available():
        with pytest.raises(ValueError, match="no CUDA GPU is visible"):
            get_device("cuda")


def test_seeding_repeats_exactly():
    seed_everything(5)
    a = torch.randn(3), SmallCNN()(torch.rand(1, 3, 32, 32))
    seed_everything(5)
    b = torch.randn(3), SmallCNN()(torch.rand(1, 3, 32, 32))
    assert torch.equal(a[0], b[0]) and torch.equal(a[1], b[1])


def test_clab_seed_shifts_every_course_seed(monkeypatch):
    from contrastive_lab.device import make_generator, seed_offset
    monkeypatch.delenv("CLAB_SEED", raising=False)
    assert seed_offset() == 0
    base = torch.randn(3, generator=seed_everything(0)), torch.rand(3, generator=make_generator(4))
    monkeypatch.setenv("CLAB_SEED", "2")
    assert seed_offset() == 2
    shifted = torch.randn(3, generator=seed_everything(0)), torch.rand(3, generator=make_generator(4))
    assert torch.equal(shifted[0], torch.randn(3, generator=torch.Generator().manual_seed(2)))
    assert torch.equal(shifted[1], torch.rand(3, generator=torch.Generator().manual_seed(6)))
    assert not torch.equal(base[0], shifted[0]) and not torch.equal(base[1], shifted[1])
    monkeypatch.setenv("CLAB_SEED", "one")
    with pytest.raises(ValueError, match="CLAB_SEED must be a whole number"):
        seed_everything(0)
