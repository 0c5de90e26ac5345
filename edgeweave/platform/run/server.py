"""The driver's side of a round: sample the devices, let the method plan and time the jobs, fold the partials in,
evaluate."""

from __future__ import annotations

import copy
import math
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any, Optional, Sequence, cast

import numpy as np

from edgeweave.platform.config.schema import ExperimentConfig
from edgeweave.platform.core.errors import UserError
from edgeweave.platform.core.seeding import SERVER, rng
from edgeweave.platform.data import ArrayData
from edgeweave.platform.devices.clock import Timing, Workload, time_round
from edgeweave.platform.devices.resources import build_resources
from edgeweave.platform.devices.timeline import DeviceTimeline
from edgeweave.platform.devices.view import DeviceView
from edgeweave.platform.methods import Job, server_half
from edgeweave.platform.methods.base import method_halves
from edgeweave.platform.methods.context import Facts, ServerContext
from edgeweave.platform.methods.server_rules import build_rule
from edgeweave.platform.models import build_model
from edgeweave.platform.models.flat import FlatLayout
from edgeweave.platform.models.norm import recompute_statistics, statistics_mask, statistics_rows
from edgeweave.platform.partition import Partition
from edgeweave.platform.run.checkpoint import RunState
from edgeweave.platform.run.device_state import DeviceStates, place
from edgeweave.platform.run.invariants import RunChecks
from edgeweave.platform.run.sampling import sample_available
from edgeweave.platform.train.aggregate import Partial, average, combine
from edgeweave.platform.train.batched import batch_groups, batchable
from edgeweave.platform.train.plans import Plan
from edgeweave.platform.train.submodel import Slicer
from edgeweave.platform.train.training import evaluate

