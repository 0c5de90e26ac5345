"""Batch norm per method (`model.norm`): where the global model's statistics come from, and that the DSE
scores a vector as the run will evaluate it."""

import numpy as np
import pytest
import torch

from edgeweave.platform.config.schema import build_config
from edgeweave.platform.core.seeding import SERVER, Stream, rng, torch_generator
from edgeweave.platform.data import ArrayData, load_dataset
from edgeweave.platform.models import build_model
from edgeweave.platform.models.flat import FlatLayout
from edgeweave.platform.models.norm import NORMS, statistics_mask
from edgeweave.platform.partition import Partition, partition_data
from edgeweave.platform.run.client import Client
from edgeweave.platform.run.server import Server
from edgeweave.platform.run.servers import build_server
from edgeweave.platform.train.plans import dropout_plan, nested, uniform_plan
from edgeweave.platform.train.sgd import SGDSettings
from edgeweave.platform.train.sliced_training import SubModels, train_per_batch
from edgeweave.platform.train.submodel import Slicer
from tests.helpers import tiny_raw

VGG = {"name": "vgg11", "width": 0.125}
SHAPES = {"cnn": (1, 8, 8), "alexnet": (3, 32, 32), "vgg11": (3, 32, 32), "vgg16": (3, 32, 32), "kws_cnn": (1, 40, 101)}
HAS_BN = {"alexnet", "vgg11", "vgg16", "kws_cnn"}


def setup(tmp_path, strategy, norm=None, **sections):
    model = {**VGG, **({} if norm is None else {"norm": norm})}
    cfg = build_config(tiny_raw(tmp_path, model=model, strategy=strategy, **sections))
    data = load_dataset(cfg.data, cfg.seed)
    part = partition_data(cfg.partition, data.y_train, cfg.devices.count, cfg.seed)
    return cfg, data, part


def bn_inputs_statistics(model, x, batch):
    """Each batch norm's expected statistics over x in batches, computed apart from `recompute_statistics`:
    the mean over batches of each batch's mean and unbiased variance of the layer's input, in training mode
    (each layer normalising with the batch's statistics). Changes the model's own running statistics."""
    norms = [m for m in model.modules() if isinstance(m, torch.nn.BatchNorm2d)]
    seen = {id(m): [] for m in norms}
    hooks = [m.register_forward_pre_hook(lambda m, a: seen[id(m)].append(a[0].detach())) for m in norms]
    model.train()
    with torch.no_grad():
        for i in range(0, len(x), batch):
            model(torch.from_numpy(x[i : i + batch]))
    for h in hooks:
        h.remove()
    out = []
    for m in norms:
        means = [t.mean((0, 2, 3)) for t in seen[id(m)]]
        vars_ = [t.transpose(0, 1).reshape(t.shape[1], -1).var(1, unbiased=True) for t in seen[id(m)]]
        out.append((torch.stack(means).mean(0), torch.stack(vars_).mean(0)))
    return out


@pytest.mark.parametrize("norm", NORMS)
@pytest.mark.parametrize("name", sorted(SHAPES))
def test_every_zoo_model_accepts_every_policy(tmp_path, name, norm):
    cfg = build_config(tiny_raw(tmp_path, model={"name": name, "width": 0.125, "norm": norm}))
    shape = SHAPES[name]
    model = build_model(cfg.model, shape, 5, seed=0)
    norms = [m for m in model.modules() if isinstance(m, torch.nn.BatchNorm2d)]
    assert bool(norms) == (name in HAS_BN and norm != "none")
    assert all(m.momentum == (0.0 if norm == "static" else 0.1) for m in norms)
    slicer = Slicer(model, shape)
    half = uniform_plan(slicer, lambda i, w: nested(w, 0.5))
    x, y = torch.randn(6, *shape), torch.arange(6) % 5
    weights = torch.from_numpy(FlatLayout(model).flatten(model))
    before = weights.clone()
    result, touched = train_per_batch(
        SubModels(slicer, norm=norm),
        weights,
        x,
        y,
        SGDSettings(0.05, batch_size=3, steps=2),
        torch.Generator().manual_seed(0),
        lambda k: half,
    )
    assert result.steps == 2 and np.isfinite(result.loss)
    stats = torch.from_numpy(statistics_mask(FlatLayout(model)))
    assert not torch.equal(weights[~stats], before[~stats])
    if norm in ("static", "per_width"):  # a half-width sub-model's statistics stay out of the full model's
        assert torch.equal(weights[stats], before[stats])
    if norm == "per_width":  # ... and are not reported (static's pass through; the server keeps its own)
        assert not touched[stats.numpy()].any()
    model.eval()(torch.randn(2, *shape))


