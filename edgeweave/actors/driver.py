"""The driver actor: runs synchronous rounds over the worker pool around one Server."""

from __future__ import annotations

import os
from typing import Any, Optional

import numpy as np
import ray

from edgeweave.platform.checkpoint import RunState
from edgeweave.platform.config import ExperimentConfig
from edgeweave.platform.data import ArrayData
from edgeweave.platform.partition import Partition
from edgeweave.platform.server import Server, split_jobs


RETRIES = 3  # replacements of one share's worker before the round gives up


class Driver:
    """Plans a round, sends the global weights once, gathers one partial per worker, evaluates.

    A worker that dies mid-round is replaced by a fresh one (from `spawn`: the worker class, its
    arguments and its resources) and its share of the round is trained again. Every draw derives
    from (seed, round, device), so the redone share gives the very same partial.
    """

    def __init__(self, cfg: ExperimentConfig, data: ArrayData, partition: Partition, workers: list,
                 spawn: Optional[tuple[Any, tuple, dict]] = None) -> None:
        self.cfg = cfg
        self.server = Server(cfg, data, partition)
        self.workers = workers
        self.spawn = spawn
        self.replaced = 0  # workers replaced so far (reported in each round's metrics)

    def _replace(self, i: int) -> Any:
        if self.spawn is None:
            raise RuntimeError("a device worker died and this driver cannot start another")
        cls, args, options = self.spawn
        self.workers[i] = cls.options(**options).remote(*[a[0] if isinstance(a, list) else a for a in args])
        self.replaced += 1
        return self.workers[i]

    def _train(self, round_: int, shares: list, weights_ref: Any, state_ref: Any) -> list:
        pending = {i: w.run.remote(round_, weights_ref, share, state_ref)
                   for i, (w, share) in enumerate(zip(self.workers, shares)) if share}
        partials = {}
        for i, ref in pending.items():
            for attempt in range(RETRIES + 1):
                try:
                    partials[i] = ray.get(ref)
                    break
                except ray.exceptions.RayActorError:
                    if attempt == RETRIES:
                        raise
                    ref = self._replace(i).run.remote(round_, weights_ref, shares[i], state_ref)
        return [partials[i] for i in sorted(partials)]

    def round(self, round_: int) -> dict[str, Any]:
        jobs, samples = self.server.plan(round_)
        weights_ref = ray.put(self.server.weights)
        state = self.server.shared
        state_ref = ray.put(state) if state is not None else None
        shares = split_jobs(jobs, samples, len(self.workers))
        partials = self._train(round_, shares, weights_ref, state_ref)
        metrics, records = self.server.update(partials)
        metrics["test_accuracy"] = metrics["test_loss"] = None
        t = self.cfg.training
        if "non_finite" not in metrics and ((round_ + 1) % t.eval_every == 0 or round_ + 1 == t.rounds):
            metrics["test_accuracy"], metrics["test_loss"] = self.server.evaluate()
        metrics["workers_replaced"] = self.replaced
        metrics["device_records"] = records
        return metrics

    def pid(self) -> int:
        """The actor's process id (the benchmark reads its memory; answering also means it is up)."""
        return os.getpid()

    def worker(self, i: int) -> Any:
        """The handle of worker i as the driver holds it now (after any replacement)."""
        return self.workers[i]

    def weights(self) -> np.ndarray:
        return self.server.weights

    def snapshot(self, next_round: int, history: list[dict[str, Any]]) -> RunState:
        return self.server.snapshot(next_round, history)

    def restore(self, state: RunState) -> None:
        self.server.restore(state)


RemoteDriver = ray.remote(Driver)
