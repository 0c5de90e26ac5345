"""What survives what: a killed run resumes to the same result; a killed worker is replaced and
its devices redone with the same outcome; a failing disk stops the run with the checkpoint intact."""

import json
import os
import signal
import subprocess
import sys
import time

import numpy as np
import pytest
import ray
import yaml
from safetensors.torch import load_file

from edgeweave.actors.session import Simulation
from edgeweave.cli import main
from edgeweave.platform.config.schema import build_config
from edgeweave.platform.data import load_dataset
from edgeweave.platform.partition import partition_data
from edgeweave.platform.run.checkpoint import fingerprint, load_checkpoint
from tests.helpers import all_cpus_free, tiny_raw, wait_for_rounds

pytestmark = pytest.mark.integration


def metrics_of(run_dir):
    """Every round's metrics but how it ran (wall time, how many workers: a resumed run may start with fewer)."""
    rows = [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]
    return [{k: v for k, v in m.items() if k not in ("wall_seconds", "workers", "workers_lost")} for m in rows]


@pytest.mark.parametrize("aggregation", [{}, {"mode": "async", "buffer": 2, "concurrency": 3}], ids=["sync", "async"])
def test_killed_run_resumes_to_the_uninterrupted_result(local_ray, tmp_path, aggregation):
    # Async: the checkpoint holds the devices in flight and the model versions they train on.
    raw = tiny_raw(
        tmp_path, training={"rounds": 6, "local_steps": 20}, logging={"checkpoint_every": 1}, aggregation=aggregation
    )
    path = tmp_path / "exp.yaml"
    path.write_text(yaml.safe_dump(raw))
    assert main(["run", str(path), "--set", f"logging.out_dir={tmp_path / 'whole'}"]) == 0
    (whole,) = (tmp_path / "whole").iterdir()

    # Another process runs the same config on this Ray and is killed once round 3 is logged.
    env = {**os.environ, "RAY_ADDRESS": ray.get_runtime_context().gcs_address, "PYTHONPATH": os.getcwd()}
    proc = subprocess.Popen(
        [sys.executable, "-m", "edgeweave.cli", "run", str(path), "--set", f"logging.out_dir={tmp_path / 'cut'}"],
        env=env,
        start_new_session=True,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        wait_for_rounds(tmp_path / "cut", "*/metrics.jsonl", 3, proc)
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(timeout=30)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
    (cut,) = (tmp_path / "cut").iterdir()
    assert 3 <= len(metrics_of(cut)) < 6 and not (cut / "model.safetensors").exists()

    assert main(["run", "--resume", str(cut)]) == 0
    assert metrics_of(cut) == metrics_of(whole)
    a, b = load_file(cut / "model.safetensors"), load_file(whole / "model.safetensors")
    assert all(np.array_equal(a[k].numpy(), b[k].numpy()) for k in b)


def run_with_kills(cfg, kill_at: dict):
    """Run every round; before or during the rounds in `kill_at`, kill worker 0 with ray.kill."""
    data = load_dataset(cfg.data, cfg.seed)
    part = partition_data(cfg.partition, data.y_train, cfg.devices.count, cfg.seed)
    all_cpus_free()
    with Simulation(cfg, data, part, num_workers=2) as sim:
        metrics = []
        for r in range(cfg.training.rounds):
            worker = ray.get(sim.driver.worker.remote(0))  # asked between rounds: the driver is free
            if kill_at.get(r) == "before":
                ray.kill(worker)
            ref = sim.driver.round.remote(r)
            if kill_at.get(r) == "during":
                time.sleep(0.3)
                ray.kill(worker)
            metrics.append(ray.get(ref))
        return metrics, sim.weights()


def test_a_killed_worker_is_replaced_and_its_devices_redone(local_ray, tmp_path):
    cfg = build_config(
        tiny_raw(tmp_path, training={"rounds": 4, "local_steps": 60}, devices={"count": 8, "per_round": 6})
    )
    clean, w_clean = run_with_kills(cfg, {})
    hurt, w_hurt = run_with_kills(cfg, {1: "before", 2: "during"})
    assert hurt[-1]["workers_lost"] == 2 and clean[-1]["workers_lost"] == 0
    assert [m["workers"] for m in clean] == [2] * 4  # (in hurt rounds, a survivor or a replacement redoes the share)
    np.testing.assert_array_equal(w_hurt, w_clean)
    assert [m["test_accuracy"] for m in hurt] == [m["test_accuracy"] for m in clean]
    assert [m["samples"] for m in hurt] == [m["samples"] for m in clean]


def test_a_full_disk_stops_the_run_with_the_checkpoint_intact(local_ray, tmp_path, monkeypatch, capsys):
    from edgeweave.platform.run import sinks

    raw = tiny_raw(tmp_path, training={"rounds": 5}, logging={"checkpoint_every": 2})
    path = tmp_path / "exp.yaml"
    path.write_text(yaml.safe_dump(raw))
    real_log, calls = sinks.JsonlSink.log, []

    def failing_log(self, metrics):
        calls.append(metrics.get("round"))
        if metrics.get("round") == 3 and "test_accuracy" in metrics:
            raise OSError(28, "No space left on device")
        real_log(self, metrics)

    monkeypatch.setattr(sinks.JsonlSink, "log", failing_log)
    assert main(["run", str(path)]) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "No space left on device" in err and "checkpoint from round 2 is intact" in err
    (run_dir,) = (tmp_path / "runs").iterdir()
    state = load_checkpoint(run_dir / "checkpoint", fingerprint((run_dir / "config.yaml").read_text()))
    assert state.next_round == 2 and len(state.history) == 2

    monkeypatch.setattr(sinks.JsonlSink, "log", real_log)  # space freed: the run goes on
    assert main(["run", "--resume", str(run_dir)]) == 0
    assert [m["round"] for m in metrics_of(run_dir)] == list(range(5))


def test_a_lost_driver_fails_the_run_and_leaves_a_resumable_checkpoint(local_ray, tmp_path):
    from edgeweave.platform.core.errors import RunFailed
    from edgeweave.platform.run.experiment import run_rounds
    from edgeweave.platform.run.rundir import create_run_dir
    from edgeweave.platform.run.sinks import default_sinks

    cfg = build_config(tiny_raw(tmp_path, training={"rounds": 5}, logging={"checkpoint_every": 1}))
    data = load_dataset(cfg.data, cfg.seed)
    part = partition_data(cfg.partition, data.y_train, cfg.devices.count, cfg.seed)
    run_dir = create_run_dir(cfg)

    class LosesItsDriver:
        def __init__(self, sim):
            self.sim = sim

        def round(self, r):
            if r == 3:
                ray.kill(self.sim.driver)
            return self.sim.round(r)

        def __getattr__(self, name):
            return getattr(self.sim, name)

    with Simulation(cfg, data, part) as sim:
        with pytest.raises(RunFailed) as failed:
            run_rounds(cfg, LosesItsDriver(sim), default_sinks(cfg, run_dir), run_dir)
    assert "round 3 failed" in str(failed.value) and "checkpoint from round 3 is intact" in str(failed.value)
    assert main(["run", "--resume", str(run_dir)]) == 0
    assert [m["round"] for m in metrics_of(run_dir)] == list(range(5))


class WorkerThatCannotStart:
    def __init__(self) -> None:
        raise ModuleNotFoundError("No module named 'missing_on_this_node'")

    def setup(self) -> str:
        return ""


def test_a_worker_that_fails_to_start_stops_the_run_with_its_own_error_at_once(local_ray):
    from edgeweave.actors.pool import Spawn, WorkerPool

    pool = WorkerPool(Spawn(ray.remote(WorkerThatCannotStart), (), cpus=0.5, gpus=0.0), limit=2)
    t0 = time.monotonic()
    with pytest.raises(RuntimeError) as failed:
        pool.start(timeout=60)
    assert "a device worker failed to start" in str(failed.value) and "missing_on_this_node" in str(failed.value)
    assert time.monotonic() - t0 < 30  # not the whole start_timeout, starting worker after worker
