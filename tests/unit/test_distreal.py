"""DISTREAL: choosing from a front, per-mini-batch dropout masks, and the DSE's front."""

import json
import pickle

import numpy as np
import pytest

from edgeweave.platform.config.schema import build_config
from edgeweave.platform.core.errors import UserError
from edgeweave.platform.core.seeding import rng
from edgeweave.platform.data import load_dataset
from edgeweave.platform.devices.timeline import constant, device_timeline
from edgeweave.platform.methods.front import Front, front_rule, load_front, made_for, non_dominated
from edgeweave.platform.models import build_model
from edgeweave.platform.search.dse import Explorer, explore
from edgeweave.platform.train.plans import dropout_plan
from edgeweave.platform.train.submodel import Slicer
from tests.helpers import tiny_raw

# Three front points: cost 100, 50, 10 FLOPs per mini-batch; the costliest converges best.
FRONT = Front(
    np.array([[0.0, 0.0], [0.5, 0.0], [0.75, 0.75]]), np.array([100.0, 50.0, 10.0]), np.array([1.0, 2.0, 3.0]), {}
)


def schedule(front, steps, speed, seconds):
    """The vectors a device at a constant speed picks for `steps` full mini-batches (no transfers)."""
    rule = front_rule(front, np.full(steps, 10), 10)
    return device_timeline(constant(speed), 0.0, 0.0, steps, rule, seconds, "wait").choices


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
    assert all(len(k) == w for k, w in zip(a.keep[slicer.num_convs :], slicer.widths[slicer.num_convs :]))
    # Over many mini-batches every filter of a dropped layer gets trained.
    seen = np.zeros(slicer.widths[0], bool)
    for k in range(40):
        seen[dropout_plan(slicer, d, rng(0, 3, 7, 300 + k)).keep[0]] = True
    assert seen.all()
    with pytest.raises(ValueError, match="one per conv layer"):
        dropout_plan(slicer, [0.5], rng(0, 0, 0))


def tiny_distreal(tmp_path, front_path):
    raw = tiny_raw(tmp_path, model={"width": 0.125}, training={"batch_size": 16})
    raw["strategy"] = {
        "name": "distreal",
        "front": str(front_path),
        "population": 6,
        "generations": 3,
        "dse_steps": 4,
        "dse_seeds": 1,
        "grid_step": 0.25,
        "grid_max": 0.5,
    }
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
    cfg = build_config(tiny_distreal(tmp_path, tmp_path / "v.json"), check_strategy=False)
    real_front(cfg, load_dataset(cfg.data, cfg.seed), tmp_path / "v.json")
    doc = json.loads((tmp_path / "v.json").read_text())
    (tmp_path / "v.json").write_text(json.dumps({**doc, "model": "vgg11"}))
    with pytest.raises(
        UserError,
        match=r"^strategy.front = '.*v.json': made for model.name = 'vgg11', but this "
        r"config has 'cnn'; make a front for this config with `edgeweave dse",
    ):
        build_config(tiny_distreal(tmp_path, tmp_path / "v.json"))
    (tmp_path / "bad.json").write_text("{}")
    with pytest.raises(UserError, match="not a front file"):
        build_config(tiny_distreal(tmp_path, tmp_path / "bad.json"))


@pytest.mark.parametrize("options", [{}, {"choose": "round"}, {"scale_kept": True}], ids=str)
def test_devices_choose_alone_and_the_driver_replays_them_exactly(tmp_path, options):
    from edgeweave.platform.partition import partition_data
    from edgeweave.platform.run.client import Client
    from edgeweave.platform.run.server import Server

    raw = tiny_distreal(tmp_path, tmp_path / "real.json")
    raw["strategy"].update(options)
    raw["devices"] = {"count": 9, "per_round": 9, "flops_per_second": 1.5e5, "deadline": 25.0, "stragglers": "partial"}
    probe = build_config(raw, check_strategy=False)
    data = load_dataset(probe.data, probe.seed)
    real_front(probe, data, tmp_path / "real.json", scale_kept=options.get("scale_kept", False))
    cfg = build_config(raw)
    part = partition_data(cfg.partition, data.y_train, cfg.devices.count, cfg.seed)
    server, client = Server(cfg, data, part), Client(cfg, data, part)
    jobs, planned = server.plan(0)
    assert any(j.steps is not None for j in jobs)  # someone stopped early
    metrics, records = server.update([client.run(0, server.weights, jobs)])
    done = {r["device"]: r for r in records}
    for job, samples in zip(jobs, planned):
        assert done[job.device]["samples"] == samples
        assert done[job.device]["steps"] == server.rules.device_round(server.facts, 0, job).steps
    assert metrics["virtual_time"] <= 25.0 + 1e-6
    assert len({r["flops"] / max(r["samples"], 1) for r in records if r["samples"]}) > 1  # devices differ


