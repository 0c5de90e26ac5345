"""`small`, FedAvg on the one width every device can afford, and a global model scored at each width."""

import numpy as np
import pytest
import torch

from edgeweave.platform.config.schema import build_config
from edgeweave.platform.core.errors import UserError
from edgeweave.platform.data import load_dataset
from edgeweave.platform.models.norm import statistics_rows
from edgeweave.platform.partition import partition_data
from edgeweave.platform.report.widths import width_scores
from edgeweave.platform.run.client import Client
from edgeweave.platform.run.server import Server
from edgeweave.platform.train.plans import nested, uniform_plan
from edgeweave.platform.train.task_plans import allowed_mask
from tests.helpers import tiny_raw

VGG = {"name": "vgg11", "width": 0.125}


def trained(tmp_path, strategy, rounds=2, model=VGG):
    cfg = build_config(tiny_raw(tmp_path, model=model, strategy=strategy, devices={"count": 6, "per_round": 6}))
    data = load_dataset(cfg.data, cfg.seed)
    part = partition_data(cfg.partition, data.y_train, cfg.devices.count, cfg.seed)
    server, client = Server(cfg, data, part), Client(cfg, data, part)
    rates = []
    for r in range(rounds):
        jobs, _ = server.plan(r)
        rates += [j.rate for j in jobs]
        server.update([client.run(r, server.weights, jobs, server.shared)])
    rows = statistics_rows(cfg.seed, part.indices, cfg.model.params.norm_samples)
    return cfg, data, server, rates, data.x_train[rows]


TIERS = {"strong": 1, "medium": 0.7, "weak": 0.6}


@pytest.mark.parametrize(
    "strategy, rate",
    [
        ({"name": "small"}, 0.25),  # the smallest tier rate
        ({"name": "small", "rates": TIERS}, 0.6),
        ({"name": "small", "rate": 0.5}, 0.5),
    ],
)
@pytest.mark.parametrize("model", [VGG, {"name": "cnn", "width": 0.5}])
def test_the_global_model_is_exactly_the_small_model(tmp_path, strategy, rate, model):
    cfg, data, server, rates, x_stats = trained(tmp_path, strategy, model=model)
    assert set(rates) == {rate}
    kept = allowed_mask(server.slicer, server.layout.size, [uniform_plan(server.slicer, lambda i, w: nested(w, rate))])
    assert not server.weights[~kept].any()  # channels no device trains are held at zero
    accuracy, loss = server.evaluate()
    small, _ = width_scores(cfg, data, server.weights, [rate], x_stats)[rate]
    assert small == accuracy  # the full model answers as the small one does


def test_small_refuses_budget_rates_in_one_line(tmp_path):
    with pytest.raises(UserError, match=r"strategy.rate_by = 'budget': `small` trains one width on every device"):
        build_config(
            tiny_raw(tmp_path, model=VGG, strategy={"name": "small", "rate_by": "budget"}, devices={"deadline": 5})
        )


def test_a_nested_model_at_full_width_scores_as_the_server_evaluates_it(tmp_path):
    cfg, data, server, _, x_stats = trained(tmp_path, {"name": "heterofl"})
    accuracy, loss = server.evaluate()
    scores = width_scores(cfg, data, server.weights, [0.25, 0.5, 1.0], x_stats)
    assert scores[1.0] == pytest.approx((accuracy, loss), rel=1e-5)
    assert len({s[1] for s in scores.values()}) == 3  # each width its own model


def test_a_width_outside_zero_to_one_is_refused(tmp_path):
    cfg, data, server, _, x_stats = trained(tmp_path, {"name": "heterofl"}, rounds=1)
    with pytest.raises(UserError, match=r"--widths = 1.5: a width is a rate in \(0, 1\]"):
        width_scores(cfg, data, server.weights, [0.5, 1.5], x_stats)