@pytest.mark.parametrize(
    "strategy, norm, scaled",
    [
        ({"name": "fedavg"}, "running", None),
        ({"name": "heterofl"}, "static", True),
        ({"name": "fedrolex"}, "static", True),
        ({"name": "fd"}, "static", False),
        ({"name": "fjord"}, "per_width", False),
        ({"name": "taskwise"}, "static", None),
    ],
)
def test_each_method_defaults_to_its_papers_batch_norm_and_a_config_overrides_it(tmp_path, strategy, norm, scaled):
    cfg = build_config(tiny_raw(tmp_path, model=VGG, strategy=strategy))
    assert cfg.model.params.norm == norm
    if scaled is not None:
        assert cfg.strategy.params.scale_kept is scaled
    assert (
        build_config(tiny_raw(tmp_path, model={**VGG, "norm": "none"}, strategy=strategy)).model.params.norm == "none"
    )


def test_static_keeps_every_devices_statistics_out_and_evaluates_with_recomputed_ones(tmp_path):
    cfg, data, part = setup(tmp_path, {"name": "heterofl"}, devices={"count": 6, "per_round": 6})
    server, client = Server(cfg, data, part), Client(cfg, data, part)
    stats = statistics_mask(server.layout)
    for r in range(2):
        before = server.weights.copy()
        jobs, _ = server.plan(r)
        assert {j.rate for j in jobs} > {1.0}  # thinned sub-models trained
        server.update([client.run(r, server.weights, jobs, server.shared)])
        assert np.array_equal(server.weights[stats], before[stats])  # no device's statistics got in
        assert not np.array_equal(server.weights[~stats], before[~stats])
        acc, loss = server.evaluate()
    sample = server.x_statistics
    assert len(sample) == min(len(part.indices), cfg.model.params.norm_samples)
    reference, model = (build_model(cfg.model, data.input_shape, data.num_classes, cfg.seed) for _ in range(2))
    for m in (reference, model):
        FlatLayout(m).load(m, server.weights)
    expected = bn_inputs_statistics(reference, sample, cfg.training.eval_batch_size)
    norms = [m for m in model.modules() if isinstance(m, torch.nn.BatchNorm2d)]
    for m, (mean, var) in zip(norms, expected):  # the weights hold the statistics recomputed through the full model
        assert torch.allclose(m.running_mean, mean, rtol=1e-4, atol=1e-5)
        assert torch.allclose(m.running_var, var, rtol=1e-4, atol=1e-5)
    assert (acc, loss) == server.evaluate()  # recomputing again changes nothing


def test_running_lets_sub_models_statistics_in(tmp_path):
    """The counter-test: with `norm: running` (asked for) thinned devices' statistics reach the global model."""
    cfg, data, part = setup(tmp_path, {"name": "heterofl"}, norm="running", devices={"count": 6, "per_round": 6})
    server, client = Server(cfg, data, part), Client(cfg, data, part)
    stats = statistics_mask(server.layout)
    before = server.weights.copy()
    jobs, _ = server.plan(0)
    server.update([client.run(0, server.weights, jobs, server.shared)])
    assert not np.array_equal(server.weights[stats], before[stats])


