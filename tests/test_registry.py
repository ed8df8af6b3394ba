"""The method registry: one file adds a method that trains through `fit`, the CLI and 2 processes;
multi-crop views; one meaning per name (augment=None, SupCon's τ)."""
import importlib
import inspect
import json
import os
import re
import sys
from pathlib import Path

import pytest
import torch

from contrastive_lab import cli
from contrastive_lab.augment import DIGITS_RECIPE, Views, make_views, two_views
from contrastive_lab.device import count_host_syncs
from contrastive_lab.distributed import cleanup, free_port, run_processes, setup
from contrastive_lab.losses import SUPCON_TEMPERATURE, supcon_loss
from contrastive_lab.methods import supcon
from contrastive_lab.methods.clip import clip_pairs_loss
from contrastive_lab.methods.data_parallel import train_method
from contrastive_lab.methods.registry import Method, TrainingData, get_method, registered
from contrastive_lab.methods.views import augment_recipe, train_on_views
from conftest import TOY, run_torchrun

METHODS_DIR = Path(cli.__file__).parent / "methods"
TOY_MODULE = "my_toy_method"
TOY_SOURCE = '''\
"""A toy method of one's own, in one file: SimCLR's model trained on multi-crop views.

It is what a learner writes to add a method: one `METHOD` entry, no other file edited.
The tests write it to a folder of their own and train it through `fit`, through
the CLI (`python -m contrastive_lab.cli train my_toy_method ...`, found by its
import path) and on 2 processes under gloo.

Each image gives 2 global views at the image size and 2 local views of 16 × 16
pixels (on 32 × 32 images); the loss is NT-Xent between the two global views, plus `local_weight` times NT-Xent
between each local view and the first global one, every view scored against the views
of every process. One forward (`views.MultiCrop`) runs the encoder on every view.
"""
import torch

from contrastive_lab.augment import Views
from contrastive_lab.distributed import global_nt_xent
from contrastive_lab.methods.registry import Method, Option
from contrastive_lab.methods.simclr import SimCLR
from contrastive_lab.methods.views import MultiCrop
from contrastive_lab.models import make_encoder

VIEWS = Views(n_global=2, n_local=2, local_size=16, local_scale=(0.1, 0.5))


def toy_loss(part, temperature: float, local_weight: float):
    """(global1, global2, local1, local2) → NT-Xent of the globals + local_weight · the locals' against global1."""
    def loss_fn(*crops: torch.Tensor) -> torch.Tensor:
        g1, g2, *local = part(*crops).chunk(len(crops))
        loss = global_nt_xent(g1, g2, temperature)
        return loss + local_weight * sum(global_nt_xent(z, g1, temperature) for z in local) / len(local)
    return loss_fn


METHOD = Method(
    name="toy", title="Toy",
    options=(Option("temperature", 0.5, "τ of every NT-Xent term"),
             Option("local_weight", 0.5, "weight of the local views' terms")),
    views=VIEWS,
    build=lambda profile, options, data: SimCLR(make_encoder(profile, in_channels=data.channels), profile.proj_dim),
    trainable_part=MultiCrop,
    loss=lambda run: toy_loss(run.part, run.options.temperature, run.options.local_weight),
    negatives_per_query=lambda model, batch, world: 2 * batch * world - 2,
)
'''


@pytest.fixture
def toy_method(tmp_path, monkeypatch):
    """The toy method as a learner adds one: one file of its own (here in tmp_path, on the import
    path), no other file edited. Yields the imported module; its folder is `toy_method.folder`."""
    (tmp_path / f"{TOY_MODULE}.py").write_text(TOY_SOURCE)
    monkeypatch.syspath_prepend(str(tmp_path))
    importlib.invalidate_caches()
    module = importlib.import_module(TOY_MODULE)
    module.folder = tmp_path
    yield module
    sys.modules.pop(TOY_MODULE, None)


def images(n=64, side=16):
    return torch.rand(n, 3, side, side, generator=torch.Generator().manual_seed(0))


