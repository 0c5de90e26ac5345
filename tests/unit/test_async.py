"""Buffered asynchronous aggregation: the event loop's order, the staleness-weighted fold, determinism, resume,
and every method either running or refusing in one line."""

import numpy as np
import pytest

from edgeweave.platform.config.schema import build_config
from edgeweave.platform.core.errors import UserError
from edgeweave.platform.data import load_dataset
from edgeweave.platform.partition import partition_data
from edgeweave.platform.run.asynchronous import AsyncServer, staleness_weight
from edgeweave.platform.run.checkpoint import load_checkpoint, save_checkpoint
from edgeweave.platform.run.client import Client
from edgeweave.platform.run.servers import build_server
from edgeweave.platform.train.aggregate import average, combine
from tests.helpers import tiny_raw

MARKOV = {"name": "markov", "period": 5, "p_off": 0.2, "p_on": 0.5, "p_slow": 0.3, "p_fast": 0.4, "slow": 0.3}


def async_raw(tmp_path, aggregation=None, devices=None, training=None, **sections):
    """Digits on 12 devices whose availability and speed change every few virtual seconds; 5 train at once
    and every 3 arrivals make a server step."""
    return tiny_raw(
        tmp_path,
        devices={"count": 12, "per_round": 4, "flops_per_second": 2e8, "resources": MARKOV, **(devices or {})},
        training={"rounds": 6, "local_steps": 3, **(training or {})},
        **sections,
        aggregation={"mode": "async", "buffer": 3, "concurrency": 5, **(aggregation or {})},
    )


def parts(cfg):
    data = load_dataset(cfg.data, cfg.seed)
    return data, partition_data(cfg.partition, data.y_train, cfg.devices.count, cfg.seed, data.owners)


def run_steps(server, client, first, last, records=None):
    for step in range(first, last):
        units = server.plan_units(step)
        metrics, recs = server.fold(
            [[client.run(u.version, u.weights, u.jobs, server.shared, server.stored(u.jobs))] for u in units]
        )
        if records is not None:
            records.append((metrics, recs))


def test_staleness_weights():
    assert staleness_weight(7, "constant", 0.5) == 1.0
    assert staleness_weight(0, "polynomial", 0.5) == 1.0
    assert staleness_weight(3, "polynomial", 0.5) == pytest.approx(0.5)
    assert staleness_weight(1, "polynomial", 1.0) == pytest.approx(0.5)


def test_events_come_in_virtual_time_order_and_each_step_folds_k_updates_of_their_own_versions(tmp_path):
    cfg = build_config(async_raw(tmp_path, training={"rounds": 8, "local_steps": 3}))
    data, part = parts(cfg)
    server, client = build_server(cfg, data, part), Client(cfg, data, part)
    assert isinstance(server, AsyncServer)
    steps = []
    run_steps(server, client, 0, 8, steps)
    ends = [(r["finish"], r["device"]) for _, recs in steps for r in recs]
    assert ends == sorted(ends)  # every update (and every loss) in (virtual time, device id) order
    for step, (metrics, recs) in enumerate(steps):
        folded = [r for r in recs if not r["dropped"]]
        assert len(folded) == metrics["devices"] == 3  # the buffer
        assert metrics["version"] == step + 1 and metrics["virtual_time"] == max(r["finish"] for r in recs)
        assert all(r["version"] <= step and r["staleness"] == step - r["version"] for r in folded)
        assert metrics["staleness_max"] == max(r["staleness"] for r in folded)
        assert metrics["staleness_mean"] == pytest.approx(np.mean([r["staleness"] for r in folded]))
        assert all(r["start"] <= r["finish"] for r in recs)
    assert any(m["staleness_max"] > 0 for m, _ in steps)  # 5 in flight, 3 folded: some arrive a version late
    starts = [(r["version"], r["device"]) for _, recs in steps for r in recs]
    assert len(starts) == len(set(starts))  # a device starts at most once per version
    # The step ended at its 3rd arrival, whose slot fills when the next step starts, on version 8.
    assert len(server.flights) == 4 and set(server.versions) == {f.version for f in server.flights} | {8}