def test_per_width_statistics_come_from_full_width_training_only(tmp_path):
    cfg, data, part = setup(
        tmp_path,
        {"name": "heterofl", "rates": {"strong": 0.5, "medium": 0.5, "weak": 0.25}},
        norm="per_width",
        devices={"count": 6, "per_round": 6},
    )
    server, client = Server(cfg, data, part), Client(cfg, data, part)
    stats = statistics_mask(server.layout)
    before = server.weights.copy()
    jobs, _ = server.plan(0)
    server.update([client.run(0, server.weights, jobs, server.shared)])
    assert np.array_equal(server.weights[stats], before[stats])  # only thinned widths trained: not theirs

    full = build_config(
        tiny_raw(
            tmp_path,
            model={**VGG, "norm": "per_width"},
            strategy={"name": "heterofl", "rates": {"strong": 1.0, "medium": 1.0, "weak": 0.5}},
            devices={"count": 6, "per_round": 6},
        )
    )
    server, client = Server(full, data, part), Client(full, data, part)
    jobs, _ = server.plan(0)
    partial = client.run(0, server.weights, jobs, server.shared)
    reporters = sum(client.facts.samples(j) for j in jobs if j.rate == 1.0)
    assert 0 < reporters < sum(client.facts.samples(j) for j in jobs)
    assert np.all(partial.counts[stats] == reporters)  # each statistic averaged over the full-width devices alone
    assert np.all(partial.counts[~stats] >= reporters)


def test_per_width_per_mini_batch_keeps_a_thinned_steps_statistics_out(tmp_path):
    """FjORD's engine: steps at half width leave the statistics; a full-width step moves and reports them."""
    cfg = build_config(tiny_raw(tmp_path, model={**VGG, "norm": "per_width"}))
    model = build_model(cfg.model, (1, 8, 8), 10, seed=0)
    slicer, layout = Slicer(model, (1, 8, 8)), FlatLayout(model)
    stats = torch.from_numpy(statistics_mask(layout))
    half, full = uniform_plan(slicer, lambda i, w: nested(w, 0.5)), slicer.full_plan()
    x, y = torch.randn(12, 1, 8, 8), torch.arange(12) % 10
    runs = {}
    for name, plans in {"thinned": [half, half, half], "one full": [half, full, half]}.items():
        w = torch.from_numpy(layout.flatten(model))
        _, touched = train_per_batch(
            SubModels(slicer, norm="per_width"),
            w,
            x,
            y,
            SGDSettings(0.05, batch_size=4, steps=3),
            torch.Generator().manual_seed(0),
            plans.__getitem__,
        )
        runs[name] = (w, touched)
    start = torch.from_numpy(layout.flatten(model))
    assert torch.equal(runs["thinned"][0][stats], start[stats]) and not runs["thinned"][1][stats.numpy()].any()
    assert not torch.equal(runs["one full"][0][stats], start[stats]) and runs["one full"][1][stats.numpy()].all()


@pytest.mark.parametrize("norm", ["static", "running"])
def test_the_search_scores_a_vector_as_the_run_evaluates_its_model(tmp_path, norm):
    """The DSE's score of a vector = the test loss `Server.evaluate` gives the same trained weights, with the
    same samples for the statistics, under the same policy; and the policy changes the ranking's numbers."""
    from edgeweave.platform.search.dse import Explorer

    raw = tiny_raw(tmp_path, model={**VGG, "norm": norm}, training={"batch_size": 16})
    raw["strategy"] = {
        "name": "distreal",
        "front": str(tmp_path / "f.json"),
        "dse_steps": 6,
        "dse_seeds": 2,
        "grid_step": 0.25,
        "grid_max": 0.5,
    }
    cfg = build_config(raw, check_strategy=False)
    data = load_dataset(cfg.data, cfg.seed)
    explorer = Explorer(cfg, data)
    vector = (0.5,) * explorer.layers
    score = explorer.seed_score(vector, 1)
    trained = torch.from_numpy(explorer.start.copy())  # the search's training, replayed for the run's evaluation
    gens = [rng(cfg.seed, 1, SERVER, Stream.DSE_DROPOUT, k) for k in range(6)]
    train_per_batch(
        explorer.models,
        trained,
        explorer.x_train,
        explorer.y_train,
        explorer.settings,
        torch_generator(cfg.seed, 1, SERVER, Stream.DSE_BATCHES),
        lambda k: dropout_plan(explorer.slicer, vector, gens[k]),
    )
    train_rows = _train_rows(explorer, data)
    as_run = ArrayData(data.x_train, data.y_train, explorer.x_val, explorer.y_val, data.num_classes)
    server = Server(
        build_config({**raw, "strategy": {"name": "fedavg"}, "model": {**VGG, "norm": norm}}),
        as_run,
        Partition(train_rows, np.array([0, len(train_rows)])),
    )
    server.weights = trained.numpy().copy()
    assert server.evaluate()[1] == pytest.approx(score, rel=1e-5)
    assert explorer.score(vector) == pytest.approx(np.mean([explorer.seed_score(vector, s) for s in range(2)]))


