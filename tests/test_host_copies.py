"""The sync counter sees copies between host and device, on a machine without a GPU.

Two ways to show a copy where there is no GPU:
- the `meta` device stands in for the GPU: `.to("meta")` and a host index into a meta
  tensor are real cross-device operations, seen at the dispatcher as on CUDA;
- on the CPU itself a `.to(device)` moves nothing, so inside a training step the
  counter watches the calls (`as_if_gpu`): a `.to(device)` / `.cpu()` of a host tensor
  or a `.tolist()` made by the course's code is what a GPU would pay for.
Then: the per-step `idx.to(device)` that sentence-BERT's step had is found both ways,
and the fixed step, and every `train_*`, has none.
"""
import torch

from contrastive_lab import validate
from contrastive_lab.device import count_host_syncs, training_step
from contrastive_lab.methods.sentence_bert import length_batches, mnrl_step, train_biencoder
from contrastive_lab.train import fit

from test_sentence_bert import tiny_setup


# ---------------------------------------------------------------- the counter itself
def test_copies_to_another_device_are_counted_by_direction():
    x = torch.arange(6.0)
    with count_host_syncs(as_if_gpu=False) as syncs:
        on_meta = x.to("meta")                                # host → "device"
        torch.empty(6, device="meta").copy_(x)                # host → "device" into an existing tensor
        _ = x.float(), x.to(torch.float16), x.to(memory_format=torch.contiguous_format)   # no device: no copy
    assert dict(syncs.by_op) == {"aten._to_copy.default cpu→meta": 1, "aten.copy_.default cpu→meta": 1}
    assert on_meta.device.type == "meta"


def test_a_host_index_into_device_data_is_counted():
    data = torch.empty(10, 4, device="meta")
    with count_host_syncs(as_if_gpu=False) as syncs:
        _ = data[torch.arange(3)]                             # the index is copied to the device
        _ = data[torch.arange(3, device="meta")]              # already there: nothing
        _ = data * torch.tensor(2.0)                          # a 0-dim host scalar: no copy
    assert list(syncs.by_op) == ["aten.index.Tensor on cpu+meta (copies the host tensor)"]


def test_on_the_cpu_a_to_device_inside_a_step_is_what_a_gpu_would_copy():
    fresh = torch.arange(4)
    with count_host_syncs(as_if_gpu=True) as syncs:
        fresh.to("cpu")                                       # outside a step: a one-time copy, not counted
        with training_step():
            fresh.to("cpu")
            fresh.to(device=torch.device("cpu"), non_blocking=True)
            fresh.cpu()
            fresh.tolist()
            fresh.float()                                     # dtype only
            fresh.to(torch.float64)
    assert syncs.steps == 1
    assert dict(syncs.in_steps) == {"Tensor.to of a host tensor to a device (a copy on a GPU)": 2,
                                    "Tensor.cpu of a host tensor to a device (a copy on a GPU)": 1,
                                    "Tensor.tolist (a read to the host on a GPU)": 1}
    assert syncs.total == syncs.step_total == 4
    with count_host_syncs(as_if_gpu=False) as off, training_step():
        fresh.to("cpu")
    assert off.total == 0


def test_fit_marks_every_step_and_its_reads_stay_outside():
    w = torch.nn.Parameter(torch.ones(1))
    with count_host_syncs(as_if_gpu=True) as syncs:
        fit(lambda b: (w * b).sum(), [w], lambda e: [torch.ones(1)] * 8, 2, log_every=4, progress=False)
    assert syncs.steps == 16 and syncs.step_total == 0


def test_fit_reads_the_losses_and_the_extras_in_one_transfer():
    w = torch.nn.Parameter(torch.ones(1))
    step = lambda b: ((w * b).sum(), {"a": w.detach().sum() * 2, "b": 3.0, "c": (w * 0).detach().sum()})
    original, reads = torch.Tensor.tolist, []
    torch.Tensor.tolist = lambda self: reads.append(tuple(self.shape)) or original(self)
    try:
        history = fit(step, [w], lambda e: [torch.ones(1)] * 4, 1, log_every=4, progress=False)
    finally:
        torch.Tensor.tolist = original
    assert reads == [(3, 4)]                                  # losses + 2 tensor extras, 4 steps, ONE read
    assert [v for _, v in history.metrics["b"]] == [3.0] * 4 and len(history.metrics["a"]) == 4


