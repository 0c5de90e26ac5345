"""Real runs on a local Ray: the quickstart end to end, and results independent of worker count."""

import json

import numpy as np
import pytest
import yaml
from safetensors.torch import load_file

from edgeweave.actors.session import Simulation
from edgeweave.cli import main
from edgeweave.platform.config.schema import build_config, load_config
from edgeweave.platform.data import load_dataset
from edgeweave.platform.models import build_model
from edgeweave.platform.partition import partition_data
from edgeweave.platform.train.training import evaluate
from tests.helpers import read_wandb_offline, tiny_raw

pytestmark = pytest.mark.integration


def test_shortened_quickstart_end_to_end(local_ray, tmp_path, monkeypatch):
    monkeypatch.setenv("WANDB_MODE", "offline")
    out = tmp_path / "runs"
    code = main(
        [
            "run",
            "configs/quickstart.yaml",
            "--set",
            "training.rounds=8",
            "--set",
            f"logging.out_dir={out}",
            "--set",
            "logging.progress=false",
        ]
    )
    assert code == 0
    (run_dir,) = out.iterdir()
    assert run_dir.name.startswith("quickstart-")

    cfg = load_config(run_dir / "config.yaml")
    assert cfg.training.rounds == 8 and cfg.strategy.name == "fedavg"

    lines = [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]
    assert [m["round"] for m in lines] == list(range(8))
    for key in ("test_accuracy", "test_loss", "samples", "wall_seconds"):
        assert all(m[key] is not None for m in lines), key
    final = lines[-1]["test_accuracy"]
    assert final > 0.6  # chance is 0.1
    assert lines[-1]["test_loss"] < lines[0]["test_loss"]

    data = load_dataset(cfg.data, cfg.seed)
    model = build_model(cfg.model, data.input_shape, data.num_classes, seed=99)
    model.load_state_dict(load_file(run_dir / "model.safetensors"))
    acc, _ = evaluate(model, data.x_test, data.y_test)
    assert acc == pytest.approx(final, abs=1e-9)

    (wandb_file,) = (run_dir / "wandb").glob("offline-run-*/run-*.wandb")
    logged = read_wandb_offline(wandb_file)
    assert [h["round"] for h in logged["history"]] == list(range(8))
    assert logged["summary"]["test_accuracy"] == pytest.approx(final)


def final_state(cfg, workers):
    data = load_dataset(cfg.data, cfg.seed)
    part = partition_data(cfg.partition, data.y_train, cfg.devices.count, cfg.seed)
    sim = Simulation(cfg, data, part, num_workers=workers)
    try:
        metrics = [sim.round(r) for r in range(cfg.training.rounds)]
        return metrics[-1]["test_accuracy"], sim.weights()
    finally:
        sim.close()


# DISTREAL on speed that changes every second of virtual time, cut by a deadline: devices choose mid-round.
SHIFTING = {
    "count": 8,
    "per_round": 5,
    "flops_per_second": 2e6,
    "deadline": 30.0,
    "stragglers": "partial",
    "resources": {
        "name": "markov",
        "period": 1.0,
        "p_off": 0.02,
        "p_on": 0.5,
        "p_slow": 0.5,
        "p_fast": 0.5,
        "slow": 0.3,
    },
}


def test_result_does_not_depend_on_worker_count_and_repeats(local_ray, tmp_path):
    # DISTREAL on shifting resources; FedAvg across the nodes of a cluster, against a run without Ray, is in
    # tests/integration/test_cluster.py.
    from tests.unit.test_distreal import real_front

    raw = tiny_raw(
        tmp_path,
        devices={"count": 8, "per_round": 5},
        training={"rounds": 3},
        partition={"policy": "dirichlet", "alpha": 0.5, "min_samples": 5},
    )
    plain = build_config(raw)
    front = real_front(plain, load_dataset(plain.data, plain.seed), tmp_path / "front.json")
    cfg = build_config({**raw, "devices": SHIFTING, "strategy": {"name": "distreal", "front": str(front)}})
    acc1, w1 = final_state(cfg, 1)
    acc2, w2 = final_state(cfg, 2)
    acc2b, w2b = final_state(cfg, 2)
    assert acc1 == pytest.approx(acc2, abs=1e-5)
    np.testing.assert_allclose(w1, w2, atol=1e-6)
    assert acc2 == acc2b and np.array_equal(w2, w2b)
    assert acc1 > 0.12  # it learns: the untrained model, like chance, scores 0.10 (DISTREAL runs 3 short rounds)


def test_async_steps_do_not_depend_on_worker_count_and_equal_the_run_without_ray(local_ray, tmp_path):
    # Width devices (HeteroFL by tier) on shifting resources: updates of several model versions in each step.
    from tests.helpers import run_without_ray
    from tests.unit.test_async import async_raw

    cfg = build_config(async_raw(tmp_path, strategy={"name": "heterofl"}, training={"rounds": 5}))
    acc1, w1 = final_state(cfg, 1)
    acc2, w2 = final_state(cfg, 2)
    np.testing.assert_allclose(w1, w2, atol=1e-6)
    np.testing.assert_allclose(w2, run_without_ray(cfg).weights, atol=1e-6)
    assert acc1 == pytest.approx(acc2, abs=1e-5)


def test_bad_config_never_starts_a_run(local_ray, tmp_path, capsys):
    path = tmp_path / "exp.yaml"
    path.write_text(yaml.safe_dump(tiny_raw(tmp_path)))
    assert main(["run", str(path), "--set", "devices.per_round=100"]) == 2
    assert capsys.readouterr().err.strip() == "error: devices.per_round = 100: must be at most devices.count (6)"
    assert not (tmp_path / "runs").exists()


@pytest.mark.parametrize("mode", ["sync", "async"])
def test_server_rules_local_terms_and_device_state_do_not_depend_on_worker_count(local_ray, tmp_path, mode):
    # SCAFFOLD (state every device keeps, sent with its job and written back by the driver) with FedProx's term
    # and Adam on the server, sync; FjORD's sub-models with FedProx and Yogi, async (SCAFFOLD refuses async).
    from tests.helpers import run_without_ray
    from tests.unit.test_async import async_raw

    if mode == "sync":
        raw = tiny_raw(
            tmp_path,
            strategy={"name": "scaffold"},
            devices={"count": 8, "per_round": 5},
            training={"rounds": 3, "prox_mu": 0.1},
            aggregation={"server": {"name": "adam"}},
        )
    else:
        raw = async_raw(
            tmp_path,
            strategy={"name": "fjord"},
            training={"rounds": 4, "prox_mu": 0.1},
            aggregation={"server": {"name": "yogi"}},
        )
    cfg = build_config(raw)
    acc1, w1 = final_state(cfg, 1)
    acc2, w2 = final_state(cfg, 2)
    np.testing.assert_allclose(w1, w2, atol=1e-6)
    np.testing.assert_allclose(w2, run_without_ray(cfg).weights, atol=1e-6)
    assert acc1 == pytest.approx(acc2, abs=1e-5)