def test_a_device_that_comes_back_online_takes_a_free_slot_then(tmp_path):
    # All 12 may train at once, but some are offline when a version begins: they start when their markov
    # state next changes (every 5 s of virtual time), not at the next arrival.
    cfg = build_config(async_raw(tmp_path, aggregation={"buffer": 12, "concurrency": 12}))
    data, part = parts(cfg)
    server, client = build_server(cfg, data, part), Client(cfg, data, part)
    steps = []
    run_steps(server, client, 0, 4, steps)
    starts = [r["start"] for _, recs in steps for r in recs]
    assert any(t % 5 == 0 and t not in [r["finish"] for _, recs in steps for r in recs] for t in starts if t > 0)
    for metrics, recs in steps:
        assert metrics["virtual_time"] == max(r["finish"] for r in recs)


def test_a_step_with_every_device_started_folds_what_arrived_at_once(tmp_path):
    # Availability drawn per model version: the devices offline now stay offline until the next version,
    # so once the others arrived the step folds them at once (no idle wait).
    raw = async_raw(
        tmp_path,
        aggregation={"buffer": 12, "concurrency": 12},
        devices={"resources": {"name": "uniform", "availability": 0.6}},
    )
    cfg = build_config(raw)
    data, part = parts(cfg)
    server, client = build_server(cfg, data, part), Client(cfg, data, part)
    steps = []
    run_steps(server, client, 0, 3, steps)
    assert all(0 < m["devices"] < 12 for m, _ in steps)
    for metrics, recs in steps:
        assert metrics["virtual_time"] == max(r["finish"] for r in recs)


def test_a_device_may_arrive_twice_in_a_step_and_both_updates_count(tmp_path):
    # A fast device that arrives from an older version starts again on the current one and can arrive
    # again before the buffer fills: two records, two staleness values, both counted.
    cfg = build_config(
        async_raw(
            tmp_path, aggregation={"buffer": 8, "concurrency": 3}, devices={"resources": {}}, training={"rounds": 6}
        )
    )
    data, part = parts(cfg)
    server, client = build_server(cfg, data, part), Client(cfg, data, part)
    steps = []
    run_steps(server, client, 0, 6, steps)
    twice = [(m, recs) for m, recs in steps if len({r["device"] for r in recs}) < len(recs)]
    assert twice
    for metrics, recs in twice:
        assert metrics["devices"] == len([r for r in recs if not r["dropped"]])
        stale = [r["staleness"] for r in recs if not r["dropped"]]
        assert metrics["staleness_mean"] == pytest.approx(np.mean(stale))
        assert all(r["staleness"] == metrics["round"] - r["version"] for r in recs if not r["dropped"])
        assert metrics["train_loss"] == pytest.approx(np.mean([r["loss"] for r in recs if not r["dropped"]]))


def test_a_step_folds_staleness_weighted_deltas_from_each_updates_own_version(tmp_path):
    cfg = build_config(async_raw(tmp_path, aggregation={"server": {"name": "plain", "lr": 0.7}, "exponent": 0.5}))
    data, part = parts(cfg)
    server, client = build_server(cfg, data, part), Client(cfg, data, part)
    run_steps(server, client, 0, 3)
    while True:  # a step whose updates trained on two versions
        units = server.plan_units(server.version)
        partials = [[client.run(u.version, u.weights, u.jobs, server.shared)] for u in units]
        if len(units) > 1:
            break
        server.fold(partials)
    before, version = server.weights.copy(), server.version
    delta, counts = 0.0, 0.0
    for unit, (p,) in zip(units, partials):
        s = (1 + version - unit.version) ** -0.5
        delta = delta + s * (p.sums - p.counts * unit.weights)
        counts = counts + p.counts
    lr = np.where(server.layout.learned(server.model), 0.7, 1.0)  # buffers (batch-norm statistics) take the mean
    expected = before + lr * delta / counts
    server.fold(partials)
    np.testing.assert_allclose(server.weights, expected, rtol=1e-5, atol=1e-6)