if TYPE_CHECKING:
    from edgeweave.platform.models.base import ModelParams


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
        self.slicer.flops(None)  # measured now (torch's counter takes ~1 s to load), not in the first round
        self.weights = self.layout.flatten(self.model)
        t = cfg.training
        self.batching = t.batched == "auto" and batchable(self.model, self.slicer.flops(None) * t.batch_size)
        self.view = DeviceView(cfg)
        self.facts = Facts(cfg, self.slicer, self.view, partition, data.y_train, data.num_classes)
        self.half = server_half(cfg)
        self.rules = self.half.rules
        rule = cfg.aggregation.server
        self.rule = build_rule(rule.name, rule.params, self.layout.learned(self.model))
        arrays = self.rules.device_arrays(self.slicer)
        self.states = (
            DeviceStates(cfg.devices.count, arrays, f"strategy.name = {cfg.strategy.name!r}") if arrays else None
        )
        self.clock = 0.0  # virtual seconds at the start of the next round
        self.total_flops = 0.0
        self.shared: Any = None  # the round's shared state, as the last plan made it
        self._pending: Optional[tuple[int, list[Job], Workload, Timing]] = None
        self.checks = RunChecks(self.clock, self.total_flops, self.cfg.training.batch_size)
        self.norm = getattr(cfg.model.params, "norm", None)
        self.statistics = statistics_mask(self.layout) if self.norm == "static" else None
        if self.statistics is not None:  # the training rows the statistics are recomputed from, fixed for the run
            # `norm` is a field of ModelParams, which a plugin model with batch norm subclasses (docs/howto/plugins.md)
            model_params = cast("ModelParams", cfg.model.params)
            rows = statistics_rows(cfg.seed, partition.indices, model_params.norm_samples)
            self.x_statistics = data.x_train[rows]

    def plan_flops(self, plan: Optional[Plan]) -> int:
        """Training FLOPs per sample of the full model (plan None) or of a sub-model plan, cached."""
        return self.slicer.flops(plan)

    def model_bytes(self, round_: int, job: Job) -> float:
        """Bytes the job moves each way: its (sub-)model's weights, none for the pooled central job."""
        return self.rules.model_bytes(self.facts, round_, job)

    def job_seconds(self, round_: int, job: Job) -> float:
        """Virtual seconds the job's full work would take at the device's speed now (download, train,
        upload): what a device knows when it commits to a plan at the round's start."""
        steps = self.facts.full_steps(job)
        flops = self.rules.sample_flops(self.facts, round_, job, steps) * self.facts.batch_sizes(
            job, steps
        ) + self.rules.term_flops(self.facts, round_, job)
        _, speed = self.view.state(np.array([job.device]), round_, self.clock)
        comm = self.model_bytes(round_, job) / float(self.view.bandwidth(np.array([job.device]))[0])
        return float(2 * comm + flops.sum() / speed[0])

    def workload(self, round_: int, jobs: Sequence[Job]) -> Workload:
        """Each job's device-round, mini-batch by mini-batch, over what its device has moment by moment."""
        ids = np.array([j.device for j in jobs], np.int64)
        shard = np.array([self.facts.samples(j) for j in jobs], np.int64)
        planned = np.array([self.facts.full_steps(j) for j in jobs], np.int64)
        return Workload(
            devices=ids,
            shard=shard,
            batch=self.cfg.training.batch_size,
            planned=planned,
            timelines=[self.rules.device_round(self.facts, round_, j) for j in jobs],
        )

    def context(self) -> ServerContext:
        """What the server half may read now: the facts, the weights (read-only), the data, the timing."""
        weights = self.weights.view()
        weights.flags.writeable = False
        return ServerContext(self.facts, weights, self.data, self.job_seconds, self._model_at)

    def _model_at(self, weights: np.ndarray) -> Any:
        """A copy of the model holding `weights`, its batch-norm statistics as `evaluate` would have them (under
        `static`, recomputed: never whatever the last evaluation left, so the evaluation schedule changes nothing)."""
        model = copy.deepcopy(self.model)
        self.layout.load(model, weights)
        if self.statistics is not None:
            recompute_statistics(model, self.x_statistics, self.cfg.training.eval_batch_size)
        return model

    def plan(self, round_: int) -> tuple[list[Job], list[int]]:
        """Sample available devices, let the method's server half plan them, and cut the work to the deadline.

        Returns the jobs to train and the samples each will train (to share them out fairly).
        """
        d = self.cfg.devices
        want = min(d.count, math.ceil(d.per_round * (1 + d.over_selection)))

        def eligible(ids: np.ndarray) -> np.ndarray:
            available, _ = self.view.state(ids, round_, self.clock)
            return available & (self.shard_sizes[ids] > 0)

        devices = sample_available(d.count, want, eligible, rng(self.cfg.seed, round_, SERVER))
        decided = self.half.plan(round_, devices, self.context())
        if decided.weights is not None:
            self.weights = np.asarray(decided.weights, np.float32)
        self.rules.receive(decided.shared)
        self.shared = decided.shared
        jobs = [replace(j, start=self.clock) for j in decided.jobs]
        work = self.workload(round_, jobs)
        timing = time_round(
            work,
            self.clock,
            d.stragglers,
            d.deadline,
            keep=d.per_round if want > d.per_round else None,
            fixed_length=d.round_ends == "deadline",
        )
        self._pending = (round_, jobs, work, timing)
        kept = np.flatnonzero(~timing.dropped)
        trained = [
            jobs[i] if timing.steps[i] == work.planned[i] else replace(jobs[i], steps=int(timing.steps[i]))
            for i in kept
        ]
        return self._grouped(round_, trained), [int(timing.samples[i]) for i in kept]

    def _grouped(self, round_: int, jobs: list[Job]) -> list[Job]:
        """The jobs with their batch groups: those that train the same plan on as many samples for as many
        steps, when the config's model is cheap enough to batch (decided from the config alone)."""
        if not self.batching:
            return jobs

        def key(job: Job) -> Optional[tuple]:
            if job.pooled:
                return None
            plan = self.rules.job_plan(self.facts, round_, job)
            kept = (
                None
                if plan is None
                else (tuple(k.tobytes() for k in plan.keep), None if plan.classes is None else plan.classes.tobytes())
            )
            return kept, self.facts.samples(job), self.facts.steps(job)

        groups = batch_groups([key(j) for j in jobs], self.cfg.training.batch_devices)
        return [replace(j, group=g) for j, g in zip(jobs, groups)]

    def stored(self, jobs: Sequence[Job]) -> dict[int, dict[str, np.ndarray]]:
        """The state the jobs' devices kept at their last round (none when the method keeps none)."""
        if self.states is None:
            return {}
        return {j.device: self.states.get(j.device) for j in jobs if not j.pooled}

    def keep_states(self, round_: int, states: dict[int, dict[str, np.ndarray]]) -> None:
        """Write what the devices of a folded round kept into the store, and show the server half the change."""
        if not states:
            return
        assert self.states is not None  # devices keep only the arrays their method declares (`device_arrays`)
        changes = {}
        for device in sorted(states):
            changes[device] = (self.states.get(device), states[device])
            self.states.put(device, states[device])
        self.half.absorb(round_, changes)

    def step(self, delta: np.ndarray, trained: np.ndarray) -> np.ndarray:
        """The new global weights: the server rule's step along the averaged update (zero where nobody
        trained), the global batch-norm statistics kept under `norm: static`."""
        return self.keep_statistics(self.rule.step(self.weights, delta, trained))

    def plan_units(self, round_: int) -> list["Unit"]:
        """The round's work as units of jobs trained from one set of weights: one unit in sync rounds."""
        jobs, samples = self.plan(round_)
        return [Unit(round_, jobs, samples, self.weights)]

    def fold(self, partials: Sequence[Sequence[Partial]]) -> tuple[dict[str, Any], list[dict[str, Any]]]:
        """Fold the partials of each unit `plan_units` gave in; as `update`."""
        return self.update([p for unit in partials for p in unit])

    def update(self, partials: Sequence[Partial]) -> tuple[dict[str, Any], list[dict[str, Any]]]:
        """Average the round's partials into the global weights, advance the clock.

        A round in which no device trained leaves the weights as they were; the clock still
        advances (by `devices.idle_wait` when nothing took any time), so time-driven resources
        move on and a later round finds devices again. Returns the round's metrics and one
        record per sampled device.
        """
        assert self._pending is not None  # `plan` made the round
        round_, jobs, work, timing = self._pending
        total = combine(partials, self.layout.size)
        if self.rule.averages:
            weights = self.keep_statistics(average(self.weights, total.sums, total.counts))
        else:
            trained = total.counts > 0
            mean = np.divide(total.sums, total.counts, out=np.zeros_like(total.sums), where=trained)
            weights = self.step(np.where(trained, mean - self.weights, 0.0), trained)
        finite = bool(np.isfinite(weights).all())
        if finite:  # a diverged round is not folded in: the run stops with the last good weights
            self.weights = weights
            self.keep_states(round_, total.states)
        by_device = {r["device"]: r for r in total.records}
        full_flops = self.plan_flops(None)
        start = self.clock
        records = [
            device_record(
                round_,
                job,
                work.timelines[i],
                self._tier(job),
                by_device.get(job.device, {}),
                full_flops,
                flops=float(timing.flops[i]),
                finish=float(timing.finish[i]),
                dropped=bool(timing.dropped[i]),
                partial=bool(not timing.dropped[i] and timing.steps[i] < work.planned[i]),
                stopped=timing.stopped[i],
                samples=int(timing.samples[i]),
            )
            for i, job in enumerate(jobs)
        ]
        round_flops = float(timing.flops.sum())
        self.clock = timing.end if timing.end > start else start + self.cfg.devices.idle_wait
        self.total_flops += round_flops
        metrics = step_metrics(round_, records, len(by_device), start, self.clock, round_flops, self.total_flops)
        self.checks.step(
            round_, metrics, records, work.timelines, [self.facts.segment(round_, j) for j in jobs], work.shard
        )
        self._flag_non_finite(metrics, finite)
        self._pending = None
        return metrics, records

    def _tier(self, job: Job) -> str:
        return "central" if job.pooled else self.cfg.devices.tiers[self.view.tier_of[job.device]].name

    @staticmethod
    def _flag_non_finite(metrics: dict[str, Any], finite: bool) -> None:
        """Mark a step whose weights or training loss became NaN or infinite (the run stops there)."""
        bad_loss = metrics["train_loss"] is not None and not math.isfinite(metrics["train_loss"])
        if not finite or bad_loss:
            metrics["non_finite"] = "the global weights" if not finite else "the training loss"

    def snapshot(self, next_round: int, history: list[dict[str, Any]]) -> RunState:
        """The run's state between rounds, for a checkpoint."""
        return RunState(
            next_round,
            self.weights.copy(),
            self.clock,
            self.total_flops,
            self.half.state(),
            list(history),
            rule={k: v.copy() for k, v in self.rule.state().items()},
            devices=self.states.state() if self.states is not None else {},
        )

    def restore(self, state: RunState) -> None:
        """Continue from a checkpoint's state, as if the rounds before it had just run here."""
        if state.weights.shape != self.weights.shape:
            raise UserError(
                f"checkpoint: {state.weights.size} weights, but this config's model has {self.weights.size}"
            )
        self.weights = state.weights.astype(np.float32, copy=True)
        self.clock, self.total_flops = state.clock, state.total_flops
        self.checks = RunChecks(self.clock, self.total_flops, self.cfg.training.batch_size)
        self.half.load_state(state.strategy)
        self.rule.load_state(state.rule)
        if self.states is not None and state.devices:
            self.states.load_state(state.devices)

    def keep_statistics(self, weights: np.ndarray) -> np.ndarray:
        """`norm: static`: the new weights with the global batch-norm statistics as they were (no device's
        reach them; `evaluate` recomputes them); other policies: the weights unchanged."""
        if self.statistics is not None:
            np.copyto(weights, self.weights, where=self.statistics)
        return weights

    def evaluate(self) -> tuple[float, float]:
        """Test accuracy and loss of the global model; under `norm: static` its batch-norm statistics are first
        recomputed through it from a fixed sample of the devices' training data and kept in the weights."""
        self.layout.load(self.model, self.weights)
        if self.statistics is not None:
            recompute_statistics(self.model, self.x_statistics, self.cfg.training.eval_batch_size)
            np.copyto(self.weights, self.layout.flatten(self.model), where=self.statistics)
        return evaluate(self.model, self.data.x_test, self.data.y_test, self.cfg.training.eval_batch_size)


