"""Buffered asynchronous aggregation (FedBuff) on the virtual clock: the driver's side of a server step.

Up to `aggregation.concurrency` devices train at once. A device starts when it is available and a
slot is free, on the model version current at its start, and plays its timeline from there (the
deadline, when set, is its own time budget from its start); its update arrives at its virtual
finish. Events are taken in (virtual time, device id) order. Every `aggregation.buffer` arrivals
the server folds the buffered updates in, each weighted by its staleness, and a new version
begins. A device starts at most once per version, so (seed, version, device) seeds its work.

The timelines say when every update arrives before anything trains, so a server step first plays
the clock forward to its K-th arrival, then the workers train exactly those K updates, grouped by
the version they started on (one unit per version, trained from that version's weights).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, replace
from typing import Any, Optional, Sequence

import numpy as np

from edgeweave.platform.config.schema import ExperimentConfig
from edgeweave.platform.core.seeding import SERVER, Stream, rng
from edgeweave.platform.data import ArrayData
from edgeweave.platform.devices.clock import samples_in_steps
from edgeweave.platform.devices.timeline import ClockStalled, DeviceTimeline
from edgeweave.platform.methods import Job
from edgeweave.platform.partition import Partition
from edgeweave.platform.run.checkpoint import RunState
from edgeweave.platform.run.invariants import InvariantBroken, check_in_flight
from edgeweave.platform.run.sampling import sample_available
from edgeweave.platform.run.server import Server, Unit, device_record, step_metrics
from edgeweave.platform.train.aggregate import Partial, combine


@dataclass(frozen=True)
class Flight:
    """A device training model `version` from `job.start`; its update arrives (or is lost) at `finish`."""

    job: Job
    version: int
    finish: float  # absolute virtual seconds
    timeline: DeviceTimeline

    @property
    def lost(self) -> bool:
        return self.timeline.lost


def staleness_weight(staleness: int, kind: str, exponent: float) -> float:
    """How much an update computed on a model `staleness` server steps old counts: 1, or (1+s)^-exponent."""
    return 1.0 if kind == "constant" else float((1.0 + staleness) ** -exponent)


class AsyncServer(Server):
    """The global model's versions, the devices in flight and the virtual clock of the last event."""

    def __init__(self, cfg: ExperimentConfig, data: ArrayData, partition: Partition) -> None:
        super().__init__(cfg, data, partition)
        self.buffer, self.concurrency = cfg.aggregation.sizes(cfg.devices)
        self.version = 0  # server steps folded in so far
        self.versions: dict[int, np.ndarray] = {0: self.weights}  # every version a device in flight trains on
        self.flights: list[Flight] = []
        self.started: set[int] = set()  # devices that started on the current version
        self.dispatches = 0  # times devices were drawn to start
        self.with_data = self.shard_sizes > 0  # a mask over the population
        self.arrived: dict[int, set[int]] = {}  # devices arrived per version still in use: one arrival a dispatch
        self._step: Optional[tuple[int, float, list[Flight], list[Unit]]] = None
        # Devices of a method that keeps device state, arrived in this step: they start again in the next one, so
        # each trains from the state its previous update left (two updates in one step would share one).
        self.resting: set[int] = set()

    def _dispatch(self, now: float) -> None:
        """Fill the free slots at virtual time `now` with devices available then, on the current version."""
        free = self.concurrency - len(self.flights)
        if free <= 0:
            return
        busy = np.array(sorted({f.job.device for f in self.flights} | self.started | self.resting), np.int64)

        def eligible(ids: np.ndarray) -> np.ndarray:
            available, _ = self.view.state(ids, self.version, now)
            return available & (self.shard_sizes[ids] > 0) & ~np.isin(ids, busy)

        devices = sample_available(
            self.cfg.devices.count, free, eligible, rng(self.cfg.seed, self.dispatches, SERVER, Stream.DISPATCH)
        )
        self.dispatches += 1
        if not len(devices):
            return
        self.clock = now  # what the server half's timing reads
        decided = self.half.plan(self.version, devices, self.context())
        if decided.weights is not None:  # e.g. task plans made from the model: this version's weights
            self.weights = self.versions[self.version] = np.asarray(decided.weights, np.float32)
        self.rules.receive(decided.shared)
        self.shared = decided.shared
        for job in decided.jobs:
            self._fly(replace(job, start=now), self.version)
            self.started.add(job.device)

    def _fly(self, job: Job, version: int) -> None:
        timeline = self.rules.device_round(self.facts, version, job)
        self.flights.append(Flight(job, version, timeline.finish, timeline))

    def _wake(self, now: float) -> float:
        """When a free slot may next be filled: the earliest time after `now` at which a device that could
        take it (not training, not yet started on this version, with data) may change state; inf if none."""
        if len(self.flights) >= self.concurrency:
            return np.inf
        idle = self.with_data.copy()
        idle[[f.job.device for f in self.flights] + sorted(self.started)] = False
        wake = self.view.resources.earliest_change(np.flatnonzero(idle), self.version, now)
        if not wake > now:  # the event loop would stand still
            raise ClockStalled(
                f"devices.resources = {self.cfg.devices.resources.name!r}: the next change after "
                f"t = {now!r} is {wake!r}, not a later time"
            )
        return wake

    def _arrive(self, step: int, flight: Flight, now: float) -> None:
        """Take a flight's arrival at `now`, checking it is not in the past and the first of its dispatch."""
        device = flight.job.device
        if flight.finish < now:
            raise InvariantBroken(
                f"invariant 'the clock never goes back' broken at step {step}, device {device}: "
                f"its update arrives at {flight.finish!r}, the clock stands at {now!r}"
            )
        seen = self.arrived.setdefault(flight.version, set())
        if device in seen:
            raise InvariantBroken(
                f"invariant 'each arrives once per dispatch' broken at step {step}, device "
                f"{device}: a second arrival of its update on version {flight.version}"
            )
        seen.add(device)

    def plan_units(self, step: int) -> list[Unit]:
        """Play the clock to the step's K-th arrival; returns the arrived updates to train, one unit per
        model version, each in arrival order.

        A free slot is filled when a device can take it: at an arrival, or when a device's resources
        change (it comes back online). When nobody is training, the server waits at most
        `devices.idle_wait` for a device to start, then folds what arrived (possibly nothing, as a
        synchronous round nobody could join); when every device has already started on this version,
        it folds what arrived at once."""
        start = now = self.clock
        self.resting = set()
        ended: list[Flight] = []
        arrived = 0
        idle_since: Optional[float] = None  # since when nobody has been training
        while arrived < self.buffer:
            self._dispatch(now)
            check_in_flight(step, len(self.flights), self.concurrency)
            wake = self._wake(now)
            if not self.flights:
                idle_since = now if idle_since is None else idle_since
                if wake == np.inf and arrived:  # nobody can start on this version any more: fold now
                    break
                if wake >= idle_since + self.cfg.devices.idle_wait:  # the server waits this long at most
                    now = idle_since + self.cfg.devices.idle_wait
                    break
                now = wake
                continue
            idle_since = None
            flight = min(self.flights, key=lambda f: (f.finish, f.job.device))
            if wake < flight.finish:
                now = wake
                continue
            self.flights.remove(flight)
            self._arrive(step, flight, now)
            now = flight.finish
            ended.append(flight)
            if self.states is not None:
                self.resting.add(flight.job.device)
            arrived += not flight.lost
        units: dict[int, Unit] = {}
        for f in ended:
            if f.lost:
                continue
            steps = f.timeline.steps
            job = f.job if steps == self.facts.full_steps(f.job) else replace(f.job, steps=steps)
            unit = units.setdefault(f.version, Unit(f.version, [], [], self.versions[f.version]))
            unit.jobs.append(job)
            unit.samples.append(samples_in_steps(self.facts.samples(f.job), self.cfg.training.batch_size, steps))
        out = [replace(u, jobs=self._grouped(u.version, u.jobs)) for _, u in sorted(units.items())]
        self._step = (step, start, ended, out)
        self.clock = now
        return out

    def fold(self, partials: Sequence[Sequence[Partial]]) -> tuple[dict[str, Any], list[dict[str, Any]]]:
        """Fold the step's updates in: the server rule steps along delta = sum_u s_u (sums_u - counts_u * w_u) /
        sum_u counts_u, per element (elements nobody trained stay; plain: w += lr * delta); then a new version
        begins. What the devices kept goes to the store (a device that keeps state arrives once a step)."""
        assert self._step is not None  # `plan_units` began the step
        step, start, ended, units = self._step
        a = self.cfg.aggregation
        delta = np.zeros(self.layout.size, np.float64)
        counts = np.zeros(self.layout.size, np.float64)
        # keyed by (version, device): a device may arrive twice in a step, from an older version and this one
        done: dict[tuple[int, int], dict] = {}
        staleness: dict[tuple[int, int], int] = {}
        states: dict[int, dict[str, np.ndarray]] = {}
        for unit, unit_partials in zip(units, partials):
            total = combine(unit_partials, self.layout.size)
            stale = self.version - unit.version
            w = staleness_weight(stale, a.staleness, a.exponent)
            delta += w * (total.sums - total.counts * self.versions[unit.version])
            counts += total.counts
            states.update(total.states)
            for r in total.records:
                done[unit.version, r["device"]], staleness[unit.version, r["device"]] = r, stale
        trained = counts > 0
        weights = self.step(np.divide(delta, counts, out=np.zeros_like(delta), where=trained), trained)
        finite = bool(np.isfinite(weights).all())
        records = []
        full_flops = self.plan_flops(None)
        for f in ended:
            tl = f.timeline
            key = (f.version, f.job.device)
            record = device_record(
                step,
                f.job,
                tl,
                self._tier(f.job),
                done.get(key, {}),
                full_flops,
                flops=tl.spent,
                finish=f.finish,
                dropped=f.lost,
                partial=bool(not f.lost and tl.steps < self.facts.full_steps(f.job)),
                stopped=tl.stopped,
                samples=samples_in_steps(self.facts.samples(f.job), self.cfg.training.batch_size, tl.steps),
            )
            record.update(version=f.version, start=f.job.start, staleness=staleness.get(key))
            records.append(record)
        flops = float(sum(tl.spent for tl in (f.timeline for f in ended)))
        self.total_flops += flops
        metrics = step_metrics(step, records, len(done), start, self.clock, flops, self.total_flops)
        self.checks.step(
            step,
            metrics,
            records,
            [f.timeline for f in ended],
            [self.facts.segment(f.version, f.job) for f in ended],
            [self.facts.samples(f.job) for f in ended],
        )
        stales = list(staleness.values())
        metrics.update(
            staleness_mean=float(np.mean(stales)) if stales else None,
            staleness_max=int(max(stales)) if stales else None,
        )
        if finite:
            self.weights = weights
            self.keep_states(step, states)
            self.version += 1
            self.versions[self.version] = weights
            self.started = set()
            in_use = {f.version for f in self.flights} | {self.version}
            self.versions = {v: w for v, w in self.versions.items() if v in in_use}
            self.arrived = {v: d for v, d in self.arrived.items() if v in in_use}
        metrics.update(version=self.version, in_flight=len(self.flights))
        self._flag_non_finite(metrics, finite)
        self._step = None
        return metrics, records

    def snapshot(self, next_round: int, history: list[dict[str, Any]]) -> RunState:
        state = super().snapshot(next_round, history)
        state.versions = {v: w.copy() for v, w in self.versions.items()}
        state.schedule = {
            "version": self.version,
            "dispatches": self.dispatches,
            "started": sorted(self.started),
            "flights": [{"job": asdict(f.job), "version": f.version} for f in self.flights],
        }
        return state

    def restore(self, state: RunState) -> None:
        super().restore(state)
        s = state.schedule
        assert s is not None  # an async run's checkpoint holds its schedule (`snapshot`)
        self.version, self.dispatches, self.started = int(s["version"]), int(s["dispatches"]), set(s["started"])
        self.versions = {int(v): w.astype(np.float32) for v, w in state.versions.items()}
        self.weights = self.versions[self.version]
        self.shared = self.half.plan(self.version, np.zeros(0, np.int64), self.context()).shared  # as it shares it now
        self.flights = []
        for f in s["flights"]:  # the timelines follow from the jobs, as when they started
            self._fly(Job(**f["job"]), int(f["version"]))
