"""Task-wise decoupling and harvest (Chen & Qin, IEEE/ACM SEC 2020).

The model is decoupled into sub-models, one per task (a group of classes); each device trains
only the sub-model of its own tasks, with an objective whose logits stay comparable with other
tasks' ones, and the driver harvests each task's parameters from the devices that trained it
(count-averaged; the shared trunk averaged over all) into one model that classifies every
class. Elements no task owns are held at zero, so the harvested model is exactly the union of
the task sub-models. With `training.rounds: 1` and several local epochs it is one-shot;
with more rounds the harvest repeats after each.
"""

from __future__ import annotations

from dataclasses import replace
from typing import TYPE_CHECKING, Any, ClassVar, Literal, Optional

import numpy as np
from pydantic import Field

from edgeweave.platform.aggregate import Partial
from edgeweave.platform.devices.clock import batch_sizes
from edgeweave.platform.devices.timeline import DeviceTimeline, StepRule
from edgeweave.platform.data import DATASETS, ArrayData
from edgeweave.platform.errors import UserError
from edgeweave.platform.inputs import FileParams
from edgeweave.platform.strategies.base import STRATEGIES, Job, Strategy
from edgeweave.platform.front import Front, check_front, front_rule, parse_front
from edgeweave.platform.seeding import rng
from edgeweave.platform.models import build_model
from edgeweave.platform.submodel import Plan, Slicer, thin
from edgeweave.platform.taskwise import (OBJECTIVES, allowed_mask, attributed_plans, class_groups, grouped_plans,
                                         own_labels, relevance, union)

if TYPE_CHECKING:
    from edgeweave.platform.client import Client
    from edgeweave.platform.server import Server


class TaskwiseParams(FileParams):
    input_fields: ClassVar[tuple[str, ...]] = ("dropout_front",)  # read once with the config, sent with it
    mode: Literal["grouped", "attributed"] = "grouped"
    groups: int = Field(5, ge=1)  # tasks: the classes split into this many contiguous groups
    class_groups: Optional[list[list[int]]] = None  # or explicit class lists, one per task
    trunk: int = Field(1, ge=0)  # grouped: prunable layers shared by every task
    keep: float = Field(0.5, gt=0, le=1)  # attributed: share of each layer a task keeps
    warmup_rounds: int = Field(2, ge=0)  # attributed: full-model FedAvg rounds before scoring
    tasks: Literal["held", "sampled", "explicit", "budget"] = "held"
    tasks_per_device: int = Field(1, ge=1)
    assignment: Optional[list[list[int]]] = None  # explicit: task ids per device (cycled)
    objective: Literal["other", "ovr"] = "other"
    dropout_front: Optional[str] = None  # a DISTREAL front: drop filters inside the task sub-model


DROPOUT_FRONT = "strategy.dropout_front"


def _dropout_front(p: TaskwiseParams) -> Front:
    """The dropout front as the config read it (the same bytes in every process of the run)."""
    return parse_front(p.content("dropout_front"), str(p.dropout_front), DROPOUT_FRONT)


def _task_count(p: TaskwiseParams) -> int:
    return len(p.class_groups) if p.class_groups else p.groups


def declared_classes(cfg) -> Optional[int]:
    """The data set's class count when its config or class declares it (`num_classes`), else None."""
    dataset, _ = DATASETS.entry(cfg.data.name, "data.name")
    for source in (cfg.data.params, dataset):
        n = getattr(source, "num_classes", None)
        if isinstance(n, int) and not isinstance(n, bool):
            return n
    return None