@dataclass(frozen=True)
class Unit:
    """Jobs trained from one model version: a sync round's (its version is the round), or the updates of one
    version that an async server step folds in."""

    version: int  # the model version the jobs start from; the device halves key their draws on it as the round
    jobs: list[Job]
    samples: list[int]  # samples each job trains (to share the work out fairly)
    weights: np.ndarray = field(repr=False)


def device_record(
    round_: int,
    job: Job,
    tl: DeviceTimeline,
    tier: str,
    done: dict[str, Any],
    full_flops: float,
    flops: float,
    finish: float,
    dropped: bool,
    partial: bool,
    stopped: Optional[str],
    samples: int,
) -> dict[str, Any]:
    """One sampled device's record of a round or step: what it was given, what it computed and trained."""
    per_sample = float(tl.step_flops.sum() / samples) if samples else None
    return {
        "round": round_,
        "device": job.device,
        "tier": tier,
        "rate": job.rate,
        "speed": tl.speed_start,
        "speed_min": tl.speed_min,
        "speed_max": tl.speed_max,
        "steps": int(done.get("steps", 0)),
        "samples": int(done.get("samples", 0)),
        "flops": flops,  # computed, a mini-batch cut off midway or a dropped update included
        "trained_flops": 0.0 if dropped else float(tl.step_flops.sum()),  # what its update carries
        "saving": float(full_flops / per_sample) if per_sample else None,
        "finish": finish,
        "dropped": dropped,
        "partial": partial,  # less than the full local work: cut by the deadline, or stopped by its own choice
        "stopped": stopped,  # why it did less than its full work: "own choice", "deadline", "offline", "late"
        "loss": done.get("loss"),
    }