def test_fresh_updates_with_server_lr_1_fold_to_their_average(tmp_path):
    # Buffer = concurrency: the first step's updates all trained on version 0, so the step is FedAvg of them.
    cfg = build_config(async_raw(tmp_path, aggregation={"buffer": 4, "concurrency": 4}, devices={"resources": {}}))
    data, part = parts(cfg)
    server, client = build_server(cfg, data, part), Client(cfg, data, part)
    (unit,) = server.plan_units(0)
    partials = [client.run(unit.version, unit.weights, unit.jobs, server.shared)]
    total = combine(partials, server.layout.size)
    server.fold([partials])
    np.testing.assert_allclose(server.weights, average(unit.weights, total.sums, total.counts), rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize(
    "strategy",
    [{"name": "fedavg"}, {"name": "heterofl"}, {"name": "fjord"}, {"name": "small"}, {"name": "taskwise", "groups": 2}],
)
def test_a_resumed_async_run_equals_an_uninterrupted_one(tmp_path, strategy):
    cfg = build_config(async_raw(tmp_path, strategy=strategy))
    data, part = parts(cfg)
    whole = build_server(cfg, data, part)
    run_steps(whole, Client(cfg, data, part), 0, cfg.training.rounds)
    server, client = build_server(cfg, data, part), Client(cfg, data, part)
    run_steps(server, client, 0, 3)
    assert server.flights  # devices in flight cross the checkpoint
    save_checkpoint(tmp_path / "ck", server.snapshot(3, []), "stamp")
    again = build_server(cfg, data, part)
    again.restore(load_checkpoint(tmp_path / "ck", "stamp"))
    run_steps(again, Client(cfg, data, part), 3, cfg.training.rounds)
    np.testing.assert_array_equal(again.weights, whole.weights)
    assert again.clock == whole.clock and again.version == whole.version


def test_distreal_runs_async_with_the_deadline_as_each_devices_time_budget(tmp_path):
    from tests.unit.test_distreal import real_front

    raw = async_raw(
        tmp_path,
        strategy={"name": "distreal", "front": str(tmp_path / "front.json")},
        devices={"flops_per_second": 1.5e5, "deadline": 25.0, "stragglers": "partial"},
    )
    probe = build_config(raw, check_strategy=False)
    data, part = parts(probe)
    real_front(probe, data, tmp_path / "front.json")
    cfg = build_config(raw)
    server, client = build_server(cfg, data, part), Client(cfg, data, part)
    steps = []
    run_steps(server, client, 0, cfg.training.rounds, steps)
    records = [r for _, recs in steps for r in recs if not r["dropped"]]
    # Each device's budget runs from its own start: no update takes longer, and the budget makes devices drop filters.
    assert all(r["finish"] - r["start"] <= 25.0 + 1e-6 for r in records) and max(r["start"] for r in records) > 25
    assert any(r["saving"] > 1.01 for r in records)
    assert server.version == cfg.training.rounds and np.isfinite(server.weights).all()


@pytest.mark.parametrize(
    "change,field",
    [
        ({"strategy": {"name": "central"}}, "aggregation.mode = 'async'"),
        ({"strategy": {"name": "taskwise", "mode": "attributed", "groups": 2}}, "strategy.warmup_rounds = 2"),
        ({"devices": {"over_selection": 0.5}}, "devices.over_selection = 0.5"),
        (
            {"devices": {"round_ends": "deadline", "deadline": 5, "stragglers": "drop"}},
            "devices.round_ends = 'deadline'",
        ),
        ({"aggregation": {"concurrency": 13}}, "aggregation.concurrency = 13"),
        ({"aggregation": {"buffer": 13}}, "aggregation.buffer = 13: must be at most devices.count (12)"),
        ({"aggregation": {"mode": "later"}}, "aggregation.mode = 'later'"),
    ],
)
def test_what_async_mode_cannot_run_is_refused_in_one_line(tmp_path, change, field):
    raw = async_raw(tmp_path)
    for key, value in change.items():
        raw[key] = {**raw.get(key, {}), **value}
    with pytest.raises(UserError) as e:
        build_config(raw)
    assert str(e.value).startswith(field) and "\n" not in str(e.value)