# ---------------------------------------------------------------- the registry
def test_every_method_file_with_an_entry_is_registered_under_its_own_name():
    found = registered()
    assert {"simclr", "moco", "byol", "clip"} <= set(found)
    for name, method in found.items():
        source = (METHODS_DIR / f"{name}.py").read_text()
        assert "\nMETHOD = " in source, name                          # the entry lives in the method's own file
        assert method.name == name


def test_the_methods_map_lists_every_file():
    docstring = (METHODS_DIR / "__init__.py").read_text().split('"""')[1]
    listed = set(re.findall(r"^    (\w+)\s{2,}", docstring, re.M))
    files = {p.stem for p in METHODS_DIR.glob("*.py") if p.stem != "__init__"}
    assert files == listed, (files - listed, listed - files)


def test_the_cli_and_the_multi_process_trainer_name_no_method():
    for path in (METHODS_DIR / "data_parallel.py", Path(cli.__file__)):
        code = "\n".join(line for line in path.read_text().splitlines() if not line.lstrip().startswith("#"))
        body = code.split('"""', 2)[2]                                    # after the module docstring
        assert not re.search(r"""==\s*["'](simclr|moco|byol|clip|simsiam|vicreg|supcon)["']""", body), path
        assert "train_clip" not in body and "def train_clip" not in path.read_text()


def test_a_method_is_found_by_name_or_by_import_path(toy_method):
    assert get_method("simclr").title == "SimCLR"
    assert get_method(TOY_MODULE) is toy_method.METHOD
    assert get_method(f"{TOY_MODULE}:METHOD") is toy_method.METHOD
    with pytest.raises(ValueError, match="unknown method 'simsiamese'.*import path"):
        get_method("simsiamese")
    with pytest.raises(ValueError, match="has no Method named 'NOPE'"):
        get_method(f"{TOY_MODULE}:NOPE")
    with pytest.raises(ValueError, match="cannot import 'no_such_pkg.mod'"):
        get_method("no_such_pkg.mod")


def test_an_entry_refuses_what_cannot_work(toy_method):
    with pytest.raises(ValueError, match="data must be one of"):
        Method(name="x", title="X", build=None, loss=None, data="audio")
    with pytest.raises(ValueError, match="toy has no option"):
        toy_method.METHOD.options_of(queue_size=8)
    assert toy_method.METHOD.options_of(temperature=None).temperature == 0.5    # None: the default


# ---------------------------------------------------------------- the toy method: fit, CLI, 2 processes
def test_a_method_of_ones_own_trains_through_fit_without_a_host_sync(toy_method):
    method = get_method(TOY_MODULE)
    torch.manual_seed(0)
    x = images(64, 32)
    model = method.build(TOY, method.options_of(), TrainingData(x))
    before = [p.detach().clone() for p in model.parameters()]
    with count_host_syncs(as_if_gpu=True) as syncs:
        history = train_method(method, model, x, TOY, epochs=2, progress=False)
    assert len(history.loss) == syncs.steps == 8
    assert syncs.step_total == 0, dict(syncs.in_steps)         # multi-crop views on the device, no sync
    assert all(torch.isfinite(torch.tensor(history.loss)))
    assert all(not torch.equal(p, b) for p, b in zip(model.parameters(), before))


def test_a_method_of_ones_own_trains_through_the_cli_with_its_own_option(toy_method, tmp_path, capsys):
    args = ["train", TOY_MODULE, "--profile", "quick", "--n-train", "32", "--batch-size", "16", "--epochs", "1",
            "--device", "cpu", "--no-progress"]
    assert cli.main([*args, "--local-weight", "0.25", "--out", str(tmp_path / "run")]) == 0
    record = json.loads((tmp_path / "run" / "history.json").read_text())
    assert record["method"] == "toy" and record["experiment"]["model"]["local_weight"] == 0.25
    assert record["negatives_per_query"] == 30 and len(record["loss"]) == 2
    assert cli.load_run_encoder(tmp_path / "run" / "encoder.pt").version.startswith("toy-quick-seed0-")
    capsys.readouterr()
    assert cli.main([*args, "--queue-size", "64", "--out", str(tmp_path / "o")]) == 2
    assert "--queue-size is MoCo's option; toy does not take it" in capsys.readouterr().err
    with pytest.raises(SystemExit):                                  # another method: no such flag
        cli.main(["train", "simclr", "--local-weight", "1", "--out", str(tmp_path / "o")])
    assert "unrecognized arguments: --local-weight" in capsys.readouterr().err


