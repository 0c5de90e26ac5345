"""The platform's side of `edgeweave bench`: a real run on a fresh local Ray, timed from Ray's start."""

from __future__ import annotations

import os
import time
from typing import Any

import ray

from edgeweave.actors.session import CALL_TIMEOUT, Simulation
from edgeweave.platform.bench.rounds import rss_bytes
from edgeweave.platform.config.schema import ExperimentConfig
from edgeweave.platform.data import ArrayData
from edgeweave.platform.partition import Partition


def run_platform(cfg: ExperimentConfig, data: ArrayData, partition: Partition, workers: int) -> dict[str, Any]:
    """Start Ray, put the data, start the workers and the driver, run every round; Ray start-up included.

    Returns what `run_floor` does: wall, start-up, per-round seconds with the driver's evaluation seconds, RSS."""
    if ray.is_initialized():
        raise RuntimeError("edgeweave bench starts its own Ray; run it outside an existing session")
    t0 = time.perf_counter()
    with Simulation(cfg, data, partition, num_workers=workers) as sim:
        pids = [
            ray.get(sim.driver.pid.remote(), timeout=CALL_TIMEOUT),  # every actor up
            *ray.get(sim.driver.pids.remote(), timeout=CALL_TIMEOUT),
        ]
        startup = time.perf_counter() - t0
        rounds, rss, accuracy = [], [], None
        for r in range(cfg.training.rounds):
            t = time.perf_counter()
            metrics = sim.round(r)
            rounds.append(time.perf_counter() - t)
            accuracy = metrics["test_accuracy"] if metrics["test_accuracy"] is not None else accuracy
            rss.append(rss_bytes([os.getpid(), *pids]))
        wall = time.perf_counter() - t0
        timed = ray.get(sim.driver.timings.remote(), timeout=CALL_TIMEOUT)[-len(rounds) :]
    return {
        "wall": wall,
        "startup": startup,
        "rounds": rounds,
        "evaluations": [t["evaluate"] for t in timed],
        "accuracy": accuracy,
        "rss": rss,
        "peak_rss": max(rss),
    }
