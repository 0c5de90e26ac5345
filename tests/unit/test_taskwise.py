"""Task-wise decoupling: plans from a seed, harvest on hand-made tensors, assembly equals the parts."""

import numpy as np
import pytest
import torch

from edgeweave.platform.data import load_dataset
from edgeweave.platform.models.flat import FlatLayout
from edgeweave.platform.partition import partition_data
from edgeweave.platform.run.client import Client
from edgeweave.platform.run.server import Server
from edgeweave.platform.train.aggregate import Partial, average, combine
from edgeweave.platform.train.task_plans import allowed_mask, attributed_plans, class_groups, grouped_plans, union
from edgeweave.platform.train.task_training import other_loss, ovr_loss, own_labels, relevance


def setup(make_config, **strategy):
    cfg = make_config(
        model={"name": "cnn", "width": 0.5},
        devices={"count": 6, "per_round": 6},
        partition={"policy": "dirichlet", "alpha": 0.5, "min_samples": 5},
        strategy={"name": "taskwise", "groups": 5, **strategy},
    )
    data = load_dataset(cfg.data, cfg.seed)
    part = partition_data(cfg.partition, data.y_train, cfg.devices.count, cfg.seed)
    return cfg, data, Server(cfg, data, part), Client(cfg, data, part)


def test_class_groups():
    assert [g.tolist() for g in class_groups(10, 3)] == [[0, 1, 2, 3], [4, 5, 6], [7, 8, 9]]
    assert [g.tolist() for g in class_groups(10, 2, [[3, 1], [1, 9]])] == [[1, 3], [1, 9]]


def test_grouped_plans_share_the_trunk_and_split_the_rest(make_config):
    _, _, server, _ = setup(make_config)
    plans = grouped_plans(server.slicer, class_groups(10, 5), trunk=1)
    widths = server.slicer.widths
    for g, p in enumerate(plans):
        assert np.array_equal(p.keep[0], np.arange(widths[0]))  # the trunk
        assert np.array_equal(p.keep[1], np.array_split(np.arange(widths[1]), 5)[g])
        assert list(p.classes) == [2 * g, 2 * g + 1]
    # Groups are disjoint beyond the trunk, and together cover every channel.
    assert np.array_equal(np.sort(np.concatenate([p.keep[2] for p in plans])), np.arange(widths[2]))


def test_no_cross_group_weight_belongs_to_any_task(make_config):
    _, _, server, _ = setup(make_config)
    plans = grouped_plans(server.slicer, class_groups(10, 5), trunk=1)
    mask = allowed_mask(server.slicer, server.layout.size, plans)
    w = server.layout.split(mask)["features.2.weight"]  # the second conv: (out, in, 3, 3), grouped
    groups = np.array_split(np.arange(w.shape[0]), 5)
    assert w[groups[0]][:, :].sum() == len(groups[0]) * w.shape[1] * 9  # its input is the whole trunk
    head = server.layout.split(mask)["classifier.2.weight"]  # classes x hidden
    hidden = np.array_split(np.arange(head.shape[1]), 5)
    assert head[0, hidden[0]].all() and not head[0, hidden[1]].any()


def test_attributed_plans_keep_each_groups_most_relevant_filters():
    scores = [np.array([[5.0, 0.0], [0.0, 5.0], [1.0, 1.0], [0.0, 0.0]])]  # 4 filters x 2 classes
    plans = attributed_plans(scores, [np.array([0]), np.array([1])], keep=0.5)
    assert plans[0].keep[0].tolist() == [0, 2] and plans[1].keep[0].tolist() == [1, 2]  # filter 2 is shared


def test_relevance_is_the_mean_activation_per_class(make_config):
    _, data, server, _ = setup(make_config)
    scores = relevance(server.model, data.x_train[:64], data.y_train[:64], 10)
    assert [s.shape for s in scores] == [(w, 10) for w in server.slicer.widths]
    first = torch.relu(server.model.features[0](torch.from_numpy(data.x_train[:64]))).mean(dim=(2, 3)).detach()
    cls = int(data.y_train[0])
    np.testing.assert_allclose(scores[0][:, cls], first[data.y_train[:64] == cls].mean(0).numpy(), rtol=1e-5)


