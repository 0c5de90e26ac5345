"""One round's pure halves, Client and Server, without Ray."""

import numpy as np
import pytest

from edgeweave.platform.data import load_dataset
from edgeweave.platform.devices.clock import batch_sizes
from edgeweave.platform.methods import Job
from edgeweave.platform.partition import partition_data
from edgeweave.platform.run.client import Client
from edgeweave.platform.run.server import Server, split_jobs


def setup(cfg):
    data = load_dataset(cfg.data, cfg.seed)
    part = partition_data(cfg.partition, data.y_train, cfg.devices.count, cfg.seed)
    return data, part


def test_fedavg_round_is_the_sample_weighted_mean_of_local_models(make_config):
    cfg = make_config(partition={"policy": "dirichlet", "alpha": 0.5, "min_samples": 5})
    data, part = setup(cfg)
    server, client = Server(cfg, data, part), Client(cfg, data, part)
    jobs, samples = server.plan(0)
    assert len(jobs) == cfg.devices.per_round
    assert samples == [len(part.shard(j.device)) for j in jobs]  # one epoch each
    start = server.weights.copy()
    expected, total = np.zeros_like(start, dtype=np.float64), 0
    for job in jobs:
        client.load(start)
        client.train(0, job)
        n = len(part.shard(job.device))
        expected += n * client.weights().astype(np.float64)
        total += n
    metrics, records = server.update([client.run(0, start, jobs)])
    np.testing.assert_allclose(server.weights, (expected / total).astype(np.float32), rtol=1e-6, atol=1e-7)
    assert [r["device"] for r in records] == [j.device for j in jobs]
    assert metrics["samples"] == total and metrics["devices"] == len(jobs)


@pytest.mark.parametrize("batched", ["auto", "off"])
def test_how_jobs_are_split_between_workers_does_not_change_the_result(make_config, batched):
    cfg = make_config(training={"batched": batched})
    data, part = setup(cfg)
    one, two = Server(cfg, data, part), Server(cfg, data, part)
    jobs, samples = one.plan(0)
    assert any(j.group is not None for j in jobs) == (batched == "auto")
    two.plan(0)
    c1, c2 = Client(cfg, data, part), Client(cfg, data, part)
    one.update([c1.run(0, one.weights, jobs)])
    first, second = split_jobs(jobs, samples, 2)
    two.update([c2.run(0, two.weights, second), c1.run(0, two.weights, first)])
    np.testing.assert_array_equal(one.weights, two.weights)


def test_sampling_is_seeded_by_round(make_config):
    cfg = make_config(devices={"count": 6, "per_round": 3})
    data, part = setup(cfg)
    server = Server(cfg, data, part)
    rounds = [tuple(j.device for j in server.plan(r)[0]) for r in range(6)]
    assert rounds == [tuple(j.device for j in Server(cfg, data, part).plan(r)[0]) for r in range(6)]
    assert len(set(rounds)) > 1


def test_central_trains_one_job_on_all_data(make_config):
    cfg = make_config(strategy={"name": "central"})
    data, part = setup(cfg)
    server, client = Server(cfg, data, part), Client(cfg, data, part)
    jobs, samples = server.plan(0)
    assert jobs == [Job(device=-1, pooled=True)] and samples == [len(data.y_train)]
    partial = client.run(0, server.weights, jobs)
    assert partial.records[0]["samples"] == len(data.y_train)
    before, _ = server.evaluate()
    server.update([partial])
    after, _ = server.evaluate()
    assert after > before + 0.3


def test_split_jobs_balances_load_and_keeps_every_job():
    jobs = [Job(d) for d in range(5)]
    shares = split_jobs(jobs, [50, 10, 40, 30, 20], 2)
    assert sorted(j.device for s in shares for j in s) == list(range(5))
    loads = [sum([50, 10, 40, 30, 20][j.device] for j in s) for s in shares]
    assert abs(loads[0] - loads[1]) <= 10


def test_partial_work_trains_exactly_what_the_clock_planned(make_config):
    cfg = make_config(
        devices={"count": 6, "per_round": 6, "flops_per_second": 2e6, "deadline": 30.0, "stragglers": "partial"}
    )
    data, part = setup(cfg)
    server, client = Server(cfg, data, part), Client(cfg, data, part)
    jobs, samples = server.plan(0)
    assert any(j.steps is not None for j in jobs)  # some devices were cut short
    metrics, records = server.update([client.run(0, server.weights, jobs)])
    trained = {r["device"]: r for r in records if not r["dropped"]}
    per_sample = server.plan_flops(None)
    for job, planned in zip(jobs, samples):
        assert trained[job.device]["samples"] == planned
        assert trained[job.device]["trained_flops"] == per_sample * planned
        assert trained[job.device]["flops"] >= per_sample * planned  # plus a mini-batch the deadline cut off
    assert metrics["virtual_time"] <= 30.0 + 1e-9


def test_fjord_cut_by_the_deadline_is_charged_the_widths_it_trained(make_config, monkeypatch):
    cfg = make_config(
        devices={"count": 6, "per_round": 6, "flops_per_second": 2e6, "deadline": 30.0, "stragglers": "partial"},
        training={"local_epochs": 2},
        strategy={"name": "fjord", "rates": {"strong": 1.0, "medium": 1.0, "weak": 1.0}},
    )
    data, part = setup(cfg)
    server, client = Server(cfg, data, part), Client(cfg, data, part)
    trained: dict[int, list[float]] = {}
    original = Client.train_steps

    def spy(self, round_, job, weights, partial, plan_for_step, steps=None, **kw):
        costs = trained.setdefault(job.device, [])
        return original(
            self,
            round_,
            job,
            weights,
            partial,
            lambda k: (costs.append(self.slicer.flops(plan := plan_for_step(k))), plan)[1],
            steps,
            **kw,
        )

    monkeypatch.setattr(Client, "train_steps", spy)
    jobs, _ = server.plan(0)
    assert any(j.steps is not None for j in jobs)  # some devices were cut short
    _, records = server.update([client.run(0, server.weights, jobs)])
    for r in records:
        if r["dropped"]:
            continue
        sizes = batch_sizes(len(part.shard(r["device"])), cfg.training.batch_size, r["steps"])
        assert len(trained[r["device"]]) == r["steps"]
        assert r["trained_flops"] == pytest.approx(float(np.dot(trained[r["device"]], sizes)), rel=1e-12)
        assert r["partial"] == (r["steps"] < server.facts.steps(Job(r["device"])))
    assert any(r["partial"] for r in records)


def test_a_round_nobody_can_join_keeps_the_weights_and_moves_the_clock(make_config):
    cfg = make_config(
        devices={"count": 6, "per_round": 4, "idle_wait": 30.0, "resources": {"name": "uniform", "availability": 0.01}}
    )
    data, part = setup(cfg)
    server = Server(cfg, data, part)
    before = server.weights.copy()
    jobs, samples = server.plan(0)
    assert jobs == [] and samples == []
    metrics, records = server.update([])
    np.testing.assert_array_equal(server.weights, before)
    assert records == [] and metrics["devices"] == 0 and metrics["samples"] == 0 and metrics["train_loss"] is None
    assert metrics["virtual_time"] == 30.0 and server.clock == 30.0