def step_metrics(
    round_: int,
    records: Sequence[dict[str, Any]],
    trained: int,
    start: float,
    end: float,
    flops: float,
    total_flops: float,
) -> dict[str, Any]:
    """A round's (or server step's) metrics from its device records; `trained`: devices whose update came in."""
    losses = [r["loss"] for r in records if r["loss"] is not None]
    return {
        "round": round_,
        "devices": trained,
        "dropped": sum(1 for r in records if r["dropped"]),
        "samples": int(sum(r["samples"] for r in records)),
        "train_loss": float(np.mean(losses)) if losses else None,
        "virtual_start": start,
        "virtual_time": end,
        "flops": flops,
        "cumulative_flops": total_flops,
    }


def split_jobs(jobs: Sequence[Job], sizes: Sequence[int], workers: int) -> list[list[Job]]:
    """Share jobs between workers, largest first to the least loaded, so shares finish together.

    A batch group (jobs of one `group`) goes whole to one worker, its jobs side by side: how devices
    are batched, and so the result, never depends on the number of workers.
    """
    units: dict[Any, list[int]] = {}
    for i, job in enumerate(jobs):
        units.setdefault(("job", i) if job.group is None else ("group", job.group), []).append(i)
    shares: list[list[Job]] = [[] for _ in range(workers)]
    load = np.zeros(workers)
    for unit in sorted(units.values(), key=lambda unit: -sum(sizes[i] for i in unit)):
        w = int(np.argmin(load))
        shares[w].extend(jobs[i] for i in unit)
        load[w] += sum(sizes[i] for i in unit)
    return shares


