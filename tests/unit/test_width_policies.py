"""Each width policy's channel choices from a seed, and their training on real slices."""

import numpy as np
import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from edgeweave.platform.core.errors import UserError
from edgeweave.platform.data import load_dataset
from edgeweave.platform.methods import Job
from edgeweave.platform.models.flat import FlatLayout
from edgeweave.platform.partition import partition_data
from edgeweave.platform.run.client import Client
from edgeweave.platform.run.server import Server
from edgeweave.platform.train.plans import nested, uniform_plan
from edgeweave.platform.train.sgd import SGDSettings
from edgeweave.platform.train.sliced_training import SubModels, train_per_batch
from edgeweave.platform.train.training import train_local

RATES = {"strong": 1.0, "medium": 0.5, "weak": 0.25}


def setup(make_config, strategy, devices=None, **params):
    cfg = make_config(
        strategy={"name": strategy, "rates": RATES, **params}, devices={"count": 9, "per_round": 9, **(devices or {})}
    )
    data = load_dataset(cfg.data, cfg.seed)
    part = partition_data(cfg.partition, data.y_train, cfg.devices.count, cfg.seed)
    return cfg, Server(cfg, data, part), Client(cfg, data, part)


def first_layer(server, round_, job):
    return server.rules.job_plan(server.facts, round_, job).keep[0]


def test_rates_follow_tiers(make_config):
    _, server, _ = setup(make_config, "heterofl")
    jobs, _ = server.plan(0)
    for j in jobs:
        assert j.rate == RATES[server.view.tier_name(j.device)]