def test_harvest_by_hand():
    # Two tasks' devices report disjoint elements; the shared trunk (element 0) is averaged.
    a, b = Partial.zeros(4), Partial.zeros(4)
    a.add(np.array([2.0, 10.0], np.float32), weight=1, mask=np.array([0, 1]))
    b.add(np.array([4.0, 20.0], np.float32), weight=3, mask=np.array([0, 2]))
    total = combine([a, b], a.sums.size)
    out = average(np.zeros(4, np.float32), total.sums, total.counts)
    np.testing.assert_allclose(out, [(2 + 12) / 4, 10.0, 20.0, 0.0])


def test_assembled_model_equals_the_sub_models_on_their_own_classes(make_config):
    cfg, data, server, client = setup(make_config)
    jobs, _ = server.plan(0)
    server.update([client.run(0, server.weights, jobs, server.shared)])
    model, layout = server.model, server.layout
    layout.load(model, server.weights)
    x = torch.from_numpy(data.x_test[:16])
    with torch.no_grad():
        full = model.eval()(x)
        for plan in server.rules.plans:
            sub = server.slicer.build(plan)
            FlatLayout(sub).load(sub, server.weights[server.slicer.positions(plan)])
            np.testing.assert_allclose(sub.eval()(x).numpy(), full[:, plan.classes].numpy(), atol=1e-5)


def test_devices_train_only_their_tasks_sub_model(make_config):
    cfg, data, server, client = setup(make_config, tasks_per_device=2)
    jobs, _ = server.plan(0)
    before = server.weights.copy()
    metrics, records = server.update([client.run(0, server.weights, jobs, server.shared)])
    allowed = server.rules.allowed(server.facts)
    assert not server.weights[~allowed].any()  # cross-task weights stay zero, several tasks or not
    assert (server.weights != before)[allowed].any()
    assert all(r["saving"] > 1.5 for r in records)
    for j in jobs:
        tasks = server.rules.tasks_of(server.facts, j.device, 0)
        held = np.bincount(data.y_train[server.partition.shard(j.device)], minlength=10)
        groups = class_groups(10, 5)
        assert (
            len(tasks) == 2 and min(held[groups[t]].sum() for t in tasks) >= sorted(held[g].sum() for g in groups)[-2]
        )


def test_sampled_tasks_follow_the_held_samples_and_change_by_round(make_config):
    cfg, data, server, client = setup(make_config, tasks="sampled", tasks_per_device=2)
    jobs, _ = server.plan(0)
    rules, groups = server.rules, class_groups(10, 5)
    for j in jobs:
        held = np.bincount(data.y_train[server.partition.shard(j.device)], minlength=10)
        per_task = np.array([held[g].sum() for g in groups])
        drawn = [tuple(rules.tasks_of(server.facts, j.device, r)) for r in range(40)]
        assert drawn == [tuple(rules.tasks_of(server.facts, j.device, r)) for r in range(40)]  # seeded
        counts = np.bincount([t for d in drawn for t in d], minlength=5)
        assert all(len(d) == min(2, (per_task > 0).sum()) for d in drawn)
        assert all(per_task[t] > 0 for t in set(sum(drawn, ())))  # never a task it holds nothing of
        assert len(set(drawn)) > 1 or (per_task > 0).sum() <= 2
        assert counts[np.argmax(per_task)] >= counts[np.argmin(per_task)]


@pytest.mark.parametrize("loss", [other_loss, ovr_loss])
def test_objectives_push_other_classes_below_zero(loss):
    y = torch.tensor([0, 1, 5, 7])
    target = own_labels(y, np.array([0, 1]))
    assert target.tolist() == [0, 1, 2, 2]
    good = torch.tensor([[5.0, -5.0], [-5.0, 5.0], [-5.0, -5.0], [-5.0, -5.0]])
    bad = torch.tensor([[5.0, -5.0], [-5.0, 5.0], [5.0, -5.0], [5.0, 5.0]])  # claims the others
    assert loss(good, target) < loss(bad, target)


