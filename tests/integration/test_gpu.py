"""GPU device workers (`ray.gpus_per_worker` > 0): every kind of method trains on CUDA, as on the CPU.

Skipped where torch sees no CUDA device. Shuffling, augmentation and sub-model draws come from
CPU generators, so a GPU worker trains exactly the batches and sub-models the CPU worker does;
with TF32 off only float rounding differs.
"""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import pytest
import ray
import torch

from edgeweave.actors.session import Simulation
from edgeweave.cli import main
from edgeweave.platform.config.schema import build_config
from edgeweave.platform.data import load_dataset
from edgeweave.platform.methods.front import Front, made_for
from edgeweave.platform.models import build_model
from edgeweave.platform.partition import partition_data
from edgeweave.platform.run.client import Client
from edgeweave.platform.run.server import Server
from edgeweave.platform.train.plans import dropout_plan
from edgeweave.platform.train.submodel import Slicer
from tests.helpers import tiny_raw

pytestmark = [pytest.mark.gpu, pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")]

GPU = "cuda"  # the device type a worker with ray.gpus_per_worker > 0 must train on


def exact_fp32() -> None:
    """Plain float32 convolutions and matmuls (no TF32), so that GPU results compare with the CPU's."""
    torch.backends.cudnn.allow_tf32 = False
    torch.backends.cuda.matmul.allow_tf32 = False


def front_for(raw: dict, path: Path) -> str:
    """A DISTREAL front with this model's exact FLOPs; dropping half of each conv is best, so every
    mini-batch trains a fresh sliced sub-model."""
    cfg = build_config(raw, check_strategy=False)
    data = load_dataset(cfg.data, cfg.seed)
    slicer = Slicer(build_model(cfg.model, data.input_shape, data.num_classes, cfg.seed), data.input_shape)
    vectors = np.array([[0.5, 0.5], [0.25, 0.0], [0.0, 0.0]])
    b = cfg.training.batch_size
    costs = np.array([slicer.flops(dropout_plan(slicer, v, np.random.default_rng(0))) * b for v in vectors])
    Front(vectors, costs, np.array([1.0, 2.0, 3.0]), made_for(cfg, data.input_shape, data.num_classes)).save(path)
    return str(path)


# One of each kind of device half: full model, static width (label split), per-mini-batch width,
# per-mini-batch dropout, task sub-models with their cross-task projection, and dropout inside them.
METHODS = {
    "fedavg": {"name": "fedavg"},
    "heterofl": {"name": "heterofl", "label_split": True},
    "fjord": {"name": "fjord"},
    "distreal": {"name": "distreal", "front": "FRONT"},
    "taskwise": {"name": "taskwise", "groups": 5, "tasks_per_device": 2},
    "taskwise_dropout": {"name": "taskwise", "groups": 5, "tasks_per_device": 2, "dropout_front": "FRONT"},
}


def method_raw(tmp_path: Path, method: str, gpus: float) -> dict:
    raw = tiny_raw(
        tmp_path,
        training={"rounds": 2, "momentum": 0.9, "weight_decay": 1e-3},
        partition={"policy": "dirichlet", "alpha": 0.5, "min_samples": 5},
    )
    front = tmp_path / "front.json"
    if not front.exists():
        front_for(raw, front)
    raw["strategy"] = {k: str(front) if v == "FRONT" else v for k, v in METHODS[method].items()}
    raw["ray"] = {"gpus_per_worker": gpus}
    return raw


@pytest.fixture
def plain_fp32():
    saved = torch.backends.cudnn.allow_tf32, torch.backends.cuda.matmul.allow_tf32
    exact_fp32()
    yield
    torch.backends.cudnn.allow_tf32, torch.backends.cuda.matmul.allow_tf32 = saved


@pytest.mark.parametrize("method", list(METHODS))
def test_a_gpu_client_trains_what_the_cpu_client_trains(tmp_path, plain_fp32, method):
    cpu_cfg = build_config(method_raw(tmp_path, method, 0.0))
    gpu_cfg = build_config(method_raw(tmp_path, method, 1.0))
    data = load_dataset(cpu_cfg.data, cpu_cfg.seed)
    part = partition_data(cpu_cfg.partition, data.y_train, cpu_cfg.devices.count, cpu_cfg.seed)
    server, cpu, gpu = Server(cpu_cfg, data, part), Client(cpu_cfg, data, part), Client(gpu_cfg, data, part)
    assert gpu.device.type == GPU and cpu.device.type == "cpu"
    assert all(t.device.type == GPU for t in [*gpu.model.parameters(), *gpu.model.buffers()])
    for r in range(gpu_cfg.training.rounds):
        jobs, _ = server.plan(r)
        state = server.shared
        on_gpu, on_cpu = gpu.run(r, server.weights, jobs, state), cpu.run(r, server.weights, jobs, state)
        assert [(d["device"], d["samples"], d["steps"]) for d in on_gpu.records] == [
            (d["device"], d["samples"], d["steps"]) for d in on_cpu.records
        ]  # the same draws
        np.testing.assert_array_equal(on_gpu.counts, on_cpu.counts)  # the same elements trained
        np.testing.assert_allclose(on_gpu.sums, on_cpu.sums, rtol=1e-3, atol=1e-4)
        server.update([on_cpu])
    built = [m for m, _, _ in gpu.submodels._models.values()]  # every sub-model shape it trained
    assert all(t.device.type == GPU for m in built for t in [*m.parameters(), *m.buffers()])


@pytest.fixture(scope="module")
def gpu_ray():
    ray.init(address="local", num_cpus=2, num_gpus=1, include_dashboard=False, logging_level=logging.WARNING)
    try:
        yield
    finally:
        ray.shutdown()


def simulate(raw: dict) -> tuple[set[str], list[dict], np.ndarray]:
    """Run the config through the real Ray driver and two workers; (worker devices, metrics, weights)."""
    cfg = build_config(raw)
    data = load_dataset(cfg.data, cfg.seed)
    part = partition_data(cfg.partition, data.y_train, cfg.devices.count, cfg.seed)

    def plain_fp32(_worker) -> None:  # nested, so it travels by value; imports in the worker
        import torch

        torch.backends.cudnn.allow_tf32 = False
        torch.backends.cuda.matmul.allow_tf32 = False

    with Simulation(cfg, data, part, num_workers=2) as sim:
        workers = [handle for handle, _ in ray.get(sim.driver.workers.remote())]
        ray.get([w.__ray_call__.remote(plain_fp32) for w in workers])
        devices = set().union(
            *ray.get(
                [
                    w.__ray_call__.remote(
                        lambda self: {self.client.device.type, next(self.client.model.parameters()).device.type}
                    )
                    for w in workers
                ]
            )
        )
        metrics = [sim.round(r) for r in range(cfg.training.rounds)]
        return devices, metrics, sim.weights()


@pytest.mark.integration
@pytest.mark.parametrize("method", ["fedavg", "heterofl", "fjord", "distreal", "taskwise", "taskwise_dropout"])
def test_gpu_workers_run_every_method_through_the_driver(gpu_ray, tmp_path, method):
    gpu_devices, gpu_metrics, gpu_weights = simulate(method_raw(tmp_path, method, 0.5))  # two workers share it
    cpu_devices, cpu_metrics, cpu_weights = simulate(method_raw(tmp_path, method, 0.0))
    assert gpu_devices == {GPU} and cpu_devices == {"cpu"}
    assert [m["samples"] for m in gpu_metrics] == [m["samples"] for m in cpu_metrics]
    assert gpu_metrics[-1]["test_accuracy"] == pytest.approx(cpu_metrics[-1]["test_accuracy"], abs=0.02)
    np.testing.assert_allclose(gpu_weights, cpu_weights, atol=1e-3)
    assert all(np.isfinite(m["test_loss"]) for m in gpu_metrics)


@pytest.mark.integration
def test_shortened_quickstart_on_gpu_workers(gpu_ray, tmp_path):
    import json

    out = tmp_path / "runs"
    code = main(
        [
            "run",
            "configs/quickstart.yaml",
            "--set",
            "training.rounds=4",
            "--set",
            "ray.gpus_per_worker=0.5",
            "--set",
            f"logging.out_dir={out}",
            "--set",
            "logging.progress=false",
            "--set",
            "logging.wandb.mode=disabled",
        ]
    )
    assert code == 0
    (run_dir,) = out.iterdir()
    lines = [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]
    assert [m["round"] for m in lines] == list(range(4))
    assert lines[-1]["test_accuracy"] > 0.3 and lines[-1]["test_loss"] < lines[0]["test_loss"]
