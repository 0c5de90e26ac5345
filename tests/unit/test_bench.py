"""The benchmark's floor does the platform's work: same devices, same batches, same average."""

import numpy as np
import pytest

from edgeweave.platform.bench import device_sequence, rss_bytes, run_floor, summary, table, workload
from edgeweave.platform.client import Client
from edgeweave.platform.data import load_dataset
from edgeweave.platform.partition import partition_data
from edgeweave.platform.server import Server


def test_default_workload_is_the_documented_one():
    cfg = workload(100_000, rounds=7)
    assert (cfg.devices.count, cfg.devices.per_round, cfg.training.batch_size, cfg.training.lr) == (100_000, 10, 10, 0.1)
    assert cfg.partition.params.samples_per_device == 50 and cfg.data.params.image_size == 32
    assert cfg.training.eval_every == 10 and cfg.training.momentum == 0.0


@pytest.mark.parametrize("workers", [1, 2])
def test_floor_equals_the_platform_rounds(make_config, workers):
    cfg = make_config(training={"rounds": 2, "batch_size": 10, "lr": 0.1, "momentum": 0.0},
                      devices={"count": 8, "per_round": 3}, partition={"policy": "pool", "samples_per_device": 20})
    data = load_dataset(cfg.data, cfg.seed)
    part = partition_data(cfg.partition, data.y_train, cfg.devices.count, cfg.seed)
    server, client = Server(cfg, data, part), Client(cfg, data, part)
    for r in range(cfg.training.rounds):
        jobs, _ = server.plan(r)
        server.update([client.run(r, server.weights, jobs)])
    floor = run_floor(cfg, data, part, device_sequence(cfg, data, part), workers)
    np.testing.assert_allclose(floor["weights"], server.weights, atol=1e-5)
    assert floor["accuracy"] == pytest.approx(server.evaluate()[0], abs=2e-3)
    assert len(floor["rounds"]) == 2 and floor["startup"] > 0 and floor["peak_rss"] > 0

    row = summary("floor", workers, 8, cfg, floor)
    assert row["samples_per_s"] > 0 and row["round_p95_s"] >= row["round_p50_s"] * 0.5
    platform = {**row, "kind": "platform", "wall_s": 2 * row["wall_s"]}
    assert "| platform | %d | 8 | 2 |" % workers in table([row, platform]) and "2.00x" in table([row, platform])


def test_rss_of_this_process_is_read():
    import os

    assert rss_bytes([os.getpid()]) > 10 * 2**20