def model_slicer(cfg: ExperimentConfig, data: ArrayData) -> Slicer:
    """The config's model for the data's shape, as layers and costs."""
    return Slicer(build_model(cfg.model, data.input_shape, data.num_classes, cfg.seed), data.input_shape)


def check_deadline(cfg: ExperimentConfig, data: ArrayData) -> None:
    """A deadline the fastest device cannot meet is bad input, caught before any output.

    Some tier must move and train, at the fastest its resource model ever lets a device run, the
    least work the method can give its devices (the full model for FedAvg, the tier's width,
    DISTREAL's cheapest vector): one mini-batch and the weights both ways.
    """
    d = cfg.devices
    if d.deadline is None:
        return
    rules, _, _ = method_halves(cfg)
    slicer = model_slicer(cfg, data)
    peak = build_resources(d.resources, cfg.seed).peak()
    needs = []
    for t in d.tiers:
        weights, step = rules.cheapest_job(slicer, cfg.training.batch_size, t.name)
        needs.append((2 * 4.0 * weights / t.bandwidth + step / (d.flops_per_second * t.speed * peak), t.name, weights))
    need, tier, weights = min(needs)
    if need > d.deadline:
        at = "" if peak == 1.0 else f" at the resource model's fastest (x{peak:g})"
        raise UserError(
            f"devices.deadline = {d.deadline:g}: no device can meet it; the quickest tier ({tier}) "
            f"needs {need:.3g} s{at} to move its least work ({weights:,} weights each way) and train "
            f"one mini-batch of it"
        )


def check_with_data(cfg: ExperimentConfig, data: ArrayData) -> None:
    """The checks that need the loaded data, before any output: the deadline, the strategy's own."""
    check_deadline(cfg, data)
    rules, _, _ = method_halves(cfg)
    slicer = model_slicer(cfg, data)
    rules.check_data(cfg.strategy.params, cfg, data, slicer)
    arrays = rules.device_arrays(slicer)
    if arrays:
        place(cfg.devices.count, arrays, f"strategy.name = {cfg.strategy.name!r}", checkpoints=cfg.logging.out_dir)