DENSE = ((0.75, 0.75), (0.5, 0.75), (0.75, 0.5), (0.25, 0.75), (0.5, 0.5), (0.25, 0.5), (0.25, 0.25), (0.0, 0.0))


def real_front(cfg, data, path, vectors=DENSE, scale_kept=False):
    """A front for `cfg` on `data` whose costs are this model's exact FLOPs (scores by hand: dearer is better)."""
    slicer = Slicer(build_model(cfg.model, data.input_shape, data.num_classes, cfg.seed), data.input_shape)
    b = cfg.training.batch_size
    costs = [slicer.flops(dropout_plan(slicer, v, np.random.default_rng(0))) * b for v in vectors]
    meta = {**made_for(cfg, data.input_shape, data.num_classes), **({"scale_kept": True} if scale_kept else {})}
    Front(np.array(vectors, np.float64), np.array(costs, np.float64), np.arange(len(vectors), 0, -1.0), meta).save(path)
    return path


def test_the_server_books_exactly_the_flops_and_time_the_devices_trained(tmp_path, monkeypatch):
    """For every deadline and speed (devices that stop early included), booked FLOPs = trained FLOPs."""
    from edgeweave.platform.partition import partition_data
    from edgeweave.platform.run.client import Client
    from edgeweave.platform.run.server import Server
    from edgeweave.platform.train import sliced_training

    raw = tiny_distreal(tmp_path, tmp_path / "real.json")
    probe = build_config(raw, check_strategy=False)
    data = load_dataset(probe.data, probe.seed)
    part = partition_data(probe.partition, data.y_train, 9, probe.seed)
    real_front(probe, data, tmp_path / "real.json")
    real_order, real_train = sliced_training.batch_order, Client.train_steps
    stopped_early = finished = 0
    for speed, deadline, stragglers in [
        (2e5, 2.0, "wait"),
        (2e5, 4.0, "drop"),
        (6e5, 1.0, "partial"),
        (6e5, 2.0, "wait"),
        (2e5, 8.0, "partial"),
        (6e5, None, "wait"),
    ]:
        raw["devices"] = {
            "count": 9,
            "per_round": 9,
            "flops_per_second": speed,
            "deadline": deadline,
            "stragglers": stragglers if deadline else "wait",
        }
        cfg = build_config(raw)
        server, client = Server(cfg, data, part), Client(cfg, data, part)
        trained = {}

        def spy(self, round_, job, global_weights, partial, plan_for_step, steps=None, *, trained=trained, **kwargs):
            plans, sizes = [], []

            def order(n, s, g):
                batches = real_order(n, s, g)
                sizes.extend(len(b) for b in batches)
                return batches

            def recording(k):
                plans.append(plan_for_step(k))
                return plans[-1]

            monkeypatch.setattr(sliced_training, "batch_order", order)
            real_train(self, round_, job, global_weights, partial, recording, steps=steps, **kwargs)
            monkeypatch.setattr(sliced_training, "batch_order", real_order)
            trained[job.device] = sum(self.slicer.flops(p) * n for p, n in zip(plans, sizes))

        monkeypatch.setattr(Client, "train_steps", spy)
        jobs, _ = server.plan(0)
        _, records = server.update([client.run(0, server.weights, jobs)])
        bandwidth = {t.name: t.bandwidth for t in cfg.devices.tiers}
        for r in records:
            if r["dropped"]:
                assert r["device"] not in trained
                continue
            flops = trained[r["device"]]
            full = server.facts.steps(jobs[0].__class__(r["device"]))
            stopped_early += r["steps"] < full
            finished += r["steps"] == full
            assert r["flops"] == pytest.approx(flops, rel=1e-9), (speed, deadline, r)
            comm = 2 * 4.0 * server.layout.size / bandwidth[r["tier"]]
            assert r["finish"] == pytest.approx(comm + flops / r["speed"], rel=1e-9), (speed, deadline, r)
            if deadline is not None:
                assert r["finish"] <= deadline * (1 + 1e-9)
    assert stopped_early and finished


