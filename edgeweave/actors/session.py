"""Start or join Ray, build the worker pool and the driver, and tear them down again."""

from __future__ import annotations

import logging
import os
from typing import Any, Optional

import numpy as np
import ray

from edgeweave.actors.driver import RemoteDriver
from edgeweave.actors.worker import RemoteDeviceWorker
from edgeweave.platform.checkpoint import RunState
from edgeweave.platform.config import ExperimentConfig
from edgeweave.platform.data import ArrayData
from edgeweave.platform.partition import Partition


def connect(cfg: ExperimentConfig) -> bool:
    """Join the configured cluster (or RAY_ADDRESS, as inside `ray job submit`), else start one.

    Returns True when this call started Ray, so the caller knows to shut it down.
    """
    if ray.is_initialized():
        return False
    address = cfg.ray.address or os.environ.get("RAY_ADDRESS")
    if address:
        ray.init(address=address, logging_level=logging.WARNING)
        return False
    ray.init(address="local", include_dashboard=False, logging_level=logging.WARNING,
             dashboard_host="127.0.0.1")
    return True


def worker_count(cfg: ExperimentConfig) -> int:
    """Configured, or one per free CPU slot (GPU slot when workers take GPUs), at most one per device."""
    if cfg.ray.num_workers:
        return cfg.ray.num_workers
    free = ray.available_resources()
    slots = free.get("CPU", 1.0) / cfg.ray.cpus_per_worker
    if cfg.ray.gpus_per_worker > 0:
        slots = min(slots, free.get("GPU", 0.0) / cfg.ray.gpus_per_worker)
    return max(1, min(int(slots), cfg.devices.per_round))


class Simulation:
    """The data in the object store once, a fixed pool of device workers and a driver actor."""

    def __init__(self, cfg: ExperimentConfig, data: ArrayData, partition: Partition,
                 num_workers: Optional[int] = None) -> None:
        self.started = connect(cfg)
        data_ref, part_ref = ray.put(data), ray.put(partition)
        n = num_workers or worker_count(cfg)
        threads = max(1, int(cfg.ray.cpus_per_worker))
        options = {"num_cpus": cfg.ray.cpus_per_worker, "num_gpus": cfg.ray.gpus_per_worker}
        self.workers = [RemoteDeviceWorker.options(**options).remote(cfg, data_ref, part_ref, threads)
                        for _ in range(n)]
        # How to start a replacement worker: refs wrapped in lists travel as refs, not as data.
        spawn = (RemoteDeviceWorker, (cfg, [data_ref], [part_ref], threads), options)
        self.driver = RemoteDriver.options(num_cpus=0).remote(cfg, data_ref, part_ref, self.workers, spawn)

    def round(self, round_: int) -> dict[str, Any]:
        return ray.get(self.driver.round.remote(round_))

    def weights(self) -> np.ndarray:
        return ray.get(self.driver.weights.remote())

    def snapshot(self, next_round: int, history: list[dict[str, Any]]) -> RunState:
        return ray.get(self.driver.snapshot.remote(next_round, history))

    def restore(self, state: RunState) -> None:
        ray.get(self.driver.restore.remote(state))

    def close(self) -> None:
        for actor in [self.driver, *self.workers]:
            ray.kill(actor)
        if self.started:
            ray.shutdown()

    def __enter__(self) -> "Simulation":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()
