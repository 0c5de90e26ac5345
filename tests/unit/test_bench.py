"""The benchmark's floor does the platform's work: same devices, same batches, same average."""

import numpy as np
import pytest

from edgeweave.platform.bench.rounds import device_sequence, rss_bytes, run_floor, summary, table, targets, workload
from edgeweave.platform.data import load_dataset
from edgeweave.platform.partition import partition_data
from edgeweave.platform.run.client import Client
from edgeweave.platform.run.server import Server


def test_default_workload_is_the_documented_one():
    cfg = workload()  # 1,000 devices of 50 samples each, none shared: CIFAR-10's 50,000
    assert (cfg.devices.count, cfg.devices.per_round, cfg.training.batch_size, cfg.training.lr) == (1000, 10, 10, 0.1)
    assert (cfg.partition.name, cfg.data.params.train_samples, cfg.data.params.test_samples) == ("iid", 50_000, 2_000)
    assert cfg.data.params.image_size == 32 and cfg.training.rounds == 30
    assert cfg.training.eval_every == 10 and cfg.training.momentum == 0.0
    larger = workload(100_000, rounds=7)  # more devices than the samples allow: they draw from the 50,000
    assert larger.partition.name == "pool" and larger.partition.params.samples_per_device == 50
    assert larger.data.params.train_samples == 50_000 and larger.devices.count == 100_000


@pytest.mark.parametrize("workers", [1, 2])
def test_floor_equals_the_platform_rounds(make_config, workers):
    cfg = make_config(
        training={"rounds": 2, "batch_size": 10, "lr": 0.1, "momentum": 0.0},
        devices={"count": 8, "per_round": 3},
        partition={"policy": "pool", "samples_per_device": 20},
    )
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

    assert len(floor["evaluations"]) == 2 and floor["evaluations"][1] > 0  # the last round evaluates
    row = summary("floor", workers, 8, cfg, floor, len(data.y_train))
    assert row["samples_per_s"] > 0 and row["steady_p95_s"] >= row["steady_p50_s"] > 0
    assert row["evaluation_s"] == pytest.approx(sum(floor["evaluations"]) / 2)  # eval_every 1: both rounds
    sparse = summary(
        "floor",
        workers,
        8,
        cfg.model_copy(update={"training": cfg.training.model_copy(update={"eval_every": 5})}),
        {**floor, "evaluations": [2.0, 0.001, 0.001, 0.001, 3.0, 0.001, 4.0]},
        1,
    )
    assert sparse["evaluation_s"] == pytest.approx(3.5)  # the rounds that evaluated: the 5th and the last
    assert row["first_round_s"] == pytest.approx(floor["rounds"][0] - floor["evaluations"][0])
    platform = {**row, "kind": "platform", "wall_s": 2 * row["wall_s"], "first_round_s": 3 * row["steady_p50_s"]}
    assert f"| platform | {workers} | 8 | {len(data.y_train):,} | 2 |" in table([row, platform])
    assert "2.00x" in table([row, platform])
    (line,) = targets([row, platform, {**platform, "wall_s": 4 * row["wall_s"]}, {**platform, "wall_s": row["wall_s"]}])
    assert "platform/floor wall 2.00 (missed" in line and "first round/steady p50 3.00 (missed" in line
    assert "evaluation/floor's 1.00 (met" in line


def test_rss_of_this_process_is_read():
    import os

    assert rss_bytes([os.getpid()]) > 10 * 2**20


def test_the_whole_commands_run_from_the_repository_and_find_their_workloads():
    """The commands run with the repository as their working directory: run from inside the package, its
    `platform` folder would shadow Python's own `platform` module (pydantic then fails to import)."""
    from edgeweave.platform.bench.whole import ROOT, WORKLOADS

    assert (ROOT / "pyproject.toml").is_file() and not (ROOT / "platform").exists()
    for config, plugins in WORKLOADS.values():
        assert all((ROOT / path).is_file() for path in (config, *plugins))