def test_a_front_for_8x8_data_is_refused_for_32x32_data(tmp_path):
    from edgeweave.platform.partition import partition_data
    from edgeweave.platform.run.server import Server, check_with_data

    digits = build_config(tiny_distreal(tmp_path, tmp_path / "f.json"), check_strategy=False)
    real_front(digits, load_dataset(digits.data, digits.seed), tmp_path / "f.json")  # made for (1, 8, 8)
    raw = tiny_distreal(tmp_path, tmp_path / "f.json")
    raw["data"] = {"name": "synthetic", "image_size": 32, "channels": 1, "train_samples": 60, "test_samples": 20}
    cfg = build_config(raw)  # nothing at config time says the shape: it is checked once the data is loaded
    data = load_dataset(cfg.data, cfg.seed)
    line = (
        r"^strategy.front = '.*f.json': made for input shape \[1, 8, 8\], but data 'synthetic' has "
        r"\[1, 32, 32\]; make a front for this config with `edgeweave dse CONFIG`$"
    )
    part = partition_data(cfg.partition, data.y_train, cfg.devices.count, cfg.seed)
    with pytest.raises(UserError, match=line):  # a run never books a cost made for other data
        Server(cfg, data, part).plan(0)
    with pytest.raises(UserError, match=line):  # and the check before the run says so
        check_with_data(cfg, data)


def test_a_front_for_another_model_width_is_refused(tmp_path):
    narrow = build_config(tiny_distreal(tmp_path, tmp_path / "f.json"), check_strategy=False)  # width 0.125
    real_front(narrow, load_dataset(narrow.data, narrow.seed), tmp_path / "f.json")
    wide = tiny_distreal(tmp_path, tmp_path / "f.json")
    wide["model"] = {"name": "cnn", "width": 0.25}
    with pytest.raises(
        UserError,
        match=r"^strategy.front = '.*f.json': made for model.width = 0.125, but this "
        r"config has 0.25; make a front for this config with `edgeweave dse",
    ):
        build_config(wide)
    wide["model"], wide["training"]["batch_size"] = {"name": "cnn", "width": 0.125}, 32
    with pytest.raises(UserError, match=r"made for training.batch_size = 16, but this config has 32"):
        build_config(wide)


def test_a_front_that_does_not_say_what_it_was_made_for_is_refused(tmp_path):
    Front(np.zeros((1, 2)), np.ones(1), np.ones(1), {"model": "cnn", "batch_size": 16}).save(tmp_path / "old.json")
    with pytest.raises(
        UserError,
        match=r"^strategy.front = '.*old.json': does not record what it was made for "
        r"\(model_params, input_shape, num_classes missing; .*\); make it again "
        r"with `edgeweave dse CONFIG --force`$",
    ):
        build_config(tiny_distreal(tmp_path, tmp_path / "old.json"))


def test_the_run_uses_the_front_it_read_with_its_config_not_the_disk(tmp_path):
    """Workers get the config pickled, with the front's bytes: a file changed or gone later changes nothing."""
    from edgeweave.platform.partition import partition_data
    from edgeweave.platform.run.client import Client
    from edgeweave.platform.run.server import Server

    raw = tiny_distreal(tmp_path, tmp_path / "f.json")
    raw["devices"] = {"count": 4, "per_round": 4, "flops_per_second": 1e5, "deadline": 25.0}
    probe = build_config(raw, check_strategy=False)
    data = load_dataset(probe.data, probe.seed)
    real_front(probe, data, tmp_path / "f.json")
    cfg = build_config(raw)
    (tmp_path / "f.json").unlink()
    worker_cfg = pickle.loads(pickle.dumps(cfg))  # as a Ray worker receives it
    part = partition_data(cfg.partition, data.y_train, cfg.devices.count, cfg.seed)
    server, client = Server(cfg, data, part), Client(worker_cfg, data, part)
    jobs, _ = server.plan(0)
    _, records = server.update([client.run(0, server.weights, jobs)])
    assert sum(r["steps"] for r in records) > 0


