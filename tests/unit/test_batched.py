"""Devices trained together in one batched pass: the same updates as one after another, any worker count."""

import numpy as np
import pytest

from edgeweave.platform.data import load_dataset
from edgeweave.platform.models import build_model
from edgeweave.platform.partition import partition_data
from edgeweave.platform.run.client import Client
from edgeweave.platform.run.server import Server, split_jobs
from edgeweave.platform.train.aggregate import combine
from edgeweave.platform.train.batched import batch_groups, batchable


def built(cfg):
    data = load_dataset(cfg.data, cfg.seed)
    part = partition_data(cfg.partition, data.y_train, cfg.devices.count, cfg.seed)
    return data, part


def one_round(cfg, data, part, workers=1):
    """Round 0 planned by a Server and trained by `workers` Clients, shares as the driver cuts them."""
    server = Server(cfg, data, part)
    jobs, samples = server.plan(0)
    client = Client(cfg, data, part)
    partials = [
        client.run(0, server.weights, share, server.shared) for share in split_jobs(jobs, samples, workers) if share
    ]
    return jobs, combine(partials, server.layout.size)


def equal_shards(make_config, image_size=8, channels=1, **sections):
    # 1,200 samples over 12 devices: 100 each, so every device of a round can train with the others
    return make_config(
        data={
            "name": "synthetic",
            "train_samples": 1200,
            "test_samples": 50,
            "image_size": image_size,
            "channels": channels,
        },
        devices={"count": 12, "per_round": 10},
        **sections,
    )


@pytest.mark.parametrize(
    "training",
    [
        {"batch_size": 10, "lr": 0.1, "momentum": 0.0},
        {"batch_size": 16, "lr": 0.05, "momentum": 0.9, "weight_decay": 1e-3, "local_epochs": 2},
        {"batch_size": 10, "lr": 0.1, "momentum": 0.5, "prox_mu": 0.7},  # FedProx's term on stacked weights too
    ],
)
def test_batched_updates_equal_training_one_device_after_another(make_config, training):
    batched = equal_shards(make_config, training=training)
    data, part = built(batched)
    jobs, together = one_round(batched, data, part)
    assert {j.group for j in jobs} == {0, 1}  # 10 devices: two groups of 5 (at most batch_devices = 8)
    _, alone = one_round(
        batched.model_copy(update={"training": batched.training.model_copy(update={"batched": "off"})}), data, part
    )
    np.testing.assert_array_equal(together.counts, alone.counts)
    np.testing.assert_allclose(together.sums, alone.sums, rtol=1e-5, atol=1e-6 * np.abs(alone.sums).max())
    assert [r["device"] for r in together.records] == [r["device"] for r in alone.records]
    for a, b in zip(together.records, alone.records):
        assert (a["samples"], a["steps"]) == (b["samples"], b["steps"]) and a["loss"] == pytest.approx(b["loss"], 1e-5)


def test_a_width_method_batches_the_devices_of_one_rate(make_config):
    cfg = equal_shards(make_config, strategy={"name": "heterofl"})
    data, part = built(cfg)
    jobs, together = one_round(cfg, data, part)
    rates = {j.group: {j.rate} for j in jobs if j.group is not None}
    assert rates and all(len(r) == 1 for r in rates.values())  # a group holds one plan
    off = cfg.model_copy(update={"training": cfg.training.model_copy(update={"batched": "off"})})
    _, alone = one_round(off, data, part)
    np.testing.assert_array_equal(together.counts, alone.counts)
    np.testing.assert_allclose(together.sums, alone.sums, rtol=1e-5, atol=1e-6 * np.abs(alone.sums).max())


def test_the_result_is_the_same_for_any_number_of_workers(make_config):
    cfg = equal_shards(make_config, training={"rounds": 1, "batch_size": 10})
    data, part = built(cfg)
    _, one = one_round(cfg, data, part, workers=1)
    for workers in (2, 3, 4):
        _, many = one_round(cfg, data, part, workers=workers)
        np.testing.assert_array_equal(
            (many.sums / np.maximum(many.counts, 1)).astype(np.float32),
            (one.sums / np.maximum(one.counts, 1)).astype(np.float32),
        )


def test_auto_batches_only_cheap_models_without_state(make_config):
    small = build_model(make_config().model, (1, 8, 8), 10, 0)
    assert batchable(small, 8e6) and not batchable(small, 1e9)
    bn = build_model(make_config(model={"name": "vgg11", "width": 0.25}).model, (3, 32, 32), 10, 0)
    assert not batchable(bn, 1.0)  # batch-norm statistics are state per device
    cifar = equal_shards(make_config, 32, 3, model={"name": "cnn"}, training={"batch_size": 10})
    data, part = built(cifar)
    assert not Server(cifar, data, part).batching  # the two-conv CNN on 32x32: a step costs 1.3 GFLOPs


def test_groups_are_near_equal_runs_of_one_key():
    keys = ["a"] * 10 + [None, "b", "a"]
    groups = batch_groups(keys, 8)
    sizes = {g: groups.count(g) for g in set(groups) if g is not None}
    assert sorted(sizes.values()) == [5, 6] and groups[10] is None and groups[11] is None  # "b" alone: no group
    assert len({groups[i] for i in range(10)} | {groups[12]}) == 2  # the last "a" joins an "a" group


def test_only_built_in_device_halves_train_in_groups(make_config):
    from edgeweave.platform.methods.base import DeviceHalf
    from edgeweave.platform.run.client import trains_in_groups

    class Clipping(DeviceHalf):  # a device half of one's own reads the partial after training into it
        def train(self, ctx, round_, job, weights, partial):
            ctx.train_full(round_, job, weights, partial)
            partial.sums *= 0.5

    cfg = equal_shards(make_config, training={"batch_size": 10})
    data, part = built(cfg)
    server = Server(cfg, data, part)
    jobs, _ = server.plan(0)
    assert any(j.group is not None for j in jobs)
    partials = []
    for batched in ("auto", "off"):
        client = Client(
            cfg.model_copy(update={"training": cfg.training.model_copy(update={"batched": batched})}), data, part
        )
        assert client.in_groups and not trains_in_groups(Clipping(client.half.rules))
        client.half = Clipping(client.half.rules)
        client.in_groups = trains_in_groups(client.half)
        partials.append(client.run(0, server.weights, jobs))  # each update halved right after it was added
    np.testing.assert_array_equal(partials[0].sums, partials[1].sums)
