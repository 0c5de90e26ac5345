"""The device workers of a run: a pool that follows the cluster, and never waits on Ray without a bound.

Workers join the pool once they answer (a worker that cannot be placed yet is only "starting" and
is never given work), leave it when they fail or their node leaves the cluster, and are started
again, up to the pool's limit, whenever the cluster has room for one. Nothing here blocks a round
except `wait_for_one`, which has a bound.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

import ray
from ray.util.scheduling_strategies import PlacementGroupSchedulingStrategy

from edgeweave.platform.core.errors import last_line

# What Ray raises when a worker, its process or its node is gone (or cannot be reached): the worker is lost.
LOST = (
    ray.exceptions.RayActorError,
    ray.exceptions.ObjectLostError,
    ray.exceptions.WorkerCrashedError,
    ray.exceptions.NodeDiedError,
    ray.exceptions.ActorPlacementGroupRemoved,
)


@dataclass
class Spawn:
    """How to start one device worker: its class, its arguments, the arguments of its `setup` (its first
    answer: object refs stay refs, so the worker process can start before they exist) and its resources."""

    cls: Any
    args: tuple
    cpus: float
    gpus: float
    group: Any = None  # the placement group the workers live in (a Tune trial's), or None
    setup: tuple = ()

    def options(self) -> dict[str, Any]:
        opts: dict[str, Any] = {"num_cpus": self.cpus, "num_gpus": self.gpus}
        if self.group is not None:
            opts["scheduling_strategy"] = PlacementGroupSchedulingStrategy(self.group)
        return opts

    def start(self) -> Any:
        """A new worker process, not yet set up."""
        return self.cls.options(**self.options()).remote(*self.args)

    def needs(self) -> str:
        return f"{self.cpus:g} CPU" + (f" and {self.gpus:g} GPU" if self.gpus else "")


@dataclass(eq=False)
class Member:
    """A worker that answered: its handle and the node it runs on."""

    handle: Any
    node: str


@dataclass
class WorkerPool:
    """Ready workers, workers still starting, and how many were lost; `limit` is the most it holds."""

    spawn: Spawn
    limit: int
    ready: list[Member] = field(default_factory=list)
    starting: dict[Any, Any] = field(default_factory=dict)  # the worker's first answer (a ref) -> its handle
    lost: int = 0

    def room(self) -> int:
        """How many more workers the cluster can place now (in a placement group: its bundles decide)."""
        if self.spawn.group is not None:
            return self.limit
        free = ray.available_resources()
        slots = free.get("CPU", 0.0) / self.spawn.cpus
        if self.spawn.gpus:
            slots = min(slots, free.get("GPU", 0.0) / self.spawn.gpus)
        return int(slots + 1e-9)

    def grow(self, at_least: int = 0) -> None:
        """Start workers up to the limit where the cluster has room; never more while others still start."""
        if self.starting:
            return
        n = min(self.limit - len(self.ready), max(self.room(), at_least))
        self.adopt([self.spawn.start() for _ in range(max(0, n))])

    def adopt(self, workers: list[Any]) -> None:
        """Set up workers started here or earlier (`Spawn.start`); they join when they answer."""
        for worker in workers:
            self.starting[worker.setup.remote(*self.spawn.setup)] = worker

    def collect(self, timeout: float = 0.0) -> list[Member]:
        """Workers that answered (waiting at most `timeout` for all of them) join; returns those who joined."""
        if not self.starting:
            return []
        refs = list(self.starting)
        done, _ = ray.wait(refs, num_returns=len(refs), timeout=timeout)
        joined = []
        for ref in done:
            worker = self.starting.pop(ref)
            try:
                joined.append(Member(worker, ray.get(ref, timeout=0)))
            except ray.exceptions.RayTaskError as e:  # its set-up raised: another start would fail the same way
                raise RuntimeError(f"a device worker failed to start: {last_line(e)}") from None
            except ray.exceptions.ActorDiedError as e:
                if e.actor_init_failed:  # its constructor raised: the same
                    raise RuntimeError(f"a device worker failed to start: {last_line(e)}") from None
                self.lost += 1  # it died before it could answer (its node left)
            except LOST:
                self.lost += 1
        self.ready.extend(joined)
        return joined

    def drop(self, member: Member) -> None:
        """A worker that failed or whose node left: out of the pool, and killed in case it still runs."""
        if member in self.ready:
            self.ready.remove(member)
            self.lost += 1
        try:
            ray.kill(member.handle)
        except Exception:  # noqa: BLE001 - it is gone either way
            pass

    def prune(self) -> list[Member]:
        """Drop the workers whose node the cluster no longer has; returns them."""
        alive = {n["NodeID"] for n in ray.nodes() if n.get("Alive")}
        gone = [m for m in self.ready if m.node not in alive]
        for m in gone:
            self.drop(m)
        return gone

    def refresh(self) -> None:
        """Between rounds: workers that started join, those on nodes that left go, more start if there is room."""
        self.collect()
        self.prune()
        self.grow()

    def wait_for_one(self, deadline: float, why: str) -> list[Member]:
        """Start a worker even without visible room and wait until `deadline` (time.monotonic) for any to answer.

        Raises a one-line RuntimeError when none did: the run cannot go on.
        """
        self.grow(at_least=1)
        while time.monotonic() < deadline:
            joined = self.collect(timeout=min(1.0, max(0.0, deadline - time.monotonic())))
            if joined:
                return joined
            if not self.starting:
                self.grow(at_least=1)
        free = ray.available_resources()
        raise RuntimeError(
            f"{why}, and no device worker could start in time (ray.start_timeout): "
            f"each needs {self.spawn.needs()}, the cluster has {free.get('CPU', 0.0):g} CPU and "
            f"{free.get('GPU', 0.0):g} GPU free"
        )

    def start(self, timeout: float) -> None:
        """The first workers (started by `grow(at_least=1)`, here or by the caller): all waited for, `timeout` s
        at most in all."""
        self.grow(at_least=1)
        deadline = time.monotonic() + timeout
        while self.starting and time.monotonic() < deadline:
            self.collect(timeout=min(1.0, max(0.0, deadline - time.monotonic())))
        if not self.ready:
            self.wait_for_one(deadline, "the run has no device worker yet")
