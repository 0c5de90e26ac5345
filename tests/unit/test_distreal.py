"""DISTREAL: choosing from a front, per-mini-batch dropout masks, and the DSE's front."""

import numpy as np
import pytest

from edgeweave.platform.config import build_config
from edgeweave.platform.data import load_dataset
from edgeweave.platform.dse import Explorer, explore
from edgeweave.platform.errors import UserError
from edgeweave.platform.front import Front, load_front, non_dominated, schedule
from edgeweave.platform.models import build_model
from edgeweave.platform.seeding import rng
from edgeweave.platform.submodel import Slicer, dropout_plan
from tests.helpers import tiny_raw

# Three front points: cost 100, 50, 10 FLOPs per mini-batch; the costliest converges best.
FRONT = Front(np.array([[0.0, 0.0], [0.5, 0.0], [0.75, 0.75]]), np.array([100.0, 50.0, 10.0]),
              np.array([1.0, 2.0, 3.0]), {})


def test_without_a_deadline_the_best_vector_every_time():
    assert list(schedule(FRONT, 4, speed=1.0, seconds=None)) == [2, 2, 2, 2]  # index 2: cost 100, sorted


def test_the_best_vector_that_fits_the_time_left():
    # 4 mini-batches, 260 s at 1 FLOP/s: 65 s each affords cost 50; then (260-50)/3 = 70 -> 50 again...
    picked = schedule(FRONT, 4, speed=1.0, seconds=260.0)
    assert [FRONT.flops_per_batch[i] for i in picked] == [50, 50, 50, 100]
    # Twice the speed affords the best vector throughout.
    assert [FRONT.flops_per_batch[i] for i in schedule(FRONT, 4, speed=2.0, seconds=260.0)] == [100] * 4


def test_stops_early_when_even_the_cheapest_does_not_fit():
    picked = schedule(FRONT, 10, speed=1.0, seconds=35.0)
    assert len(picked) == 3 and all(FRONT.flops_per_batch[i] == 10 for i in picked)
    assert len(schedule(FRONT, 3, speed=1.0, seconds=5.0)) == 0


def test_front_is_sorted_by_cost():
    assert list(FRONT.flops_per_batch) == [10, 50, 100]
    assert list(FRONT.score) == [3, 2, 1]


def test_non_dominated_by_hand():
    cost = np.array([1, 2, 3, 2, 4])
    score = np.array([5, 3, 1, 4, 1])
    assert sorted(non_dominated(cost, score).tolist()) == [0, 1, 2]


def test_dropout_masks_have_the_vectors_rates_and_repeat_from_the_seed(tmp_path):
    cfg = build_config({**tiny_raw(tmp_path), "model": {"name": "vgg11", "width": 0.25}})
    slicer = Slicer(build_model(cfg.model, (3, 32, 32), 10, 0), (3, 32, 32))
    d = [0.5, 0.25] + [0.0] * (slicer.num_convs - 2)
    a = dropout_plan(slicer, d, rng(0, 3, 7, 300))
    b = dropout_plan(slicer, d, rng(0, 3, 7, 300))
    c = dropout_plan(slicer, d, rng(0, 3, 7, 301))  # the next mini-batch
    assert all(np.array_equal(x, y) for x, y in zip(a.keep, b.keep))
    assert not np.array_equal(a.keep[0], c.keep[0])
    assert len(a.keep[0]) == int(np.ceil(0.5 * slicer.widths[0]))
    assert len(a.keep[1]) == int(np.ceil(0.75 * slicer.widths[1]))
    assert len(a.keep[2]) == slicer.widths[2]
    assert all(len(k) == w for k, w in zip(a.keep[slicer.num_convs:], slicer.widths[slicer.num_convs:]))
    # Over many mini-batches every filter of a dropped layer gets trained.
    seen = np.zeros(slicer.widths[0], bool)
    for k in range(40):
        seen[dropout_plan(slicer, d, rng(0, 3, 7, 300 + k)).keep[0]] = True
    assert seen.all()
    with pytest.raises(ValueError, match="one per conv layer"):
        dropout_plan(slicer, [0.5], rng(0, 0, 0))