def _train_rows(explorer, data):
    """The rows of the data the explorer trains on, in its order."""
    order = rng(explorer.cfg.seed, -1, SERVER, Stream.DSE_HOLD_OUT).permutation(len(data.y_train))
    return order[max(1, int(len(order) * explorer.p.held_out)) :]


def test_static_scores_thinned_vectors_far_better_than_running_statistics(tmp_path):
    """The damage the search used to rank by: the same trained weights, evaluated with the statistics the
    thinned sub-models left (running) and with statistics recomputed through the full model (static)."""
    from edgeweave.platform.search.dse import Explorer

    scores = {}
    for norm in ("running", "static"):
        raw = tiny_raw(tmp_path, model={**VGG, "norm": norm}, training={"batch_size": 16, "lr": 0.05})
        raw["strategy"] = {"name": "distreal", "front": str(tmp_path / "f.json"), "dse_steps": 20, "dse_seeds": 1}
        cfg = build_config(raw, check_strategy=False)
        scores[norm] = Explorer(cfg, load_dataset(cfg.data, cfg.seed)).seed_score((0.5,) * 8, 0)
    assert scores["static"] < scores["running"]


def test_static_keeps_devices_statistics_out_of_asynchronous_steps_too(tmp_path):
    from tests.unit.test_async import async_raw, parts, run_steps

    cfg = build_config(async_raw(tmp_path, model=VGG, strategy={"name": "heterofl"}))
    assert cfg.model.params.norm == "static"
    data, part = parts(cfg)
    server, client = build_server(cfg, data, part), Client(cfg, data, part)
    stats = statistics_mask(server.layout)
    before = server.weights.copy()
    run_steps(server, client, 0, 3)
    assert server.version > 0 and not np.array_equal(server.weights[~stats], before[~stats])
    assert np.array_equal(server.weights[stats], before[stats])
    server.evaluate()
    assert not np.array_equal(server.weights[stats], before[stats])  # recomputed, and kept with the version
    assert server.weights is server.versions[server.version]


def test_under_static_when_the_model_is_evaluated_changes_nothing_the_run_trains(tmp_path):
    """Task-wise attribution scores filters on a copy of the global model: under `static` that copy must carry
    statistics recomputed as at evaluation, not those of whichever evaluation came last (or none)."""
    raw = tiny_raw(
        tmp_path, model=VGG, strategy={"name": "taskwise", "mode": "attributed", "warmup_rounds": 1, "groups": 2}
    )
    cfg = build_config(raw)
    assert cfg.model.params.norm == "static"
    data = load_dataset(cfg.data, cfg.seed)
    part = partition_data(cfg.partition, data.y_train, cfg.devices.count, cfg.seed)
    trained = []
    for evaluate_each_round in (True, False):
        server, client = Server(cfg, data, part), Client(cfg, data, part)
        for r in range(3):
            jobs, _ = server.plan(r)
            server.update([client.run(r, server.weights, jobs, server.shared)])
            if evaluate_each_round:
                server.evaluate()
        trained.append(server.weights[~statistics_mask(server.layout)])
    assert np.array_equal(*trained)


@pytest.mark.parametrize("name, cancels", [("vgg11", True), ("cnn", False)])
def test_the_scaler_scales_a_thinned_layers_output_before_its_batch_norm(tmp_path, name, cancels):
    """HeteroFL's scaler sits between a conv and its batch norm, which divides it out in training; in a model
    without batch norm it scales what the next layer receives."""
    cfg = build_config(tiny_raw(tmp_path, model={"name": name, "width": 0.25}))
    model = build_model(cfg.model, (1, 8, 8), 10, seed=0)
    slicer, layout = Slicer(model, (1, 8, 8)), FlatLayout(model)
    half = uniform_plan(slicer, lambda i, w: nested(w, 0.5))
    x = torch.randn(8, 1, 8, 8)
    outs = []
    for scaled in (False, True):
        sub = slicer.build(half, scale_kept=scaled)
        FlatLayout(sub).load(sub, layout.flatten(model)[slicer.positions(half)])
        outs.append(sub.train()(x).detach())
    gap = float((outs[0] - outs[1]).abs().max() / outs[0].abs().max())
    assert (gap < 0.01) if cancels else (gap > 0.1)  # up to batch norm's eps