def test_a_method_of_ones_own_trains_on_two_processes_under_gloo(toy_method, tmp_path):
    out = tmp_path / "toy"
    env_path = os.pathsep.join([str(toy_method.folder), os.environ.get("PYTHONPATH", "")])
    done = run_torchrun(["train", TOY_MODULE, "--profile", "quick", "--n-train", "64", "--batch-size", "8",
                         "--epochs", "1", "--device", "cpu", "--no-progress", "--out", str(out)],
                        env={"PYTHONPATH": env_path})
    assert done.returncode == 0, done.stderr[-3000:]
    record = json.loads((out / "history.json").read_text())
    assert (record["world_size"], record["global_batch"], record["negatives_per_query"]) == (2, 16, 30)
    assert record["status"] == "done" and len(record["loss"]) == 64 // 16


def toy_worker(rank, port, folder, out_dir):
    """One of 2 gloo processes: the toy method, found by its import path, trained by `train_method`."""
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port), RANK=str(rank), WORLD_SIZE="2",
                      LOCAL_RANK=str(rank))
    torch.set_num_threads(1)
    sys.path.insert(0, folder)
    world = setup("cpu", timeout_s=120)
    method = get_method(TOY_MODULE)
    torch.manual_seed(rank)                                   # different weights: DDP starts both from rank 0's
    x = images(64, 32)
    model = method.build(TOY, method.options_of(), TrainingData(x))
    history = train_method(method, model, x, TOY, world, batch_size=8, epochs=1, progress=False)
    torch.save({"loss": history.loss, "params": [p.detach() for p in model.parameters()]},
               os.path.join(out_dir, f"rank{rank}.pt"))
    cleanup()


def test_a_method_of_ones_own_trains_under_run_processes(toy_method, tmp_path):
    run_processes(toy_worker, 2, (free_port(), str(toy_method.folder), str(tmp_path)), 180)
    ranks = [torch.load(tmp_path / f"rank{r}.pt", weights_only=True) for r in range(2)]
    assert len(ranks[0]["loss"]) == 64 // 16 and all(torch.isfinite(torch.tensor(r["loss"])).all() for r in ranks)
    for a, b in zip(ranks[0]["params"], ranks[1]["params"]):     # the processes stay in step
        torch.testing.assert_close(a, b)


def test_an_option_of_another_method_is_refused_in_one_line(tmp_path, capsys):
    assert cli.main(["train", "byol", "--profile", "quick", "--device", "cpu", "--temperature", "0.1",
                     "--out", str(tmp_path / "o")]) == 2
    assert capsys.readouterr().err.strip() == \
        "error: --temperature is an option of MoCo and SimCLR; byol does not take it"
    assert not (tmp_path / "o").exists()


# ---------------------------------------------------------------- multi-crop views
def test_multi_crop_gives_global_then_local_views_each_image_its_own_crop():
    x = images(8, 32)
    crops = make_views(x, DIGITS_RECIPE, Views(n_global=2, n_local=3, local_size=12), torch.Generator().manual_seed(0))
    assert [tuple(c.shape) for c in crops] == [(8, 3, 32, 32)] * 2 + [(8, 3, 12, 12)] * 3
    assert all(c.dtype == torch.float32 and 0 <= c.min() and c.max() <= 1 for c in crops)
    a, b = crops[2], crops[3]
    assert not torch.allclose(a, b)                                  # each local view draws anew
    assert not torch.allclose(a[0], a[1])                            # and each image its own parameters
    pair = two_views(x, DIGITS_RECIPE, torch.Generator().manual_seed(0))
    assert all(torch.equal(p, q) for p, q in zip(pair, crops[:2]))   # the globals are two_views' draws


