"""The server half of a round: sample, time and plan the jobs, fold the partials in, evaluate."""

from __future__ import annotations

import math
from dataclasses import replace
from typing import Any, Optional, Sequence

import numpy as np

from edgeweave.platform.aggregate import Partial, average, combine
from edgeweave.platform.checkpoint import RunState
from edgeweave.platform.config import ExperimentConfig
from edgeweave.platform.data import ArrayData
from edgeweave.platform.devices.clock import Timing, Workload, batch_sizes, time_round
from edgeweave.platform.devices.timeline import DeviceTimeline, constant, device_timeline
from edgeweave.platform.devices.view import DeviceView
from edgeweave.platform.errors import UserError
from edgeweave.platform.flat import FlatLayout
from edgeweave.platform.models import build_model
from edgeweave.platform.partition import Partition
from edgeweave.platform.sampling import sample_available
from edgeweave.platform.seeding import SERVER, rng
from edgeweave.platform.strategies import STRATEGIES, Job
from edgeweave.platform.submodel import Plan, Slicer
from edgeweave.platform.training import evaluate, local_steps, sgd_settings


class Server:
    """Owns the global weights and the virtual clock; every step is plain work on arrays."""

    def __init__(self, cfg: ExperimentConfig, data: ArrayData, partition: Partition) -> None:
        self.cfg = cfg
        self.data = data
        self.partition = partition
        self.shard_sizes = partition.sizes()
        self.model = build_model(cfg.model, data.input_shape, data.num_classes, cfg.seed)
        self.layout = FlatLayout(self.model)
        self.slicer = Slicer(self.model, data.input_shape)
        self.weights = self.layout.flatten(self.model)
        self.strategy = STRATEGIES.build(cfg.strategy.name, cfg.strategy.params, cfg=cfg)
        self.view = DeviceView(cfg)
        self.settings = sgd_settings(cfg)
        self.clock = 0.0  # virtual seconds at the start of the next round
        self.total_flops = 0.0
        self._pending: Optional[tuple[int, list[Job], Workload, Timing]] = None

    def plan_flops(self, plan: Optional[Plan]) -> int:
        """Training FLOPs per sample of the full model (plan None) or of a sub-model plan, cached."""
        return self.slicer.flops(plan)

    def tier_name(self, device: int) -> str:
        return self.view.tier_name(device)

    def device_classes(self, device: int) -> np.ndarray:
        """The classes a device holds (for label split)."""
        return self.partition.classes(device, self.data.y_train)

    def steps_of(self, job: Job) -> int:
        """Mini-batches of the job's local work (its own step count when a deadline cut it)."""
        return job.steps if job.steps is not None else local_steps(self.samples_of(job), self.settings)

    def samples_of(self, job: Job) -> int:
        """Samples the job's device holds (all of them for the pooled central job)."""
        return int(self.shard_sizes.sum() if job.pooled else self.shard_sizes[job.device])

    def model_bytes(self, round_: int, job: Job) -> float:
        """Bytes the job moves each way: its (sub-)model's weights, none for the pooled central job."""
        if job.pooled:
            return 0.0
        plan = self.strategy.job_plan(self, round_, job)
        return 4.0 * (self.layout.size if plan is None else self.slicer.count(plan))

    def job_seconds(self, round_: int, job: Job) -> float:
        """Virtual seconds the job's full work would take at the device's speed now (download, train,
        upload): what a device knows when it commits to a plan at the round's start."""
        steps = self.steps_of(job)
        flops = self.strategy.step_flops(self, round_, job, steps) * batch_sizes(self.samples_of(job),
                                                                                 self.cfg.training.batch_size, steps)
        _, speed = self.view.state(np.array([job.device]), round_, self.clock)
        comm = self.model_bytes(round_, job) / float(self.view.bandwidth(np.array([job.device]))[0])
        return float(2 * comm + flops.sum() / speed[0])

    def timeline(self, round_: int, job: Job) -> DeviceTimeline:
        """The job's device-round (the pooled central job: one reference device, full speed, no network)."""
        planned = self.steps_of(replace(job, steps=None))
        rule = self.strategy.step_rule(self, round_, job, planned)
        if job.pooled:
            d = self.cfg.devices
            return device_timeline(constant(d.flops_per_second), self.clock, 0.0, planned, rule, None, d.stragglers)
        return self.view.timeline(round_, job.device, self.clock, self.model_bytes(round_, job), planned, rule)

    def workload(self, round_: int, jobs: Sequence[Job]) -> Workload:
        """Each job's device-round, mini-batch by mini-batch, over what its device has moment by moment."""
        ids = np.array([j.device for j in jobs], np.int64)
        shard = np.array([self.samples_of(j) for j in jobs], np.int64)
        planned = np.array([self.steps_of(replace(j, steps=None)) for j in jobs], np.int64)
        return Workload(devices=ids, shard=shard, batch=self.cfg.training.batch_size, planned=planned,
                        timelines=[self.timeline(round_, j) for j in jobs])

    def plan(self, round_: int) -> tuple[list[Job], list[int]]:
        """Sample available devices, let the strategy plan them, and cut the work to the deadline.

        Returns the jobs to train and the samples each will train (to share them out fairly).
        """
        d = self.cfg.devices
        want = min(d.count, math.ceil(d.per_round * (1 + d.over_selection)))

        def eligible(ids: np.ndarray) -> np.ndarray:
            available, _ = self.view.state(ids, round_, self.clock)
            return available & (self.shard_sizes[ids] > 0)

        devices = sample_available(d.count, want, eligible, rng(self.cfg.seed, round_, SERVER))
        jobs = [replace(j, start=self.clock) for j in self.strategy.plan(round_, devices, self)]
        work = self.workload(round_, jobs)
        timing = time_round(work, d.stragglers, d.deadline, keep=d.per_round if want > d.per_round else None,
                            fixed_length=d.round_ends == "deadline")
        self._pending = (round_, jobs, work, timing)
        kept = np.flatnonzero(~timing.dropped)
        return ([jobs[i] if timing.steps[i] == work.planned[i] else replace(jobs[i], steps=int(timing.steps[i]))
                 for i in kept], [int(timing.samples[i]) for i in kept])

    def update(self, partials: Sequence[Partial]) -> tuple[dict[str, Any], list[dict[str, Any]]]:
        """Average the round's partials into the global weights, advance the clock.

        A round in which no device trained leaves the weights as they were; the clock still
        advances (by `devices.idle_wait` when nothing took any time), so time-driven resources
        move on and a later round finds devices again. Returns the round's metrics and one
        record per sampled device.
        """
        round_, jobs, work, timing = self._pending
        total = combine(partials, self.layout.size)
        weights = average(self.weights, total.sums, total.counts)
        finite = bool(np.isfinite(weights).all())
        if finite:  # a diverged round is not folded in: the run stops with the last good weights
            self.weights = weights
        trained = {r["device"]: r for r in total.records}
        tier_names = [t.name for t in self.cfg.devices.tiers]
        full_flops = self.plan_flops(None)
        start = self.clock
        records = []
        for i, job in enumerate(jobs):
            done = trained.get(job.device, {})
            tl = work.timelines[i]
            per_sample = float(tl.step_flops.sum() / timing.samples[i]) if timing.samples[i] else None
            records.append({
                "round": round_,
                "device": job.device,
                "tier": "central" if job.pooled else tier_names[self.view.tier_of[job.device]],
                "rate": job.rate,
                "speed": tl.speed_start,
                "speed_min": tl.speed_min,
                "speed_max": tl.speed_max,
                "steps": int(done.get("steps", 0)),
                "samples": int(done.get("samples", 0)),
                "flops": float(timing.flops[i]),  # computed, a mini-batch cut off midway or a dropped update included
                "trained_flops": 0.0 if timing.dropped[i] else float(tl.step_flops.sum()),  # what its update carries
                "saving": float(full_flops / per_sample) if per_sample else None,
                "finish": start + float(timing.finish[i]),
                "dropped": bool(timing.dropped[i]),
                # Less than the full local work: cut by the deadline, or stopped by its own choice.
                "partial": bool(not timing.dropped[i] and timing.steps[i] < work.planned[i]),
                # Why it did less than its full work: "own choice", "deadline", "offline", "late".
                "stopped": timing.stopped[i],
                "loss": done.get("loss"),
            })
        round_flops = float(timing.flops.sum())
        self.clock = start + (timing.duration if timing.duration > 0 else self.cfg.devices.idle_wait)
        self.total_flops += round_flops
        losses = [r["loss"] for r in records if r["loss"] is not None]
        metrics = {
            "round": round_,
            "devices": len(trained),
            "dropped": int(timing.dropped.sum()),
            "samples": int(sum(r["samples"] for r in records)),
            "train_loss": float(np.mean(losses)) if losses else None,
            "virtual_start": start,
            "virtual_time": self.clock,
            "flops": round_flops,
            "cumulative_flops": self.total_flops,
        }
        bad_loss = any(not math.isfinite(x) for x in losses)
        if not finite or bad_loss:
            metrics["non_finite"] = "the global weights" if not finite else "the training loss"
        self._pending = None
        return metrics, records

    def snapshot(self, next_round: int, history: list[dict[str, Any]]) -> RunState:
        """The run's state between rounds, for a checkpoint."""
        return RunState(next_round, self.weights.copy(), self.clock, self.total_flops, self.strategy.state(),
                        list(history))

    def restore(self, state: RunState) -> None:
        """Continue from a checkpoint's state, as if the rounds before it had just run here."""
        if state.weights.shape != self.weights.shape:
            raise UserError(f"checkpoint: {state.weights.size} weights, but this config's model has "
                            f"{self.weights.size}")
        self.weights = state.weights.astype(np.float32, copy=True)
        self.clock, self.total_flops = state.clock, state.total_flops
        self.strategy.load_state(state.strategy)

    def evaluate(self) -> tuple[float, float]:
        self.layout.load(self.model, self.weights)
        return evaluate(self.model, self.data.x_test, self.data.y_test, self.cfg.training.eval_batch_size)