def _check_tasks(p: TaskwiseParams, cfg) -> None:
    """Explicit task ids name existing tasks, one non-empty list per existing device id; class lists are classes."""
    tasks = _task_count(p)
    for g, classes in enumerate(p.class_groups or []):
        if not classes:
            raise UserError(f"strategy.class_groups = {p.class_groups}: group {g} is empty; "
                            "every group needs at least one class")
        if min(classes) < 0:
            raise UserError(f"strategy.class_groups = {p.class_groups}: class {min(classes)} does not exist; "
                            "classes are numbered from 0")
    if p.assignment is None:
        return
    count = cfg.devices.count
    if len(p.assignment) > count:
        raise UserError(f"strategy.assignment = {p.assignment}: {len(p.assignment)} entries, one per device id, "
                        f"but devices.count = {count}; give at most {count} (they repeat over the devices)")
    for d, ids in enumerate(p.assignment):
        if not ids:
            raise UserError(f"strategy.assignment = {p.assignment}: device {d} has no task; "
                            f"give it task ids in 0..{tasks - 1}")
        bad = [t for t in ids if not 0 <= t < tasks]
        if bad:
            source = (f"{len(p.class_groups)} strategy.class_groups" if p.class_groups
                      else f"strategy.groups = {p.groups}")
            raise UserError(f"strategy.assignment = {p.assignment}: task {bad[0]} does not exist; "
                            f"task ids are 0..{tasks - 1} ({source})")


def _check_classes(p: TaskwiseParams, num_classes: int, where: str) -> None:
    """Every class id exists and every class is in some group; no more contiguous groups than classes."""
    if not p.class_groups:
        if p.groups > num_classes:
            raise UserError(f"strategy.groups = {p.groups}: at most {num_classes}, the classes of {where} "
                            "(every task needs a class)")
        return
    named = sorted({c for g in p.class_groups for c in g})
    past = [c for c in named if c >= num_classes]
    if past:
        raise UserError(f"strategy.class_groups = {p.class_groups}: class {past[0]} does not exist; "
                        f"{where} has classes 0..{num_classes - 1}")
    missed = sorted(set(range(num_classes)) - set(named))
    if missed:
        raise UserError(f"strategy.class_groups = {p.class_groups}: class {missed[0]} is in no group; "
                        f"every class of {where} (0..{num_classes - 1}) needs a group")