# ---------------------------------------------------------------- sentence-BERT: before and after the fix
def old_mnrl_step(model, query_ids, doc_ids, scale):
    """The step as it was: every batch's host indices copied to the device inside the step."""
    from contrastive_lab.losses import multiple_negatives_ranking_loss

    def step(batch):
        idx, lq, ld, _ = batch
        idx = idx.to(query_ids.device)
        return multiple_negatives_ranking_loss(model(query_ids[idx, :lq]), model(doc_ids[idx, :ld]), scale=scale)
    return step


def host_batch(queries, documents, tok):
    """A batch as length_batches gave it before it took a device: indices on the host."""
    return next(length_batches(tok.lengths(queries, 12), tok.lengths(documents, 16), 8))


def test_the_counter_finds_the_old_per_step_index_copy_on_a_fake_device():
    queries, documents, tok, settings, model = tiny_setup()
    model = model.to("meta")
    q_ids, d_ids = tok(queries, max_len=12).to("meta"), tok(documents, max_len=16).to("meta")
    batch = host_batch(queries, documents, tok)
    with validate.value_checks(False), count_host_syncs(as_if_gpu=False) as syncs, training_step():
        old_mnrl_step(model, q_ids, d_ids, 20.0)(batch)
    assert syncs.in_steps["aten._to_copy.default cpu→meta"] == 1, dict(syncs.in_steps)
    on_device = (batch[0].to("meta"), *batch[1:])                  # what length_batches(device=...) yields now
    with validate.value_checks(False), count_host_syncs(as_if_gpu=False) as syncs, training_step():
        mnrl_step(model, q_ids, d_ids, 20.0)(on_device)
    assert syncs.step_total == 0, dict(syncs.in_steps)


def test_the_counter_finds_the_old_per_step_index_copy_on_the_cpu():
    queries, documents, tok, settings, model = tiny_setup()
    q_ids, d_ids = tok(queries, max_len=12), tok(documents, max_len=16)
    batch = host_batch(queries, documents, tok)
    with validate.value_checks(False), count_host_syncs(as_if_gpu=True) as syncs, training_step():
        old_mnrl_step(model, q_ids, d_ids, 20.0)(batch).backward()
    assert dict(syncs.in_steps) == {"Tensor.to of a host tensor to a device (a copy on a GPU)": 1}
    with validate.value_checks(False), count_host_syncs(as_if_gpu=True) as syncs, training_step():
        mnrl_step(model, q_ids, d_ids, 20.0)(batch).backward()
    assert syncs.step_total == 0


def test_length_batches_put_the_indices_on_the_device_once_per_epoch():
    lengths = [3, 5, 2, 7, 4, 6, 1, 8]
    with count_host_syncs(as_if_gpu=False) as syncs:
        batches = list(length_batches(lengths, lengths, 4, torch.Generator().manual_seed(0), device="meta"))
    assert [b[0].device.type for b in batches] == ["meta", "meta"]
    assert syncs.by_op["aten._to_copy.default cpu→meta"] == 1        # the epoch's order, once
    host = list(length_batches(lengths, lengths, 4, torch.Generator().manual_seed(0)))
    assert [b[1:] for b in host] == [b[1:] for b in batches]


def test_train_biencoder_steps_copy_nothing():
    queries, documents, tok, settings, model = tiny_setup()
    with count_host_syncs(as_if_gpu=True) as syncs:
        history = train_biencoder(model, tok, queries, documents, settings.replace(log_every=4), epochs=4,
                                  device="cpu", progress=False)
    assert syncs.steps == len(history.loss) == 4 and syncs.step_total == 0, dict(syncs.in_steps)