def test_a_front_scored_another_way_is_refused(tmp_path):
    """A front records the training it was scored with and whether its model had batch norm; a run that
    trains otherwise is refused in one line."""
    from edgeweave.platform.core.errors import UserError
    from edgeweave.platform.methods.front import Front, check_front, made_for

    cfg = build_config(tiny_raw(tmp_path, model={**VGG, "norm": "static"}))
    model = build_model(cfg.model, (1, 8, 8), 10, seed=0)
    front = Front(np.zeros((1, 8)), np.ones(1), np.ones(1), {**made_for(cfg, (1, 8, 8), 10), "batch_norm": True})
    assert check_front(front, cfg, "strategy.front", model=model) is front
    faster = build_config(tiny_raw(tmp_path, model={**VGG, "norm": "static"}, training={"lr": 0.5}))
    with pytest.raises(UserError, match=r"made for training.lr = 0.05, but this config has 0.5"):
        check_front(front, faster, "strategy.front", model=model)
    plain = build_config(tiny_raw(tmp_path, model={**VGG, "norm": "none"}))
    with pytest.raises(UserError, match=r"scored on the model with batch norm, but this config's has none"):
        check_front(front, plain, "strategy.front", model=build_model(plain.model, (1, 8, 8), 10, seed=0))
    running = build_config(tiny_raw(tmp_path, model={**VGG, "norm": "running"}))
    with pytest.raises(
        UserError,
        match=r"scored under model.norm = 'static', but this config trains with "
        r"model.norm = 'running'",
    ):
        check_front(front, running, "strategy.front", model=model)


@pytest.mark.parametrize("strategy", [{"name": "heterofl"}, {"name": "small"}])
def test_a_resumed_static_run_equals_an_uninterrupted_one(tmp_path, strategy):
    """Statistics recomputed at evaluation are a function of the weights alone: a run restored from its state
    after round 1 ends with the same weights, statistics included, as one that never stopped (`small` too, whose
    first round rescaled and zeroed the weights a resumed run must not touch again)."""
    cfg, data, part = setup(tmp_path, strategy, devices={"count": 6, "per_round": 4})

    def rounds(server, client, first, last):
        for r in range(first, last):
            jobs, _ = server.plan(r)
            server.update([client.run(r, server.weights, jobs, server.shared)])
            server.evaluate()
        return server

    whole = rounds(Server(cfg, data, part), Client(cfg, data, part), 0, 3)
    first = rounds(Server(cfg, data, part), Client(cfg, data, part), 0, 1)
    resumed = Server(cfg, data, part)
    resumed.restore(first.snapshot(1, []))
    rounds(resumed, Client(cfg, data, part), 1, 3)
    assert np.array_equal(whole.weights, resumed.weights) and whole.clock == resumed.clock


def test_a_plugin_model_with_batch_norm_and_no_norm_field_is_refused_in_one_line(tmp_path):
    """Its thinned sub-models' statistics would reach the global model whatever the method: refused."""
    from edgeweave.platform.config.schema import Choice
    from edgeweave.platform.core.errors import UserError
    from edgeweave.platform.core.registry import Params, Registry
    from edgeweave.platform.models import MODELS
    from edgeweave.platform.models.layers import ConvNet

    class Plain(Params):
        width: float = 1.0

    class Normed:
        def __init__(self, params):
            self.params = params

        def build(self, input_shape, num_classes):
            features = torch.nn.Sequential(torch.nn.Conv2d(input_shape[0], 4, 3, padding=1), torch.nn.BatchNorm2d(4))
            return ConvNet(features, torch.nn.Sequential(torch.nn.Linear(4 * 64, num_classes)))

    MODELS.add("normed_without_norm", Normed, Plain, module="test_norm_plugin")
    try:
        with pytest.raises(
            UserError,
            match=r"^model.name = 'normed_without_norm': it has batch-norm layers, but its "
            r"parameters \(Plain\) have no `norm`; subclass ModelParams",
        ):
            build_model(Choice(key="name", name="normed_without_norm", params=Plain()), (1, 8, 8), 10, seed=0)
    finally:
        Registry.forget("test_norm_plugin")