@STRATEGIES.register("taskwise", TaskwiseParams)
class Taskwise(Strategy):
    """Each device trains the sub-model of its tasks; the driver harvests and assembles them."""

    params: TaskwiseParams

    def __init__(self, params: TaskwiseParams, cfg) -> None:
        super().__init__(params, cfg)
        self.plans: Optional[list[Plan]] = None
        self._allowed: Optional[np.ndarray] = None
        self._front: Optional[Front] = None

    @classmethod
    def check(cls, params: TaskwiseParams, cfg) -> None:
        if params.tasks == "explicit" and not params.assignment:
            raise UserError("strategy.tasks = 'explicit': needs strategy.assignment, task ids per device")
        _check_tasks(params, cfg)
        declared = declared_classes(cfg)
        if declared is not None:
            _check_classes(params, declared, f"data {cfg.data.name}")
        if params.dropout_front:
            check_front(_dropout_front(params), cfg, DROPOUT_FRONT)

    @classmethod
    def check_data(cls, params: TaskwiseParams, cfg, data: ArrayData) -> None:
        """What needs the loaded data: its classes, and the model's widths for its input shape.

        Call after loading the data and before starting the run.
        """
        _check_classes(params, data.num_classes, f"data {cfg.data.name}")
        if params.dropout_front:
            check_front(_dropout_front(params), cfg, DROPOUT_FRONT, data)
        if params.mode != "grouped":
            return
        model = build_model(cfg.model, data.input_shape, data.num_classes, cfg.seed)
        widths = Slicer(model, data.input_shape).widths
        grouped = widths[params.trunk:]
        tasks = _task_count(params)
        if grouped and tasks > min(grouped):
            field = "strategy.class_groups" if params.class_groups else "strategy.groups"
            value = params.class_groups if params.class_groups else params.groups
            layer = params.trunk + grouped.index(min(grouped))
            raise UserError(
                f"{field} = {value}: {tasks} tasks; at most {min(grouped)}, the channels of the narrowest "
                f"grouped layer (prunable layer {layer} of model {cfg.model.name}, after strategy.trunk = "
                f"{params.trunk}); use fewer tasks, a larger strategy.trunk or a wider model")

    def own_front(self, holder, plan: Plan) -> Front:
        """The dropout front priced on a task sub-model: the vectors keep their convergence ranking,
        their costs are measured on the sub-model thinned by each."""
        if self._front is None:
            self._front = _dropout_front(self.params)
        g = np.random.default_rng(0)  # FLOPs depend on the widths only, not on which channels
        costs = np.array([holder.slicer.flops(thin(plan, v, g)) for v in self._front.vectors], np.float64)
        return Front(self._front.vectors, costs * self.cfg.training.batch_size, self._front.score, {})

    def step_rule(self, holder, round_: int, job: Job, steps: int) -> StepRule:
        """With a dropout front the device picks a vector before each mini-batch, as a `distreal` device does."""
        if not self.params.dropout_front or self.warming_up(round_):
            return super().step_rule(holder, round_, job, steps)
        batch = self.cfg.training.batch_size
        own = self.own_front(holder, self.device_plan(holder, job.device, round_))
        return front_rule(own, batch_sizes(len(holder.partition.shard(job.device)), batch, steps), batch)

    def device_round(self, holder, round_: int, job: Job) -> DeviceTimeline:
        """With a dropout front: the device's round as it plays out, the same call the driver's clock makes."""
        plan = self.device_plan(holder, job.device, round_)
        planned = holder.steps_of(replace(job, steps=None))
        return holder.view.timeline(round_, job.device, job.start, 4.0 * holder.slicer.count(plan), planned,
                                    self.step_rule(holder, round_, job, planned))

    def warming_up(self, round_: int) -> bool:
        return self.params.mode == "attributed" and round_ < self.params.warmup_rounds

    def _make_plans(self, holder, weights: np.ndarray) -> list[Plan]:
        p = self.params
        classes = class_groups(holder.data.num_classes, p.groups, p.class_groups)
        if p.mode == "grouped":
            return grouped_plans(holder.slicer, classes, p.trunk)
        holder.layout.load(holder.model, weights)
        scores = relevance(holder.model, holder.data.x_train, holder.data.y_train, holder.data.num_classes)
        return attributed_plans(scores, classes, p.keep)

    def allowed(self, holder) -> np.ndarray:
        if self._allowed is None:
            self._allowed = allowed_mask(holder.slicer, holder.layout.size, self.plans)
        return self._allowed

    def shared_state(self) -> Any:
        return self.plans

    def receive_state(self, state: Any) -> None:
        if state is not None and self.plans is None:
            self.plans, self._allowed = state, None

    def state(self) -> dict[str, np.ndarray]:
        if self.plans is None:
            return {}
        arrays = {f"plan.{t}.classes": p.classes for t, p in enumerate(self.plans)}
        arrays.update({f"plan.{t}.keep.{k}": keep for t, p in enumerate(self.plans) for k, keep in enumerate(p.keep)})
        return arrays

    def load_state(self, arrays: dict[str, np.ndarray]) -> None:
        tasks = sorted({int(k.split(".")[1]) for k in arrays if k.startswith("plan.")})
        layers = sorted({int(k.split(".")[3]) for k in arrays if ".keep." in k})
        self.plans = [Plan(tuple(arrays[f"plan.{t}.keep.{k}"] for k in layers), arrays[f"plan.{t}.classes"])
                      for t in tasks] or None
        self._allowed = None

    def tasks_of(self, holder, device: int, round_: int) -> list[int]:
        """The device's tasks this round.

        `held`: those whose classes it holds most (fewer on weaker tiers with `budget`);
        `sampled`: drawn afresh each round with probability in proportion to the samples it
        holds of each task, so over the rounds every one of its samples is a positive for its
        own task, at the same per-round cost as `held`.
        """
        p = self.params
        if p.tasks == "explicit":
            return list(p.assignment[device % len(p.assignment)])
        labels = holder.data.y_train[holder.partition.shard(device)]
        held = np.array([np.isin(labels, plan.classes).sum() for plan in self.plans], np.float64)
        n = p.tasks_per_device
        if p.tasks == "budget":
            n = max(1, int(np.ceil(n * holder.view.tier_speed[holder.view.tier_of[device]])))
        if p.tasks == "sampled":
            n = min(n, int((held > 0).sum()))
            drawn = rng(self.cfg.seed, round_, device, 500).choice(len(held), n, replace=False, p=held / held.sum())
            return sorted(drawn.tolist())
        return sorted(np.argsort(-held, kind="stable")[:n].tolist())

    def device_plan(self, holder, device: int, round_: int) -> Plan:
        return union([self.plans[t] for t in self.tasks_of(holder, device, round_)])

    # Server half.
    def plan(self, round_: int, devices: np.ndarray, server: "Server") -> list[Job]:
        if not self.warming_up(round_) and self.plans is None:
            self.plans = self._make_plans(server, server.weights)
            # From here on, elements no task owns are zero: the model is the union of the tasks.
            server.weights = np.where(self.allowed(server), server.weights, 0.0).astype(np.float32)
        return [Job(int(d)) for d in devices]

    def cheapest_job(self, slicer: Slicer, batch: int, tier: str) -> tuple[int, float]:
        """Grouped tasks are known before training: the smallest task sub-model (thinned by the
        front's cheapest vector, with one) is the least a device takes on. Attributed tasks
        start with full-model warm-up rounds, so the full model it is."""
        p = self.params
        if p.mode != "grouped":
            return super().cheapest_job(slicer, batch, tier)
        classes = class_groups(slicer.num_classes, p.groups, p.class_groups)
        plans = grouped_plans(slicer, classes, p.trunk)
        trained = plans
        if p.dropout_front:  # the task sub-model moves whole; a mini-batch trains it thinned
            front, g = _dropout_front(p), np.random.default_rng(0)
            trained = [thin(plan, front.vectors[int(np.argmin(front.flops_per_batch))], g) for plan in plans]
        return min((slicer.count(plan), float(slicer.flops(t) * batch)) for plan, t in zip(plans, trained))

    def job_plan(self, server: "Server", round_: int, job: Job) -> Optional[Plan]:
        return None if self.warming_up(round_) else self.device_plan(server, job.device, round_)

    # Client half.
    def client_update(self, client: "Client", round_: int, job: Job, global_weights: np.ndarray,
                      partial: Partial) -> None:
        n = float(client.shard_size(job))
        if self.warming_up(round_):
            client.load(global_weights)
            result = client.train(round_, job)
            partial.add(client.weights(), weight=n)
            partial.record(job.device, result.samples, result.steps, result.loss)
        elif self.params.dropout_front:  # records itself
            plan = self.device_plan(client, job.device, round_)
            timeline = self.device_round(client, round_, job)
            vectors = self.own_front(client, plan).vectors[timeline.choices]  # its own order, by cost here
            client.train_per_batch(
                round_, job, global_weights, partial, steps=timeline.steps,
                plan_for_step=lambda k: thin(plan, vectors[k], rng(self.cfg.seed, round_, job.device, 400 + k)),
                loss_fn=OBJECTIVES[self.params.objective], targets=lambda y, p: own_labels(y, p.classes),
                allowed=self.allowed(client))
        else:
            plan = self.device_plan(client, job.device, round_)
            pos = client.slicer.positions(plan)
            own = self.allowed(client)[pos]
            model, layout, _ = client.submodels.get(plan)
            layout.load(model, global_weights[pos])
            project = None
            if not own.all():  # several tasks: keep their cross-task weights at zero, as in the model
                params = dict(model.named_parameters())
                masks = {k: m.to(params[k].device) for k, m in layout.split(own).items() if k in params}
                project = lambda: [params[k].data.mul_(m) for k, m in masks.items()]  # noqa: E731
            result = client.train(round_, job, model=model, labels=lambda y: own_labels(y, plan.classes),
                                  loss_fn=OBJECTIVES[self.params.objective], after_step=project)
            partial.add(layout.flatten(model)[own], weight=n, mask=pos[own])
            partial.record(job.device, result.samples, result.steps, result.loss)
