"""Start or join Ray, build the driver (which starts the worker pool), and tear them down again."""

from __future__ import annotations

import logging
import os
from typing import Any, Optional

import numpy as np
import ray
from ray._private import ray_constants
from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy, PlacementGroupSchedulingStrategy

from edgeweave.actors.driver import RemoteDriver
from edgeweave.actors.pool import LOST, Spawn, WorkerPool
from edgeweave.actors.worker import RemoteDeviceWorker
from edgeweave.platform.checkpoint import RunState
from edgeweave.platform.config import ExperimentConfig
from edgeweave.platform.data import ArrayData
from edgeweave.platform.errors import RunFailed, RunLost
from edgeweave.platform.partition import Partition

CALL_TIMEOUT = 600.0  # seconds for the driver's short calls (weights, checkpoints), beyond any round
LOOPBACK = "127.0.0.1"  # the one address a Ray started here uses: none of its processes reaches another host


def connect(cfg: ExperimentConfig) -> bool:
    """Join the configured cluster (or RAY_ADDRESS, as inside `ray job submit`), else start one.

    Returns True when this call started Ray, so the caller knows to shut it down.
    """
    if ray.is_initialized():
        return False
    address = cfg.ray.address or os.environ.get("RAY_ADDRESS")
    if address:
        if address.split(":")[0] in (LOOPBACK, "localhost"):  # a Ray started on the loopback, by start_local
            _on_loopback(address=address, logging_level=logging.WARNING)
        else:
            ray.init(address=address, logging_level=logging.WARNING)
        return False
    start_local()
    return True


def start_local(**options: Any) -> None:
    """Start a one-machine Ray whose processes all listen and talk on the loopback address only."""
    _on_loopback(address="local", include_dashboard=False, dashboard_host=LOOPBACK, logging_level=logging.WARNING,
                 **options)


def _on_loopback(**options: Any) -> None:
    """`ray.init` with this process's node address 127.0.0.1: to start a Ray there, or to join one that is.

    Ray on Linux swaps a node address of 127.0.0.1 for the host's routable one (found by routing towards
    a public DNS server) unless its multi-host switch is off, as on macOS and Windows; a driver joining a
    loopback Ray from the routable address would wait forever for a node there. The switch is a
    constant read at import, so it is off only while Ray starts here (the processes Ray starts are given
    the address); a node that took another address all the same is stopped with one line.
    """
    multi_host = ray_constants.ENABLE_RAY_CLUSTER
    ray_constants.ENABLE_RAY_CLUSTER = False
    try:
        ray.init(_node_ip_address=LOOPBACK, **options)
    finally:
        ray_constants.ENABLE_RAY_CLUSTER = multi_host
    node = ray.util.get_node_ip_address()
    if node != LOOPBACK:
        ray.shutdown()
        raise RunFailed(f"the local Ray took the node address {node}, not {LOOPBACK}: Ray {ray.__version__} "
                        f"picks it otherwise than edgeweave expects")


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
    return {"scheduling_strategy": NodeAffinitySchedulingStrategy(ray.get_runtime_context().get_node_id(),
                                                                  soft=False)}


class Simulation:
    """The data in the object store once (owned by this process), a driver actor beside it and its worker pool."""

    def __init__(self, cfg: ExperimentConfig, data: ArrayData, partition: Partition,
                 num_workers: Optional[int] = None, data_ref: Any = None) -> None:
        """`data_ref`: `data` already in the object store (a sweep's shared copy); else it is put here."""
        self.cfg = cfg
        self.started = connect(cfg)
        data_ref, part_ref = ray.put(data) if data_ref is None else data_ref, ray.put(partition)
        threads = max(1, int(cfg.ray.cpus_per_worker))
        # The refs travel inside Spawn as refs; each worker receives them resolved (zero-copy).
        spawn = Spawn(RemoteDeviceWorker, (cfg, data_ref, part_ref, threads), cfg.ray.cpus_per_worker,
                      cfg.ray.gpus_per_worker, ray.util.get_current_placement_group())
        limit = num_workers or pool_limit(cfg)
        first = WorkerPool(spawn, limit)
        first.grow(at_least=1)  # the first workers start while the driver does; the driver's pool takes them
        self.first = list(first.starting.values())  # this process owns them: close() kills them, started or not
        self.driver = RemoteDriver.options(num_cpus=0, **here()).remote(
            cfg, data_ref, part_ref, spawn, limit, [first.starting])
        try:
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
            raise RunLost(f"the driver actor was lost ({type(e).__name__}: "
                            f"{str(e).strip().splitlines()[0] if str(e).strip() else ''})") from None

    def round(self, round_: int) -> dict[str, Any]:
        return self._get(self.driver.round.remote(round_), self.cfg.ray.round_timeout + CALL_TIMEOUT)

    def weights(self) -> np.ndarray:
        return self._get(self.driver.weights.remote(), CALL_TIMEOUT)

    def snapshot(self, next_round: int, history: list[dict[str, Any]]) -> RunState:
        return self._get(self.driver.snapshot.remote(next_round, history), CALL_TIMEOUT)

    def restore(self, state: RunState) -> None:
        self._get(self.driver.restore.remote(state), CALL_TIMEOUT)

    def close(self) -> None:
        """Kill the workers (the first ones even if they never started) and the driver."""
        handles = list(self.first)
        try:
            handles += [handle for handle, _ in ray.get(self.driver.workers.remote(), timeout=10)]
        except Exception:  # noqa: BLE001 - a lost driver's own workers went with it
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
