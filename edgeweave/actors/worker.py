"""The device worker: a Ray actor around one Client, trained share after share, round after round."""

from __future__ import annotations

import os
from typing import Any, Optional

import numpy as np
import ray
import torch

from edgeweave.platform.config.schema import ExperimentConfig
from edgeweave.platform.data import ArrayData
from edgeweave.platform.methods import Job
from edgeweave.platform.partition import Partition
from edgeweave.platform.run.client import Client
from edgeweave.platform.train.aggregate import Partial


class DeviceWorker:
    """Starts (imports torch) on the config alone, so it can start before the data is loaded; then
    receives the data and partition once (zero-copy from the object store) and keeps one model."""

    def __init__(self, cfg: ExperimentConfig, threads: int) -> None:
        torch.set_num_threads(threads)
        self.cfg = cfg
        self.client: Optional[Client] = None

    def setup(self, data: ArrayData, partition: Partition, cfg: ExperimentConfig) -> str:
        """Build the client for the run `cfg` on its data and warm it up (before the first round, not in
        it); returns the node id (the worker's first answer: the pool takes it in then). A worker kept
        from an earlier run (a sweep's next trial) is set up again for the new one."""
        self.cfg = cfg
        self.client = Client(cfg, data, partition)
        self.client.warm_up()
        return self.node()

    def forget(self) -> None:
        """Drop the run's client (and its hold on the run's data); the process stays for the next run."""
        self.client = None

    def pid(self) -> int:
        """The actor's process id (the benchmark reads its memory; answering also means it is up)."""
        return os.getpid()

    def node(self) -> str:
        """The id of the node this worker runs on."""
        return ray.get_runtime_context().get_node_id()

    def run(
        self,
        round_: int,
        global_weights: np.ndarray,
        jobs: list[Job],
        state: Any = None,
        stored: Optional[dict[int, dict[str, np.ndarray]]] = None,
    ) -> Partial:
        assert self.client is not None  # `setup` built it: the pool sends work only to workers set up
        return self.client.run(round_, global_weights, jobs, state, stored)


RemoteDeviceWorker = ray.remote(DeviceWorker)
