"""Start or join Ray, build the driver (which starts the worker pool), and tear them down again."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Optional

import numpy as np
import ray
from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy, PlacementGroupSchedulingStrategy

from edgeweave.actors.connect import connect, ray_address
from edgeweave.actors.driver import RemoteDriver
from edgeweave.actors.pool import LOST, Spawn, WorkerPool
from edgeweave.actors.worker import RemoteDeviceWorker
from edgeweave.platform.config.schema import ExperimentConfig
from edgeweave.platform.core.errors import RunFailed, RunLost
from edgeweave.platform.data import ArrayData
from edgeweave.platform.partition import Partition
from edgeweave.platform.run.checkpoint import RunState
from edgeweave.platform.run.phases import Phases

CALL_TIMEOUT = 600.0  # seconds for the driver's short calls (weights, checkpoints), beyond any round


def pool_limit(cfg: ExperimentConfig) -> int:
    """The most workers a run holds: `ray.num_workers`, else one per device of a round (as slots allow)."""
    return cfg.ray.num_workers or cfg.devices.per_round


def here() -> dict[str, Any]:
    """Where the driver goes: in this process's placement group (a Tune trial's bundle), else on this node.

    The driver puts each round's weights, so it must live as long as the process that started
    the run: a worker node that leaves takes nothing the run needs with it.
    """
    group = ray.util.get_current_placement_group()
    if group is not None:
        return {"scheduling_strategy": PlacementGroupSchedulingStrategy(group, placement_group_bundle_index=0)}
    return {"scheduling_strategy": NodeAffinitySchedulingStrategy(ray.get_runtime_context().get_node_id(), soft=False)}


def start_driver(cfg: ExperimentConfig) -> Any:
    """The driver actor's process, started on the config (`Driver.open` gives it the data later)."""
    return RemoteDriver.options(num_cpus=0, **here()).remote(cfg)


def worker_spawn(cfg: ExperimentConfig, setup: tuple = ()) -> Spawn:
    """How the run's device workers start (`setup`: the data's and partition's refs once they are put, and the
    config)."""
    return Spawn(
        RemoteDeviceWorker,
        (cfg, max(1, int(cfg.ray.cpus_per_worker))),
        cfg.ray.cpus_per_worker,
        cfg.ray.gpus_per_worker,
        ray.util.get_current_placement_group(),
        setup,
    )


@dataclass
class Prestarted:
    """A driver actor and device workers' processes started before a simulation: by the command, in a Ray it
    started or joined (`started`), before its data was loaded (they start and import torch on the config
    alone); or kept from a sweep's previous trial in the same placement group (`Simulation.keep`).
    `Simulation` sets them up on its data; `close` kills them when none takes them over."""

    started: bool
    driver: Any
    workers: list[Any]

    def close(self) -> None:
        for actor in [self.driver, *self.workers]:
            ray.kill(actor)
        if self.started:
            ray.shutdown()


def prestart(cfg: ExperimentConfig, started: bool, num_workers: Optional[int] = None) -> Prestarted:
    """The driver and as many workers as the cluster has room for (at least one), not yet given the data."""
    spawn, limit = worker_spawn(cfg), num_workers or pool_limit(cfg)
    workers = [spawn.start() for _ in range(min(limit, max(1, WorkerPool(spawn, limit).room())))]
    return Prestarted(started, start_driver(cfg), workers)


