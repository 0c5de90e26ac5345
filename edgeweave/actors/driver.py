"""The driver actor: runs synchronous rounds over the worker pool around one Server."""

from __future__ import annotations

from typing import Any

import numpy as np
import ray

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
        jobs = self.server.plan(round_)
        sizes = [int(self.server.shard_sizes.sum()) if j.pooled else int(self.server.shard_sizes[j.device])
                 for j in jobs]
        weights_ref = ray.put(self.server.weights)
        shares = split_jobs(jobs, sizes, len(self.workers))
        partials = ray.get([w.run.remote(round_, weights_ref, share)
                            for w, share in zip(self.workers, shares) if share])
        records = self.server.update(partials)
        metrics: dict[str, Any] = {
            "round": round_,
            "devices": len(records),
            "samples": int(sum(r["samples"] for r in records)),
            "train_loss": float(np.mean([r["loss"] for r in records])) if records else None,
            "test_accuracy": None,
            "test_loss": None,
        }
        t = self.cfg.training
        if (round_ + 1) % t.eval_every == 0 or round_ + 1 == t.rounds:
            metrics["test_accuracy"], metrics["test_loss"] = self.server.evaluate()
        return metrics

    def weights(self) -> np.ndarray:
        return self.server.weights


RemoteDriver = ray.remote(Driver)