def test_attributed_mode_warms_up_with_the_full_model(make_config):
    cfg, data, server, client = setup(make_config, mode="attributed", warmup_rounds=1, keep=0.5)
    jobs, _ = server.plan(0)
    assert server.rules.plans is None and server.rules.job_plan(server.facts, 0, jobs[0]) is None
    server.update([client.run(0, server.weights, jobs, server.shared)])
    jobs, _ = server.plan(1)
    plans = server.rules.plans
    assert plans is not None and all(
        len(k) == int(np.ceil(0.5 * w)) for k, w in zip(plans[0].keep, server.slicer.widths)
    )
    partial = client.run(1, server.weights, jobs, server.shared)
    assert client.half.rules.plans is plans or all(
        np.array_equal(a, b) for p, q in zip(client.half.rules.plans, plans) for a, b in zip(p.keep, q.keep)
    )
    assert partial.records and union(plans).classes.tolist() == list(range(10))


def test_dropout_inside_task_sub_models(make_config, tmp_path):
    from edgeweave.platform.methods.front import Front, made_for

    front = tmp_path / "front.json"
    made = made_for(make_config(model={"name": "cnn", "width": 0.5}), (1, 8, 8), 10)  # the task's own costs count
    Front(np.array([[0.0, 0.0], [0.5, 0.5], [0.75, 0.75]]), np.ones(3), np.array([1.0, 2.0, 3.0]), made).save(front)
    cfg = make_config(
        model={"name": "cnn", "width": 0.5},
        partition={"policy": "dirichlet", "alpha": 0.5, "min_samples": 5},
        devices={"count": 6, "per_round": 6, "flops_per_second": 1.5e5, "deadline": 30.0, "stragglers": "partial"},
        strategy={"name": "taskwise", "groups": 5, "tasks_per_device": 2, "dropout_front": str(front)},
    )
    data = load_dataset(cfg.data, cfg.seed)
    part = partition_data(cfg.partition, data.y_train, cfg.devices.count, cfg.seed)
    server, client = Server(cfg, data, part), Client(cfg, data, part)
    jobs, planned = server.plan(0)
    metrics, records = server.update([client.run(0, server.weights, jobs, server.shared)])
    done = {r["device"]: r for r in records}
    for job, samples in zip(jobs, planned):
        assert done[job.device]["samples"] == samples  # the driver replays each device's own choice
    assert not server.weights[~server.rules.allowed(server.facts)].any()  # cross-task weights stay zero
    plain = server.plan_flops(server.rules.device_plan(server.facts, jobs[0].device, 0))
    per_sample = [r["flops"] / r["samples"] for r in records if r["samples"]]
    assert min(per_sample) < plain  # someone dropped filters inside its task sub-model
    assert metrics["virtual_time"] <= 30.0 + 1e-6


# Bad task-wise input fails before the run, in one line naming the field, the value and what is allowed:
# ids and class lists at config validation, what needs the data's classes and the model's widths once
# the data is loaded (`check_with_data`).
BAD_CONFIG = [  # (id, strategy keys, data section, text the one line must hold)
    (
        "task id past the tasks",
        {"tasks": "explicit", "assignment": [[0], [7]]},
        None,
        "strategy.assignment = [[0], [7]]: task 7 does not exist; task ids are 0..4",
    ),
    ("negative task id", {"tasks": "explicit", "assignment": [[-1]]}, None, "task -1 does not exist"),
    (
        "task id past explicit groups",
        {"tasks": "explicit", "assignment": [[2]], "class_groups": [[0, 1], [2]]},
        None,
        "task 2 does not exist; task ids are 0..1",
    ),
    (
        "more devices than there are",
        {"tasks": "explicit", "assignment": [[0]] * 7},
        None,
        "strategy.assignment = [[0], [0], [0], [0], [0], [0], [0]]: 7 entries, one per device id, but devices.count = 6",
    ),
    ("a device without tasks", {"tasks": "explicit", "assignment": [[0], []]}, None, "device 1 has no task"),
    (
        "an empty class group",
        {"class_groups": [[0, 1], []]},
        None,
        "strategy.class_groups = [[0, 1], []]: group 1 is empty",
    ),
    ("negative class", {"class_groups": [[0, -1]]}, None, "class -1 does not exist"),
    (
        "class past a declared count",
        {"class_groups": [[0, 1], [2, 5]]},
        {"name": "synthetic", "num_classes": 4},
        "strategy.class_groups = [[0, 1], [2, 5]]: class 5 does not exist; data synthetic has classes 0..3",
    ),
    (
        "class missed, declared count",
        {"class_groups": [[0, 1], [3]]},
        {"name": "synthetic", "num_classes": 4},
        "class 2 is in no group",
    ),
    (
        "more groups than declared classes",
        {"groups": 5},
        {"name": "synthetic", "num_classes": 4},
        "strategy.groups = 5: at most 4",
    ),
]