class Simulation:
    """The data in the object store once (owned by this process), a driver actor beside it and its worker pool."""

    def __init__(
        self,
        cfg: ExperimentConfig,
        data: Optional[ArrayData],
        partition: Partition,
        num_workers: Optional[int] = None,
        data_ref: Any = None,
        prestarted: Optional[Prestarted] = None,
        phases: Optional[Phases] = None,
    ) -> None:
        """`data_ref`: the data already in the object store (a sweep's shared copy, or put by the command, which
        passes no `data` then); else `data` is put here.
        `prestarted`: Ray and worker processes started earlier (taken over); `phases`: where to time the start."""
        self.cfg = cfg
        self.kept: Optional[Prestarted] = None
        phases = phases or Phases()
        if prestarted is not None:
            self.started, early, self.driver = prestarted.started, prestarted.workers, prestarted.driver
        else:
            if ray.is_initialized():  # a sweep's trial, a benchmark: Ray is there already
                self.started = False
            else:
                with phases.phase("ray attach" if ray_address(cfg) else "ray start"):
                    self.started = connect(cfg)
            early, self.driver = [], start_driver(cfg)
        self.first = list(early)  # this process owns them: close() kills them, started or not
        try:
            if data_ref is None:
                with phases.phase("data put"):
                    data_ref = ray.put(data)
            part_ref = ray.put(partition)
            # The refs travel inside Spawn as refs; each worker receives them resolved (zero-copy).
            spawn = worker_spawn(cfg, (data_ref, part_ref, cfg))
            limit = num_workers or pool_limit(cfg)
            first = WorkerPool(spawn, limit)
            first.adopt(early)
            first.grow(at_least=1)  # the first workers start while the driver does; the driver's pool takes them
            self.first = list(first.starting.values())
            with phases.phase("workers ready", waits=f"device workers ({spawn.needs()} each) to start"):
                self._get(
                    self.driver.open.remote(cfg, data_ref, part_ref, spawn, limit, [first.starting]),
                    cfg.ray.start_timeout + CALL_TIMEOUT,
                )
                self._get(self.driver.start.remote(), cfg.ray.start_timeout + CALL_TIMEOUT)
        except Exception:
            self.close()
            raise

    def _get(self, ref: Any, timeout: float) -> Any:
        """ray.get with a bound; a lost or failed driver is one line."""
        try:
            return ray.get(ref, timeout=timeout)
        except ray.exceptions.GetTimeoutError:
            raise RunFailed(f"the driver actor did not answer within {timeout:g} s") from None
        except ray.exceptions.RayTaskError as e:
            cause = e.as_instanceof_cause()
            raise RunFailed(str(cause).strip().splitlines()[-1]) from None
        except LOST as e:
            raise RunLost(
                f"the driver actor was lost ({type(e).__name__}: "
                f"{str(e).strip().splitlines()[0] if str(e).strip() else ''})"
            ) from None

    def round(self, round_: int) -> dict[str, Any]:
        return self._get(self.driver.round.remote(round_), self.cfg.ray.round_timeout + CALL_TIMEOUT)

    def weights(self) -> np.ndarray:
        return self._get(self.driver.weights.remote(), CALL_TIMEOUT)

    def snapshot(self, next_round: int, history: list[dict[str, Any]]) -> RunState:
        return self._get(self.driver.snapshot.remote(next_round, history), CALL_TIMEOUT)

    def restore(self, state: RunState) -> None:
        self._get(self.driver.restore.remote(state), CALL_TIMEOUT)

    def keep(self) -> Prestarted:
        """End the run but keep the driver's and the ready workers' processes for another run in the same
        placement group (a sweep's next trial): what `prestarted` takes. Workers still starting are killed."""
        ready = [handle for handle, _ in self._get(self.driver.workers.remote(), CALL_TIMEOUT)]
        self._get(self.driver.release.remote(), CALL_TIMEOUT)
        for handle in self._get(self.driver.forget.remote(), CALL_TIMEOUT):
            ray.kill(handle)
        for handle in ready:
            handle.forget.remote()
        self.kept = Prestarted(False, self.driver, ready)
        return self.kept

    def close(self) -> None:
        """Kill the workers (the first ones even if they never started) and the driver, unless they were kept."""
        if self.kept is not None:
            if self.started:
                ray.shutdown()
            return
        handles = list(self.first)
        try:
            handles += [handle for handle, _ in ray.get(self.driver.workers.remote(), timeout=10)]
        except Exception:  # noqa: BLE001 - a lost driver's own workers went with it; one never started has none
            pass
        for handle in handles:
            ray.kill(handle)
        try:
            ray.get(self.driver.release.remote(), timeout=10)
        except Exception:  # noqa: BLE001 - a lost driver took its files with it or left them for the next run
            pass
        ray.kill(self.driver)
        if self.started:
            ray.shutdown()

    def __enter__(self) -> "Simulation":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()
