"""The driver actor: runs synchronous rounds over the worker pool around one Server."""

from __future__ import annotations

import os
from typing import Any

import numpy as np
import ray

from edgeweave.platform.checkpoint import RunState
from edgeweave.platform.config import ExperimentConfig
from edgeweave.platform.data import ArrayData
from edgeweave.platform.partition import Partition
from edgeweave.platform.server import Server, split_jobs


class Driver:
    """Plans a round, sends the global weights once, gathers one partial per worker, evaluates."""

    def __init__(self, cfg: ExperimentConfig, data: ArrayData, partition: Partition, workers: list) -> None:
        self.cfg = cfg
        self.server = Server(cfg, data, partition)
        self.workers = workers

    def round(self, round_: int) -> dict[str, Any]:
        jobs, samples = self.server.plan(round_)
        weights_ref = ray.put(self.server.weights)
        state = self.server.strategy.shared_state()
        state_ref = ray.put(state) if state is not None else None
        shares = split_jobs(jobs, samples, len(self.workers))
        partials = ray.get([w.run.remote(round_, weights_ref, share, state_ref)
                            for w, share in zip(self.workers, shares) if share])
        metrics, records = self.server.update(partials)
        metrics["test_accuracy"] = metrics["test_loss"] = None
        t = self.cfg.training
        if (round_ + 1) % t.eval_every == 0 or round_ + 1 == t.rounds:
            metrics["test_accuracy"], metrics["test_loss"] = self.server.evaluate()
        metrics["device_records"] = records
        return metrics

    def pid(self) -> int:
        """The actor's process id (the benchmark reads its memory; answering also means it is up)."""
        return os.getpid()

    def weights(self) -> np.ndarray:
        return self.server.weights

    def snapshot(self, next_round: int, history: list[dict[str, Any]]) -> RunState:
        return self.server.snapshot(next_round, history)

    def restore(self, state: RunState) -> None:
        self.server.restore(state)


RemoteDriver = ray.remote(Driver)