def split_jobs(jobs: Sequence[Job], sizes: Sequence[int], workers: int) -> list[list[Job]]:
    """Share jobs between workers, largest first to the least loaded, so shares finish together."""
    shares: list[list[Job]] = [[] for _ in range(workers)]
    load = np.zeros(workers)
    for i in sorted(range(len(jobs)), key=lambda i: -sizes[i]):
        w = int(np.argmin(load))
        shares[w].append(jobs[i])
        load[w] += sizes[i]
    return shares


def check_deadline(cfg: ExperimentConfig, data: ArrayData) -> None:
    """A deadline the fastest device cannot meet is bad input, caught before any output.

    Some tier must move and train, at full speed, the least work the method can give its
    devices (the full model for FedAvg, the tier's width, DISTREAL's cheapest vector): one
    mini-batch and the weights both ways.
    """
    d = cfg.devices
    if d.deadline is None:
        return
    model = build_model(cfg.model, data.input_shape, data.num_classes, cfg.seed)
    strategy = STRATEGIES.build(cfg.strategy.name, cfg.strategy.params, cfg=cfg)
    slicer = Slicer(model, data.input_shape)
    needs = []
    for t in d.tiers:
        weights, step = strategy.cheapest_job(slicer, cfg.training.batch_size, t.name)
        needs.append((2 * 4.0 * weights / t.bandwidth + step / (d.flops_per_second * t.speed), t.name, weights))
    need, tier, weights = min(needs)
    if need > d.deadline:
        raise UserError(f"devices.deadline = {d.deadline:g}: no device can meet it; the quickest tier ({tier}) "
                        f"needs {need:.3g} s to move its least work ({weights:,} weights each way) and train one "
                        f"mini-batch of it")


def check_with_data(cfg: ExperimentConfig, data: ArrayData) -> None:
    """The checks that need the loaded data, before any output: the deadline, the strategy's own."""
    check_deadline(cfg, data)
    strategy, _ = STRATEGIES.entry(cfg.strategy.name, "strategy.name")
    strategy.check_data(cfg.strategy.params, cfg, data)