def test_dse_refuses_to_overwrite_a_front_unless_forced_or_sent_elsewhere(tmp_path, capsys):
    import yaml

    from edgeweave.cli import main

    raw = tiny_distreal(tmp_path, tmp_path / "fronts" / "f.json")
    raw["strategy"].update(population=4, generations=1, dse_steps=2, grid_step=0.5, grid_max=0.5)
    config = tmp_path / "exp.yaml"
    config.write_text(yaml.safe_dump(raw))
    (tmp_path / "fronts").mkdir()
    (tmp_path / "fronts" / "f.json").write_text("the shipped front")
    assert main(["dse", str(config)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith(
        f"error: strategy.front = '{tmp_path / 'fronts' / 'f.json'}': a front "
        "is already there; name another file with --out, or give --force"
    )
    assert (tmp_path / "fronts" / "f.json").read_text() == "the shipped front"
    assert main(["dse", str(config), "--out", str(tmp_path / "fronts" / "f.json")]) == 2  # the same file again
    assert main(["dse", str(config), "--out", str(tmp_path / "fronts" / "g.json")]) == 0
    assert main(["dse", str(config), "--force"]) == 0
    assert load_front(tmp_path / "fronts" / "f.json").meta["input_shape"] == [1, 8, 8]
    assert sorted(p.name for p in (tmp_path / "fronts").iterdir()) == [
        "f.csv",
        "f.json",
        "f.png",
        "g.csv",
        "g.json",
        "g.png",
    ]  # written beside, renamed: nothing left over


def test_per_mini_batch_choice_reacts_to_a_slowdown_and_one_choice_per_round_does_not():
    """Speed 1 FLOP/s until 100 s, then 0.2; 4 mini-batches, 260 s. Per mini-batch: 50, 50 (ends
    at 100 s), then the slowdown makes only the 10-FLOP vector fit: 10, 10, all four done by
    200 s. One vector per round keeps 50, which no longer fits after the slowdown: it stops at 2."""

    def slows(t):
        return (True, 1.0, 100.0) if t < 100.0 else (True, 0.2, np.inf)

    batch = front_rule(FRONT, np.full(4, 10), 10)
    per_batch = device_timeline(slows, 0.0, 0.0, 4, batch, 260.0, "wait")
    assert [FRONT.flops_per_batch[i] for i in per_batch.choices] == [50, 50, 10, 10]
    assert per_batch.finish == pytest.approx(200.0) and per_batch.stopped is None
    per_round = device_timeline(
        slows, 0.0, 0.0, 4, front_rule(FRONT, np.full(4, 10), 10, per_round=True), 260.0, "wait"
    )
    assert [FRONT.flops_per_batch[i] for i in per_round.choices] == [50, 50]
    assert per_round.stopped == "own choice"


def test_a_uniform_only_search_evaluates_each_uniform_rate_once(tmp_path):
    raw = tiny_distreal(tmp_path, tmp_path / "f.json")
    raw["strategy"]["uniform_only"] = True
    cfg = build_config(raw, check_strategy=False)
    front, evaluated = explore(Explorer(cfg, load_dataset(cfg.data, cfg.seed)))
    assert sorted(e["vector"][0] for e in evaluated) == [0.0, 0.25, 0.5]  # grid_step 0.25 up to grid_max 0.5
    assert all(len(set(e["vector"])) == 1 for e in evaluated)
    assert all(len(set(v)) == 1 for v in front.vectors.tolist())


def test_the_search_can_score_from_a_warm_start(tmp_path):
    raw = tiny_distreal(tmp_path, tmp_path / "f.json")
    cold_cfg = build_config(raw, check_strategy=False)
    data = load_dataset(cold_cfg.data, cold_cfg.seed)
    raw["strategy"]["dse_warm_rounds"] = 2
    cold, warm = Explorer(cold_cfg, data), Explorer(build_config(raw, check_strategy=False), data)
    assert not np.array_equal(warm.start, cold.start)
    assert warm.evaluate((0.0, 0.0))[1] < cold.evaluate((0.0, 0.0))[1]  # trained weights reach a lower loss
    assert "after 2 FedAvg rounds" in warm.front()[0].meta["score"]
    assert "from the initial weights" in cold.front()[0].meta["score"]


def test_a_front_searched_without_scaling_is_refused_for_scaled_training_and_back(tmp_path):
    """The scores rank vectors for one way of training; the other way needs its own search."""
    plain = build_config(tiny_distreal(tmp_path, tmp_path / "f.json"), check_strategy=False)
    real_front(plain, load_dataset(plain.data, plain.seed), tmp_path / "f.json")  # no scale_kept recorded: false
    scaled = tiny_distreal(tmp_path, tmp_path / "f.json")
    scaled["strategy"]["scale_kept"] = True
    with pytest.raises(
        UserError,
        match=r"^strategy.front = '.*f.json': searched with scale_kept false, but this "
        r"config trains with strategy.scale_kept = true; .*`edgeweave dse CONFIG`$",
    ):
        build_config(scaled)
    doc = json.loads((tmp_path / "f.json").read_text())
    (tmp_path / "f.json").write_text(json.dumps({**doc, "scale_kept": True}))
    assert build_config(scaled).strategy.scale_kept
    with pytest.raises(
        UserError, match="searched with scale_kept true, but this config trains with strategy.scale_kept = false"
    ):
        build_config(tiny_distreal(tmp_path, tmp_path / "f.json"))