def test_a_local_view_is_a_small_part_of_the_image_resized():
    """With no colour change, a local crop of an image that is a left-right ramp spans a
    narrower range of the ramp than the whole image (its area is at most half the image's)."""
    ramp = torch.linspace(0, 1, 32).expand(4, 3, 32, 32).contiguous()
    plain = DIGITS_RECIPE.without("color")
    small = make_views(ramp, plain, Views(1, 4, local_size=8, local_scale=(0.1, 0.5)), torch.Generator().manual_seed(1))
    for view in small[1:]:
        spread = view[:, 0, 4].amax(1) - view[:, 0, 4].amin(1)
        assert (spread < 0.85).all() and view.shape[-1] == 8


def test_multi_crop_is_float32_under_autocast_and_never_waits_for_the_host():
    x = images(8, 32).to(torch.bfloat16)
    with count_host_syncs(as_if_gpu=True) as syncs, torch.autocast("cpu", dtype=torch.bfloat16):
        crops = make_views(x, DIGITS_RECIPE, Views(2, 4, local_size=16), torch.Generator().manual_seed(0))
    assert all(c.dtype == torch.float32 for c in crops)
    assert syncs.total == 0, dict(syncs.by_op)


def test_views_refuse_what_cannot_be_cropped():
    with pytest.raises(ValueError, match="local_size >= 1"):
        Views(n_local=2)
    with pytest.raises(ValueError, match="n_global >= 1"):
        Views(n_global=0)


# ---------------------------------------------------------------- one meaning per name
def test_augment_none_means_no_augmentation_and_the_recipe_is_asked_for_by_name():
    assert augment_recipe(None, TOY) is None
    assert augment_recipe("profile", TOY) == TOY.augment
    assert augment_recipe(DIGITS_RECIPE, TOY) is DIGITS_RECIPE
    with pytest.raises(ValueError, match='augment must be "profile"'):
        augment_recipe("default", TOY)
    seen = []

    def loss_fn(v1, v2):
        seen.append(torch.equal(v1, v2))
        return (v1 * model.weight.sum()).mean()
    model = torch.nn.Linear(1, 1)
    model.feature_dim = 1
    train_on_views(loss_fn, model, images(32), TOY, augment=None, epochs=1, progress=False)
    assert seen == [True, True]                                   # both views are the image itself
    seen.clear()
    train_on_views(loss_fn, model, images(32), TOY, epochs=1, progress=False)
    assert seen == [False, False]                                 # by default, the profile's recipe


def test_supcon_has_one_temperature_default():
    loss_default = inspect.signature(supcon_loss).parameters["temperature"].default
    trainer_default = inspect.signature(supcon.train_supcon).parameters["temperature"].default
    assert loss_default == trainer_default == SUPCON_TEMPERATURE == 0.1


def test_the_image_caption_loss_takes_what_the_model_returns_after_the_embeddings():
    """A SigLIP-like model returns (image_emb, text_emb, scale, bias): the pair loss passes both
    to its loss and logs both by name (branch i28's SigLIP trains through train_clip this way)."""
    scale, bias = torch.tensor(10.0), torch.tensor(-2.0)

    def model(images, ids):
        return images.flatten(1), ids.float(), scale, bias
    seen = []
    loss_fn = clip_pairs_loss(model, lambda i, t, s, b: seen.append((s, b)) or (i.sum() + t.sum()) * s + b)
    loss, logged = loss_fn(torch.ones(2, 1, 1, 2), torch.ones(2, 2, dtype=torch.long))
    assert seen == [(scale, bias)] and loss.item() == 8 * 10.0 - 2.0
    assert logged.keys() == {"logit_scale", "logit_bias"}