@pytest.mark.parametrize("case, strategy, data, expected", BAD_CONFIG, ids=[c[0] for c in BAD_CONFIG])
def test_bad_taskwise_config_is_one_line_before_the_run(tmp_path, capsys, case, strategy, data, expected):
    import yaml

    from edgeweave.cli import main
    from tests.helpers import tiny_raw

    raw = tiny_raw(tmp_path, strategy={"name": "taskwise", **strategy}, **({"data": data} if data else {}))
    path = tmp_path / "exp.yaml"
    path.write_text(yaml.safe_dump(raw))
    assert main(["run", str(path)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("error: ") and expected in err, err
    assert not (tmp_path / "runs").exists()


BAD_FOR_DATA = [  # (id, model section, strategy keys, text); digits has 10 classes
    (
        "class past the data's classes",
        {},
        {"class_groups": [[0, 1, 2, 3, 4], [5, 6, 7, 8, 9, 10]]},
        "strategy.class_groups = [[0, 1, 2, 3, 4], [5, 6, 7, 8, 9, 10]]: class 10 does not exist; "
        "data digits has classes 0..9",
    ),
    ("class missed", {}, {"class_groups": [[0, 1, 2], [3, 4, 5, 6, 7, 8]]}, "class 9 is in no group"),
    ("more groups than classes", {"width": 1.0}, {"groups": 12}, "strategy.groups = 12: at most 10"),
    (
        "more groups than channels",
        {"width": 0.125},
        {"groups": 10, "trunk": 1},
        "strategy.groups = 10: 10 tasks; at most 8, the channels of the narrowest grouped layer",
    ),
    (
        "explicit groups past channels",
        {"width": 0.125},
        {"class_groups": [[c] for c in range(10)], "trunk": 0},
        "10 tasks; at most 4, the channels of the narrowest grouped layer",
    ),
]


@pytest.mark.parametrize("case, model, strategy, expected", BAD_FOR_DATA, ids=[c[0] for c in BAD_FOR_DATA])
def test_bad_taskwise_input_for_the_data_fails_before_the_run(make_config, case, model, strategy, expected):
    from edgeweave.platform.core.errors import UserError
    from edgeweave.platform.run.server import check_with_data

    cfg = make_config(model={"name": "cnn", **model}, strategy={"name": "taskwise", **strategy})
    data = load_dataset(cfg.data, cfg.seed)
    with pytest.raises(UserError) as e:
        check_with_data(cfg, data)
    assert "\n" not in str(e.value) and expected in str(e.value), str(e.value)


@pytest.mark.parametrize("path", ["configs/taskwise_digits.yaml", "configs/taskwise_synthetic.yaml"])
def test_shipped_taskwise_configs_pass_the_data_check(path):
    from edgeweave.platform.config.schema import load_config
    from edgeweave.platform.run.server import check_with_data

    cfg = load_config(path)
    check_with_data(cfg, load_dataset(cfg.data, cfg.seed))


def test_deadline_check_asks_only_for_the_smallest_task_sub_model(make_config):
    """A deadline the fastest device meets with its task's sub-model, not with the full model, is allowed."""
    from edgeweave.platform.core.errors import UserError
    from edgeweave.platform.run.server import check_deadline

    cfg, data, server, _ = setup(make_config)
    d, batch = cfg.devices, cfg.training.batch_size

    def need(weights, flops):
        return min(2 * 4.0 * weights / t.bandwidth + flops / (d.flops_per_second * t.speed) for t in d.tiers)

    task = need(*server.rules.cheapest_job(server.slicer, batch, "strong"))
    full = need(server.layout.size, server.slicer.flops(None) * batch)
    assert task < full / 2
    between = (task + full) / 2
    check_deadline(cfg.model_copy(update={"devices": d.model_copy(update={"deadline": between})}), data)
    with pytest.raises(UserError, match="devices.deadline"):
        check_deadline(cfg.model_copy(update={"devices": d.model_copy(update={"deadline": task * 0.9})}), data)