def test_heterofl_is_nested_and_fixed(make_config):
    _, server, _ = setup(make_config, "heterofl")
    width = server.slicer.widths[0]
    for r in (0, 5):
        assert list(first_layer(server, r, Job(1, rate=0.5))) == list(range(width // 2))


def test_fd_is_random_per_device_and_round_and_repeats(make_config):
    _, server, _ = setup(make_config, "fd")
    a = first_layer(server, 0, Job(1, rate=0.5))
    assert len(a) == server.slicer.widths[0] // 2
    assert np.array_equal(a, first_layer(server, 0, Job(1, rate=0.5)))
    assert not np.array_equal(a, first_layer(server, 1, Job(1, rate=0.5)))
    assert not np.array_equal(a, first_layer(server, 0, Job(2, rate=0.5)))


def test_fedrolex_window_rolls_each_round(make_config):
    _, server, _ = setup(make_config, "fedrolex")
    width = server.slicer.widths[0]
    k = width // 4
    for r in (0, 1, width - 1):
        expected = sorted((r + np.arange(k)) % width)
        assert list(first_layer(server, r, Job(3, rate=0.25))) == expected


def test_fjord_draws_ordered_widths_up_to_p_max(make_config):
    _, server, _ = setup(make_config, "fjord")
    rates = server.rules.step_rates(0, Job(1, rate=0.5), 200)
    assert set(rates.tolist()) == {0.25, 0.5}
    assert np.array_equal(rates, server.rules.step_rates(0, Job(1, rate=0.5), 200))
    full = server.rules.step_rates(0, Job(1, rate=1.0), 400)
    assert set(full.tolist()) == {0.25, 0.5, 0.75, 1.0}
    # Each mini-batch costs its own width's FLOPs: p_max 0.5 mixes 0.25 and 0.5, so the job's
    # mean lies strictly between the two (charging p_max for every step would not).
    width_flops = {
        r: server.plan_flops(uniform_plan(server.slicer, lambda i, w, r=r: nested(w, r))) for r in (0.25, 0.5)
    }
    flops = server.rules.sample_flops(server.facts, 0, Job(1, rate=0.5), 200)
    np.testing.assert_array_equal(flops, [width_flops[r] for r in rates])
    assert width_flops[0.25] < flops.mean() < width_flops[0.5]


def test_rates_must_cover_every_tier(make_config):
    with pytest.raises(UserError, match=r"strategy.rates = \{'strong': 1.0\}: no rate for tier 'medium'"):
        make_config(strategy={"name": "fd", "rates": {"strong": 1.0}})


def test_budget_picks_the_widest_rate_that_fits(make_config):
    _, server, _ = setup(
        make_config,
        "heterofl",
        rate_by="budget",
        devices={"flops_per_second": 2e6, "deadline": 40.0, "stragglers": "drop"},
    )
    jobs = server.half.plan(0, np.arange(9), server.context()).jobs
    for j in jobs:
        fits = [r for r in (1.0, 0.75, 0.5, 0.25) if server.job_seconds(0, Job(j.device, rate=r)) <= 40.0]
        assert j.rate == (fits[0] if fits else 0.25)
    assert len({j.rate for j in jobs}) > 1


def test_cost_follows_the_plan(make_config):
    _, server, _ = setup(make_config, "heterofl")
    jobs, _ = server.plan(0)
    work = server.workload(0, jobs)
    full = server.plan_flops(None)
    for j, timeline in zip(jobs, work.timelines):
        plan = server.rules.job_plan(server.facts, 0, j)
        f = timeline.step_flops.sum() / len(server.partition.shard(j.device))  # one epoch
        assert f == pytest.approx(server.plan_flops(plan), rel=1e-12) and (j.rate < 1) == (f < full)
        assert server.model_bytes(0, j) == 4 * len(server.slicer.positions(plan))


def test_width_round_trains_only_the_kept_elements(make_config):
    cfg, server, client = setup(make_config, "heterofl")
    jobs, _ = server.plan(0)
    before = server.weights.copy()
    metrics, records = server.update([client.run(0, server.weights, jobs)])
    changed = before != server.weights
    kept = np.zeros(len(before), bool)
    for j in jobs:
        kept[server.slicer.positions(server.rules.job_plan(server.facts, 0, j))] = True
    assert changed.any() and not (changed & ~kept).any()
    assert all(r["rate"] in RATES.values() for r in records)


def test_label_split_trains_only_held_classes(make_config):
    cfg, server, client = setup(make_config, "fd", label_split=True)
    plan = server.rules.job_plan(server.facts, 0, Job(0, rate=1.0))
    assert np.array_equal(plan.classes, client.facts.classes(0))
    partial = client.run(0, server.weights, [Job(0, rate=1.0)])
    assert partial.records[0]["samples"] > 0


@pytest.mark.parametrize(
    "arch", [{"name": "cnn"}, {"name": "vgg11", "width": 0.0625}], ids=["cnn", "vgg11-bn"]
)  # BatchNorm: running statistics are buffers, not parameters
def test_per_batch_engine_with_the_full_plan_equals_plain_sgd(make_config, arch):
    cfg = make_config(strategy={"name": "fjord", "rates": RATES}, devices={"count": 9, "per_round": 9}, model=arch)
    data = load_dataset(cfg.data, cfg.seed)
    part = partition_data(cfg.partition, data.y_train, cfg.devices.count, cfg.seed)
    server, client = Server(cfg, data, part), Client(cfg, data, part)
    assert any(isinstance(m, torch.nn.BatchNorm2d) for m in client.model.modules()) == (arch["name"] == "vgg11")
    x, y = client.data_of(Job(0))
    s = SGDSettings(lr=0.05, momentum=0.9, weight_decay=1e-3, batch_size=16, epochs=1)
    model = client.model
    client.load(server.weights)
    train_local(model, x, y, s, torch.Generator().manual_seed(3))
    expected = client.weights()
    layout = client.layout
    for name, a, b in zip(layout.names, layout.offsets[:-1], layout.offsets[1:]):
        assert (expected[a:b] != server.weights[a:b]).any(), f"{name} did not move: the comparison would be vacuous"
    weights = torch.from_numpy(server.weights.copy())
    full = client.slicer.full_plan()
    _, touched = train_per_batch(
        SubModels(client.slicer), weights, x, y, s, torch.Generator().manual_seed(3), lambda k: full
    )
    assert touched.all()
    np.testing.assert_allclose(weights.numpy(), expected, rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("arch", [{"name": "cnn"}, {"name": "vgg11", "width": 0.0625}], ids=["cnn", "vgg11-bn"])
def test_per_batch_engine_with_a_half_plan_equals_plain_sgd_on_the_sub_model(make_config, arch):
    cfg = make_config(strategy={"name": "fjord", "rates": RATES}, devices={"count": 9, "per_round": 9}, model=arch)
    data = load_dataset(cfg.data, cfg.seed)
    part = partition_data(cfg.partition, data.y_train, cfg.devices.count, cfg.seed)
    server, client = Server(cfg, data, part), Client(cfg, data, part)
    x, y = client.data_of(Job(0))
    s = SGDSettings(lr=0.05, momentum=0.9, weight_decay=1e-3, batch_size=16, epochs=1)
    plan = uniform_plan(client.slicer, lambda i, w: nested(w, 0.5))
    pos = client.slicer.positions(plan)
    sub = client.slicer.build(plan)
    sub_layout = FlatLayout(sub)
    sub_layout.load(sub, server.weights[pos])
    train_local(sub, x, y, s, torch.Generator().manual_seed(3))
    weights = torch.from_numpy(server.weights.copy())
    _, touched = train_per_batch(
        SubModels(client.slicer), weights, x, y, s, torch.Generator().manual_seed(3), lambda k: plan
    )
    assert np.array_equal(np.flatnonzero(touched), np.sort(pos))
    np.testing.assert_allclose(weights.numpy()[pos], sub_layout.flatten(sub), rtol=1e-4, atol=1e-5)
    outside = np.ones(len(weights), bool)
    outside[pos] = False
    np.testing.assert_array_equal(weights.numpy()[outside], server.weights[outside])


def test_the_deadline_check_pairs_each_tier_with_its_own_width(make_config):
    """With `rate_by: tier` the strong tier trains the full width: a deadline only the weak tier's
    width at the strong tier's speed would meet is met by no device, and is refused."""
    from edgeweave.platform.run.server import check_deadline

    tiers = [
        {"name": "strong", "share": 0.5, "speed": 1.0, "bandwidth": 1e12},
        {"name": "weak", "share": 0.5, "speed": 0.25, "bandwidth": 1e12},
    ]
    rates = {"strong": 1.0, "weak": 0.25}
    cfg, server, _ = setup(make_config, "heterofl", devices={"tiers": tiers}, rates=rates)
    d, batch = cfg.devices, cfg.training.batch_size
    narrow = server.slicer.flops(uniform_plan(server.slicer, lambda i, w: nested(w, 0.25))) * batch
    full = server.slicer.flops(None) * batch
    quickest = min(full / d.flops_per_second, narrow / (0.25 * d.flops_per_second))
    between = (narrow / d.flops_per_second + quickest) / 2  # the narrow width at full speed would fit

    def with_deadline(seconds):
        return cfg.model_copy(update={"devices": d.model_copy(update={"deadline": seconds})})

    data = server.data
    with pytest.raises(UserError, match="no device can meet it; the quickest tier"):
        check_deadline(with_deadline(between), data)
    check_deadline(with_deadline(quickest * 1.01), data)


@given(multiplier=st.integers(1, 999).map(lambda n: n / 1000), margin=st.floats(1.01, 50))
@settings(max_examples=15, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
def test_the_deadline_check_counts_the_resource_models_fastest_multiplier(make_config, multiplier, margin):
    """A constant multiplier below 1 slows every device: a deadline met only at full speed is refused."""
    from edgeweave.platform.run.server import check_deadline, model_slicer

    cfg = make_config(
        devices={
            "tiers": [{"name": "only", "share": 1.0, "speed": 1.0, "bandwidth": 1e15}],
            "resources": {"name": "constant", "multiplier": multiplier},
        }
    )
    data = load_dataset(cfg.data, cfg.seed)
    need = model_slicer(cfg, data).flops(None) * cfg.training.batch_size / cfg.devices.flops_per_second

    def with_deadline(seconds):
        return cfg.model_copy(update={"devices": cfg.devices.model_copy(update={"deadline": seconds})})

    slowed = need / multiplier
    if need * margin < slowed:  # met at full speed, not at the multiplier
        with pytest.raises(UserError, match=rf"at the resource model's fastest \(x{multiplier:g}\)"):
            check_deadline(with_deadline(need * margin), data)
    check_deadline(with_deadline(slowed * margin), data)
