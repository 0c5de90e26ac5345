"""A run checks its own invariants: each check passes on real rounds and catches the violation it names."""

from dataclasses import replace

import pytest

from edgeweave.platform.config.schema import build_config
from edgeweave.platform.data import load_dataset
from edgeweave.platform.devices.timeline import constant
from edgeweave.platform.partition import partition_data
from edgeweave.platform.run.asynchronous import AsyncServer
from edgeweave.platform.run.client import Client
from edgeweave.platform.run.invariants import InvariantBroken, RunChecks, check_in_flight, check_timeline
from edgeweave.platform.run.servers import build_server
from tests.helpers import tiny_raw

# Changes every 0.3 s (not a binary fraction), a deadline that cuts some devices, rounds that do not start at 0.
SHIFTING = {"name": "markov", "period": 0.3, "p_off": 0.1, "p_on": 0.6, "p_slow": 0.4, "p_fast": 0.4, "slow": 0.3}


def parts(cfg):
    data = load_dataset(cfg.data, cfg.seed)
    return data, partition_data(cfg.partition, data.y_train, cfg.devices.count, cfg.seed)


def one_round(tmp_path, **devices):
    cfg = build_config(
        tiny_raw(
            tmp_path,
            devices={"count": 8, "per_round": 6, "flops_per_second": 3e7, "resources": SHIFTING, **devices},
            training={"rounds": 2, "local_steps": 4},
        )
    )
    data, part = parts(cfg)
    server, client = build_server(cfg, data, part), Client(cfg, data, part)
    server.clock = 13.241086654122158
    server.checks = RunChecks(server.clock, 0.0, cfg.training.batch_size)
    jobs, _ = server.plan(0)
    _, _, work, _ = server._pending
    metrics, records = server.update([client.run(0, server.weights, jobs)])
    return server, metrics, records, work


@pytest.mark.parametrize("stragglers, deadline", [("wait", None), ("partial", 2.7), ("drop", 2.7)])
def test_real_rounds_keep_every_invariant(tmp_path, stragglers, deadline):
    server, metrics, records, work = one_round(tmp_path, stragglers=stragglers, deadline=deadline)
    assert metrics["virtual_start"] == 13.241086654122158 and server.checks.clock == metrics["virtual_time"]
    assert len(records) == len(work.timelines) == 6


def test_a_step_at_a_speed_the_resource_model_did_not_give_is_caught(tmp_path):
    server, _, records, work = one_round(tmp_path)
    i = next(i for i, tl in enumerate(work.timelines) if tl.steps and not tl.lost)
    tl = work.timelines[i]
    wrong = replace(tl, work_speed=tl.work_speed * 1.5)
    with pytest.raises(
        InvariantBroken,
        match=rf"'steps at the speeds the resource model gave' broken at round 0, "
        rf"device {records[i]['device']}",
    ):
        check_timeline(wrong, server.view.segment(records[i]["device"], 0), 0, records[i]["device"])
    late = replace(tl, finish=tl.finish + 0.1)
    with pytest.raises(InvariantBroken, match="'finish = start \\+ transfers \\+ steps'"):
        check_timeline(late, server.view.segment(records[i]["device"], 0), 0, records[i]["device"])
    with pytest.raises(InvariantBroken, match="steps at the speeds"):
        check_timeline(tl, constant(1.0), 0, records[i]["device"])


def test_books_that_do_not_add_up_are_caught(tmp_path):
    server, metrics, records, work = one_round(tmp_path)
    segments = [server.view.segment(r["device"], 0) for r in records]
    start = metrics["virtual_start"]

    def check(m=metrics, recs=records):
        RunChecks(start, 0.0, work.batch).step(0, m, recs, work.timelines, segments, work.shard)

    check()
    with pytest.raises(InvariantBroken, match="'records add up to the metrics' broken at round 0: the devices' FLOPs"):
        check(m={**metrics, "flops": metrics["flops"] * 1.01})
    kept = next(r for r in records if not r["dropped"])
    with pytest.raises(
        InvariantBroken,
        match=f"'records are what was trained' broken at round 0, device "
        f"{kept['device']}: it trained .* of {kept['samples'] + 3} samples",
    ):
        check(recs=[{**r, "samples": r["samples"] + 3} if r is kept else r for r in records])
    with pytest.raises(
        InvariantBroken,
        match=f"'records add up to the metrics' broken at round 0, device {kept['device']}: its record says",
    ):
        check(recs=[{**r, "flops": r["flops"] * 1.5} if r is kept else r for r in records])
    with pytest.raises(
        InvariantBroken, match=f"'records are what was trained' broken at round 0, device {kept['device']}"
    ):
        check(recs=[{**r, "steps": r["steps"] + 1} if r is kept else r for r in records])
    with pytest.raises(InvariantBroken, match="'the clock never goes back' broken at round 0: the step runs from"):
        RunChecks(start + 1.0, 0.0, work.batch).step(0, metrics, records, work.timelines, segments, work.shard)


def test_async_in_flight_and_arrivals_are_checked(tmp_path):
    with pytest.raises(InvariantBroken, match="6 devices in flight, aggregation.concurrency is 5"):
        check_in_flight(3, 6, 5)
    cfg = build_config(
        tiny_raw(
            tmp_path,
            devices={"count": 12, "per_round": 4, "flops_per_second": 2e8, "resources": SHIFTING},
            training={"rounds": 4, "local_steps": 3},
            aggregation={"mode": "async", "buffer": 3, "concurrency": 5},
        )
    )
    data, part = parts(cfg)
    server, client = build_server(cfg, data, part), Client(cfg, data, part)
    assert isinstance(server, AsyncServer)
    for step in range(4):  # every step checks its books
        units = server.plan_units(step)
        server.fold([[client.run(u.version, u.weights, u.jobs, server.shared)] for u in units])
    flight = server.flights[0]
    server._arrive(4, flight, flight.finish)
    with pytest.raises(
        InvariantBroken, match=f"'each arrives once per dispatch' broken at step 4, device {flight.job.device}"
    ):
        server._arrive(4, flight, flight.finish)
    with pytest.raises(InvariantBroken, match="'the clock never goes back' broken at step 4"):
        server._arrive(4, server.flights[1], server.flights[1].finish + 1.0)