def tiny_distreal(tmp_path, front_path):
    raw = tiny_raw(tmp_path, model={"width": 0.125}, training={"batch_size": 16})
    raw["strategy"] = {"name": "distreal", "front": str(front_path), "population": 6, "generations": 3,
                       "dse_steps": 4, "dse_seeds": 1, "grid_step": 0.25, "grid_max": 0.5}
    return raw


def test_dse_on_a_tiny_model_returns_a_non_dominated_repeatable_front(tmp_path):
    cfg = build_config(tiny_distreal(tmp_path, tmp_path / "f.json"), check_strategy=False)
    data = load_dataset(cfg.data, cfg.seed)
    front, evaluated = explore(Explorer(cfg, data))
    assert (0.0, 0.0) in {tuple(e["vector"]) for e in evaluated}  # no dropout is always tried
    cost = np.array([e["flops_per_batch"] for e in evaluated])
    score = np.array([e["score"] for e in evaluated])
    for f, s in zip(front.flops_per_batch, front.score):
        assert not ((cost <= f) & (score <= s) & ((cost < f) | (score < s))).any()
    assert set(np.unique(front.vectors)) <= {0.0, 0.25, 0.5}
    assert front.flops_per_batch[-1] == cost.max()  # the full model costs most
    front.save(tmp_path / "f.json", evaluated)
    again = load_front(tmp_path / "f.json")
    np.testing.assert_array_equal(again.vectors, front.vectors)
    np.testing.assert_allclose(again.score, front.score)
    second, _ = explore(Explorer(cfg, data))
    np.testing.assert_allclose(second.score, front.score)


def test_a_missing_or_foreign_front_is_a_clear_error(tmp_path):
    with pytest.raises(UserError, match=r"strategy.front = '.*none.json': no such file; make it with `edgeweave dse"):
        build_config(tiny_distreal(tmp_path, tmp_path / "none.json"))
    Front(np.zeros((1, 2)), np.ones(1), np.ones(1), {"model": "vgg11", "batch_size": 16}).save(tmp_path / "v.json")
    with pytest.raises(UserError, match="made for model 'vgg11'"):
        build_config(tiny_distreal(tmp_path, tmp_path / "v.json"))
    (tmp_path / "bad.json").write_text("{}")
    with pytest.raises(UserError, match="not a front file"):
        build_config(tiny_distreal(tmp_path, tmp_path / "bad.json"))


def test_devices_choose_alone_and_the_driver_replays_them_exactly(tmp_path):
    from edgeweave.platform.client import Client
    from edgeweave.platform.partition import partition_data
    from edgeweave.platform.server import Server

    front_path = tmp_path / "hand.json"
    Front(np.array([[0.0, 0.0], [0.5, 0.5], [0.75, 0.75]]), np.array([4e6, 1.2e6, 4e5]), np.array([1.0, 2.0, 3.0]),
          {"model": "cnn", "batch_size": 16}).save(front_path)
    raw = tiny_distreal(tmp_path, front_path)
    raw["devices"] = {"count": 9, "per_round": 9, "flops_per_second": 4e5, "deadline": 25.0,
                      "stragglers": "partial"}
    cfg = build_config(raw)
    data = load_dataset(cfg.data, cfg.seed)
    part = partition_data(cfg.partition, data.y_train, cfg.devices.count, cfg.seed)
    server, client = Server(cfg, data, part), Client(cfg, data, part)
    jobs, planned = server.plan(0)
    assert any(j.steps is not None for j in jobs)  # someone stopped early
    metrics, records = server.update([client.run(0, server.weights, jobs)])
    done = {r["device"]: r for r in records}
    for job, samples in zip(jobs, planned):
        assert done[job.device]["samples"] == samples
        picked = server.strategy.choices(server.view, 0, job.__class__(job.device), server.steps_of(
            job.__class__(job.device)), 4.0 * server.layout.size)
        assert done[job.device]["steps"] == len(picked)
    assert metrics["virtual_time"] <= 25.0 + 1e-6
    assert len({r["flops"] / max(r["samples"], 1) for r in records if r["samples"]}) > 1  # devices differ