def test_report_scores_a_finished_runs_model_at_each_width(tmp_path, capsys):
    import json

    from edgeweave.cli import main
    from edgeweave.platform.config.schema import dump_config
    from edgeweave.platform.run.rundir import save_weights

    cfg, data, server, _, x_stats = trained(tmp_path, {"name": "heterofl"})
    expected = width_scores(cfg, data, server.weights, [0.25, 1.0], x_stats)
    run = tmp_path / "tiny-run"
    run.mkdir()
    (run / "config.yaml").write_text(dump_config(cfg))
    (run / "metrics.jsonl").write_text(json.dumps({"round": 0, "test_accuracy": 0.5, "virtual_time": 1.0}) + "\n")
    save_weights(run / "model.safetensors", server.model, server.weights)
    assert main(["report", str(run), "--widths", "0.25", "1", "--out", str(tmp_path / "rep.png")]) == 0
    rows = [line for line in capsys.readouterr().out.splitlines() if line.startswith("| tiny-run |")]
    assert rows[-1] == f"| tiny-run | {expected[0.25][0]:.4f} | {expected[1.0][0]:.4f} |"  # the widths table's
    assert main(["report", str(run), "--widths", "0", "--out", str(tmp_path / "rep.png")]) == 2
    assert "--widths = 0: a width is a rate in (0, 1]" in capsys.readouterr().err


def test_small_learns_without_batch_norm():
    """A slice of a fresh full-width cnn keeps the full fan-in's initial scale and stays near chance for rounds;
    `small` starts as a model built at its width and learns (the quickstart's setting)."""
    from edgeweave.platform.config.schema import load_config

    cfg = load_config("configs/quickstart.yaml", ["strategy={name: small}", "logging.wandb.mode=disabled"])
    data = load_dataset(cfg.data, cfg.seed)
    part = partition_data(cfg.partition, data.y_train, cfg.devices.count, cfg.seed)
    server, client = Server(cfg, data, part), Client(cfg, data, part)
    best = 0.0
    for r in range(6):
        jobs, _ = server.plan(r)
        server.update([client.run(r, server.weights, jobs, server.shared)])
        best = max(best, server.evaluate()[0])
    assert best > 0.25  # digits: chance is 0.1


def test_a_slice_starts_at_its_own_widths_initial_scale(tmp_path):
    cfg = build_config(tiny_raw(tmp_path, model={"name": "cnn", "width": 1.0}))
    from edgeweave.platform.models import build_model
    from edgeweave.platform.models.flat import FlatLayout
    from edgeweave.platform.train.submodel import Slicer

    model = build_model(cfg.model, (1, 8, 8), 10, seed=0)
    slicer, flat = Slicer(model, (1, 8, 8)), FlatLayout(model).flatten(model)
    plan = uniform_plan(slicer, lambda i, w: nested(w, 0.25))
    sub = slicer.build(plan)
    FlatLayout(sub).load(sub, np.ascontiguousarray(slicer.at_own_width(plan, flat)[slicer.positions(plan)]))
    for m in [x for x in sub.modules() if isinstance(x, (torch.nn.Conv2d, torch.nn.Linear))]:
        bound = 1 / np.sqrt(m.weight[0].numel())  # PyTorch's default initial bound for this fan-in
        assert bound * 0.8 < float(m.weight.detach().abs().max()) <= bound * (1 + 1e-6)


PLAIN_MODEL = '''
from edgeweave.api import MODELS, Params


@MODELS.register("plain_net", Params)
class PlainNet:
    """A plugin model whose parameters are plain Params: no width, no batch norm, no norm_samples."""

    def __init__(self, params):
        self.params = params

    def build(self, input_shape, num_classes):
        from edgeweave.api import ConvNet, conv_stack, mlp_head

        features, channels, pixels = conv_stack([8, "M"], input_shape[0], input_shape[1:], 1.0, False)
        return ConvNet(features, mlp_head(channels * pixels, [16], num_classes))
'''


def test_a_finished_run_of_a_plugin_model_with_plain_params_is_scored_at_each_width(tmp_path):
    """`edgeweave report --widths` on such a run read model.norm_samples, which plain Params lack
    (AttributeError)."""
    from safetensors.torch import save_file

    from edgeweave.platform.config.schema import dump_config
    from edgeweave.platform.models import build_model
    from edgeweave.platform.report.widths import run_width_scores

    (tmp_path / "plain_net.py").write_text(PLAIN_MODEL)
    raw = tiny_raw(tmp_path, plugins=[str(tmp_path / "plain_net.py")])
    raw["model"] = {"name": "plain_net"}
    cfg = build_config(raw)
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    (run_dir / "config.yaml").write_text(dump_config(cfg))
    data = load_dataset(cfg.data, cfg.seed)
    save_file(
        build_model(cfg.model, data.input_shape, data.num_classes, cfg.seed).state_dict(),
        str(run_dir / "model.safetensors"),
    )
    scores = run_width_scores(run_dir, [0.5, 1.0])
    assert sorted(scores) == [0.5, 1.0] and all(0.0 <= acc <= 1.0 for acc, _ in scores.values())
