"""The driver actor: runs synchronous rounds (or async server steps) over an elastic pool of device workers
around one Server."""

from __future__ import annotations

import os
import time
from collections import deque
from dataclasses import replace
from typing import Any

import numpy as np
import ray

from edgeweave.actors.pool import LOST, Member, Spawn, WorkerPool
from edgeweave.platform.config.schema import ExperimentConfig
from edgeweave.platform.data import ArrayData
from edgeweave.platform.partition import Partition
from edgeweave.platform.run.checkpoint import RunState
from edgeweave.platform.run.server import Unit, split_jobs
from edgeweave.platform.run.servers import build_server
from edgeweave.platform.train.aggregate import Partial

POLL = 5.0  # seconds between looks at the cluster while a round waits on its workers
TIMED = 1000  # rounds whose wall seconds the driver keeps for the cluster benchmark


class Driver:
    """Plans a round, sends the global weights once, gathers one partial per share, evaluates. An async
    server step is the same with one set of weights per model version its updates trained on.

    The round's devices are shared between the workers ready at its start. A worker lost in the
    round (killed, crashed, its node gone) leaves the pool and its share is trained again by a
    worker that finished its own; every draw derives from (seed, round, device), so the redone
    share gives the very same partial. Between rounds the pool follows the cluster (see
    WorkerPool). Every wait is bounded by `ray.round_timeout` and `ray.start_timeout`.
    """

    def __init__(self, cfg: ExperimentConfig) -> None:
        """On the config alone, so the actor's process can start (and import torch) before the data is put."""
        self.cfg = cfg
        # per round (the last TIMED): the driver's own work, its wait on the workers, evaluation
        self.seconds: deque[dict[str, float]] = deque(maxlen=TIMED)

    def open(
        self,
        cfg: ExperimentConfig,
        data: ArrayData,
        partition: Partition,
        spawn: Spawn,
        limit: int,
        starting: list[dict],
    ) -> None:
        """The server for the run `cfg` on its data, and the pool of the workers the caller started (`starting`:
        their first answers, in a list so the refs stay refs). A driver kept from an earlier run opens again."""
        self.cfg = cfg
        self.seconds.clear()
        self.server = build_server(cfg, data, partition)
        self.pool = WorkerPool(spawn, limit, starting=dict(starting[0]))

    def start(self) -> int:
        """Wait for the first workers (bounded); returns how many answered."""
        self.pool.start(self.cfg.ray.start_timeout)
        return len(self.pool.ready)

    def _train(
        self, units: list[Unit], weights_refs: list[Any], state_ref: Any, where: str
    ) -> tuple[list[list[Partial]], int]:
        """Every share of every unit trained by some worker; returns each unit's partials in share order (so
        their sum does not depend on which worker finished first) and how many workers trained them. `where`
        names the round or server step in errors."""
        t = self.cfg.ray
        deadline = time.monotonic() + t.round_timeout
        idle = list(self.pool.ready)
        shares = [
            (u, share)
            for u, unit in enumerate(units)
            for share in split_jobs(unit.jobs, unit.samples, max(1, len(idle)))
            if share
        ]
        stored = [self.server.stored(share) for _, share in shares]  # what the share's devices kept, if anything
        todo = deque(range(len(shares)))
        running: dict[Any, tuple[Member, int]] = {}
        partials: dict[int, Partial] = {}
        trained_by: set[int] = set()
        while todo or running:
            if todo and not idle:
                idle += self.pool.collect()  # a worker started since (a replacement, a new node's)
                if not idle and not running:
                    idle += self.pool.wait_for_one(
                        min(deadline, time.monotonic() + t.start_timeout), f"{where}: every device worker was lost"
                    )
            while todo and idle:
                member, i = idle.pop(0), todo.popleft()
                u, share = shares[i]
                call = member.handle.run.remote(units[u].version, weights_refs[u], share, state_ref, stored[i])
                running[call] = (member, i)
            if not running:
                continue
            left = deadline - time.monotonic()
            if left <= 0:
                raise RuntimeError(
                    f"{where}: {len(running)} device worker(s) neither answered nor "
                    f"were lost within {t.round_timeout:g} s (ray.round_timeout)"
                )
            done, _ = ray.wait(list(running), num_returns=1, timeout=min(POLL, left))
            if not done:  # a worker whose node left may take Ray a while to report: look ourselves
                gone = self.pool.prune()
                done = [ref for ref, (member, _) in running.items() if member in gone]
            for ref in done:
                member, i = running.pop(ref)
                try:
                    partials[i] = ray.get(ref, timeout=0)
                    trained_by.add(id(member))
                    idle.append(member)
                except (*LOST, ray.exceptions.GetTimeoutError):
                    self.pool.drop(member)
                    todo.append(i)
                    self.pool.grow()  # a replacement where there is room; it joins when it answers
        per_unit: list[list[Partial]] = [[] for _ in units]
        for i in sorted(partials):
            per_unit[shares[i][0]].append(partials[i])
        return per_unit, len(trained_by)

    def round(self, round_: int) -> dict[str, Any]:
        """One sync round, or one async server step (`training.rounds` counts either)."""
        t0 = time.perf_counter()
        self.pool.refresh()
        units = self.server.plan_units(round_)
        weights_refs = [ray.put(unit.weights) for unit in units]  # each version's weights, once
        state = self.server.shared
        state_ref = ray.put(state) if state is not None else None
        t1 = time.perf_counter()
        where = f"{'server step' if self.cfg.aggregation.mode == 'async' else 'round'} {round_}"
        partials, workers = self._train(units, weights_refs, state_ref, where)
        t2 = time.perf_counter()
        metrics, records = self.server.fold(partials)
        metrics["test_accuracy"] = metrics["test_loss"] = None
        t = self.cfg.training
        t3 = time.perf_counter()
        evaluated = "non_finite" not in metrics and ((round_ + 1) % t.eval_every == 0 or round_ + 1 == t.rounds)
        if evaluated:
            metrics["test_accuracy"], metrics["test_loss"] = self.server.evaluate()
        self.seconds.append({"driver": (t1 - t0) + (t3 - t2), "train": t2 - t1, "evaluate": time.perf_counter() - t3})
        metrics["evaluation_seconds"] = round(self.seconds[-1]["evaluate"], 4) if evaluated else None
        metrics["workers"] = workers
        metrics["workers_lost"] = self.pool.lost
        metrics["device_records"] = records
        return metrics

    def pid(self) -> int:
        """The actor's process id (the benchmark reads its memory; answering also means it is up)."""
        return os.getpid()

    def timings(self) -> list[dict[str, float]]:
        """Wall seconds of the last TIMED rounds: planning and aggregation, waiting on the workers, evaluation."""
        return list(self.seconds)

    def pids(self) -> list[int]:
        """The process ids of the ready workers."""
        return ray.get([m.handle.pid.remote() for m in self.pool.ready], timeout=self.cfg.ray.start_timeout)

    def worker(self, i: int) -> Any:
        """The handle of ready worker i as the driver holds it now (after any replacement)."""
        return self.pool.ready[i].handle

    def workers(self) -> list[tuple[Any, str]]:
        """Every ready worker's handle and node id (workers that have started since join first)."""
        self.pool.collect()
        return [(m.handle, m.node) for m in self.pool.ready]

    def weights(self) -> np.ndarray:
        return self.server.weights

    def snapshot(self, next_round: int, history: list[dict[str, Any]]) -> RunState:
        """The server's state and the driver's own: the workers lost so far (metrics count on from there)."""
        return replace(self.server.snapshot(next_round, history), workers_lost=self.pool.lost)

    def release(self) -> None:
        """Before the actor is killed: remove what it holds on disk (a device-state store too large for memory)."""
        if self.server.states is not None:
            self.server.states.close()

    def forget(self) -> list[Any]:
        """The run is over but the process stays for the next (a sweep's next trial): drop the server (and
        its hold on the run's data); returns the handles of workers still starting, for the caller to kill."""
        starting = list(self.pool.starting.values())
        del self.server, self.pool  # as before `open`
        return starting

    def restore(self, state: RunState) -> None:
        self.server.restore(state)
        self.pool.lost = state.workers_lost


RemoteDriver = ray.remote(Driver)
