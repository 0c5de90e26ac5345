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

from typing import TYPE_CHECKING, Any, ClassVar, Literal, Optional, cast

import numpy as np
from pydantic import Field

from edgeweave.platform.core.errors import UserError
from edgeweave.platform.core.inputs import FileParams
from edgeweave.platform.core.registry import Params
from edgeweave.platform.core.seeding import Stream, rng
from edgeweave.platform.data import DATASETS, ArrayData
from edgeweave.platform.devices.timeline import StepRule
from edgeweave.platform.methods.base import STRATEGIES, DeviceHalf, Job, Method, RoundPlan, Rules, ServerHalf
from edgeweave.platform.methods.context import DeviceContext, Facts, ServerContext
from edgeweave.platform.methods.front import Front, check_front, front_rule, parse_front
from edgeweave.platform.train.aggregate import Partial
from edgeweave.platform.train.plans import Plan, thin
from edgeweave.platform.train.task_plans import allowed_mask, attributed_plans, class_groups, grouped_plans, union

if TYPE_CHECKING:
    from edgeweave.platform.config.schema import ExperimentConfig
    from edgeweave.platform.train.submodel import Slicer


class TaskwiseParams(FileParams):
    input_fields: ClassVar[tuple[str, ...]] = ("dropout_front",)  # read once with the config, sent with it
    # grouped: layers after `trunk` split into one channel group per task; attributed: by relevance after warm-up
    mode: Literal["grouped", "attributed"] = "grouped"
    groups: int = Field(5, ge=1)  # tasks: the classes split into this many contiguous groups
    class_groups: Optional[list[list[int]]] = None  # or explicit class lists, one per task
    trunk: int = Field(1, ge=0)  # grouped: prunable layers shared by every task
    keep: float = Field(0.5, gt=0, le=1)  # attributed: share of each layer a task keeps
    warmup_rounds: int = Field(2, ge=0)  # attributed: full-model FedAvg rounds before scoring
    # held: the ones it holds most; sampled: drawn per round by samples held; explicit: `assignment`; budget: by tier
    tasks: Literal["held", "sampled", "explicit", "budget"] = "held"
    tasks_per_device: int = Field(1, ge=1)  # tasks a device trains; budget: times its tier's speed, rounded up
    assignment: Optional[list[list[int]]] = None  # explicit: task ids per device (cycled)
    objective: Literal["other", "ovr"] = "other"  # other: softmax plus a zero "other" logit; ovr: a sigmoid per class
    dropout_front: Optional[str] = None  # a DISTREAL front: drop filters inside the task sub-model


DROPOUT_FRONT = "strategy.dropout_front"


def _dropout_front(p: TaskwiseParams) -> Front:
    """The dropout front as the config read it (the same bytes in every process of the run)."""
    return parse_front(p.content("dropout_front"), str(p.dropout_front), DROPOUT_FRONT)


def _task_count(p: TaskwiseParams) -> int:
    return len(p.class_groups) if p.class_groups else p.groups


def declared_classes(cfg: "ExperimentConfig") -> Optional[int]:
    """The data set's class count when its config or class declares it (`num_classes`), else None."""
    dataset, _ = DATASETS.entry(cfg.data.name, "data.name")
    for source in (cfg.data.params, dataset):
        n = getattr(source, "num_classes", None)
        if isinstance(n, int) and not isinstance(n, bool):
            return n
    return None


def _check_tasks(p: TaskwiseParams, cfg: "ExperimentConfig") -> None:
    """Explicit task ids name existing tasks, one non-empty list per existing device id; class lists are classes."""
    tasks = _task_count(p)
    for g, classes in enumerate(p.class_groups or []):
        if not classes:
            raise UserError(
                f"strategy.class_groups = {p.class_groups}: group {g} is empty; every group needs at least one class"
            )
        if min(classes) < 0:
            raise UserError(
                f"strategy.class_groups = {p.class_groups}: class {min(classes)} does not exist; "
                "classes are numbered from 0"
            )
    if p.assignment is None:
        return
    count = cfg.devices.count
    if len(p.assignment) > count:
        raise UserError(
            f"strategy.assignment = {p.assignment}: {len(p.assignment)} entries, one per device id, "
            f"but devices.count = {count}; give at most {count} (they repeat over the devices)"
        )
    for d, ids in enumerate(p.assignment):
        if not ids:
            raise UserError(
                f"strategy.assignment = {p.assignment}: device {d} has no task; give it task ids in 0..{tasks - 1}"
            )
        bad = [t for t in ids if not 0 <= t < tasks]
        if bad:
            source = (
                f"{len(p.class_groups)} strategy.class_groups" if p.class_groups else f"strategy.groups = {p.groups}"
            )
            raise UserError(
                f"strategy.assignment = {p.assignment}: task {bad[0]} does not exist; "
                f"task ids are 0..{tasks - 1} ({source})"
            )


def _check_classes(p: TaskwiseParams, num_classes: int, where: str) -> None:
    """Every class id exists and every class is in some group; no more contiguous groups than classes."""
    if not p.class_groups:
        if p.groups > num_classes:
            raise UserError(
                f"strategy.groups = {p.groups}: at most {num_classes}, the classes of {where} "
                "(every task needs a class)"
            )
        return
    named = sorted({c for g in p.class_groups for c in g})
    past = [c for c in named if c >= num_classes]
    if past:
        raise UserError(
            f"strategy.class_groups = {p.class_groups}: class {past[0]} does not exist; "
            f"{where} has classes 0..{num_classes - 1}"
        )
    missed = sorted(set(range(num_classes)) - set(named))
    if missed:
        raise UserError(
            f"strategy.class_groups = {p.class_groups}: class {missed[0]} is in no group; "
            f"every class of {where} (0..{num_classes - 1}) needs a group"
        )


class TaskwiseRules(Rules):
    """Each device's tasks and their sub-model, from the task plans the server made and shared."""

    paper_norm = "static"  # a task's sub-model is thinned: its statistics are not the whole model's

    params: TaskwiseParams

    def __init__(self, params: TaskwiseParams, cfg: "ExperimentConfig") -> None:
        super().__init__(params, cfg)
        self.plans: Optional[list[Plan]] = None  # one per task, once made (after any warm-up)
        self._allowed: Optional[np.ndarray] = None
        self._front: Optional[Front] = None

    @classmethod
    def check(cls, params: Params, cfg: "ExperimentConfig") -> None:
        params = cast(TaskwiseParams, params)  # the config's strategy.params, validated as this method's
        if params.tasks == "explicit" and not params.assignment:
            raise UserError("strategy.tasks = 'explicit': needs strategy.assignment, task ids per device")
        _check_tasks(params, cfg)
        if cfg.aggregation.mode == "async" and params.mode == "attributed" and params.warmup_rounds > 0:
            raise UserError(
                f"strategy.warmup_rounds = {params.warmup_rounds}: in async aggregation the task plans "
                "replace the model while devices still train the warm-up's; set it to 0 (plans from "
                "the initial model) or use aggregation.mode: sync"
            )
        declared = declared_classes(cfg)
        if declared is not None:
            _check_classes(params, declared, f"data {cfg.data.name}")
        if params.dropout_front:
            check_front(_dropout_front(params), cfg, DROPOUT_FRONT)

    @classmethod
    def check_data(cls, params: Params, cfg: "ExperimentConfig", data: ArrayData, slicer: "Slicer") -> None:
        """What needs the loaded data: its classes, and the model's widths for its input shape.

        Call after loading the data and before starting the run.
        """
        params = cast(TaskwiseParams, params)
        _check_classes(params, data.num_classes, f"data {cfg.data.name}")
        if params.dropout_front:
            check_front(_dropout_front(params), cfg, DROPOUT_FRONT, data, slicer.model)
        if params.mode != "grouped":
            return
        grouped = slicer.widths[params.trunk :]
        tasks = _task_count(params)
        if grouped and tasks > min(grouped):
            field = "strategy.class_groups" if params.class_groups else "strategy.groups"
            value = params.class_groups if params.class_groups else params.groups
            layer = params.trunk + grouped.index(min(grouped))
            raise UserError(
                f"{field} = {value}: {tasks} tasks; at most {min(grouped)}, the channels of the narrowest "
                f"grouped layer (prunable layer {layer} of model {cfg.model.name}, after strategy.trunk = "
                f"{params.trunk}); use fewer tasks, a larger strategy.trunk or a wider model"
            )

    def receive(self, shared: Any) -> None:
        """The task plans, once the server has made them (they never change after)."""
        if shared is not None and self.plans is None:
            self.plans, self._allowed = shared, None

    def warming_up(self, round_: int) -> bool:
        return self.params.mode == "attributed" and round_ < self.params.warmup_rounds

    def own_front(self, facts: Facts, plan: Plan) -> Front:
        """The dropout front priced on a task sub-model: the vectors keep their convergence ranking,
        their costs are measured on the sub-model thinned by each."""
        if self._front is None:
            self._front = _dropout_front(self.params)
        g = np.random.default_rng(0)  # FLOPs depend on the widths only, not on which channels
        costs = np.array([facts.slicer.flops(thin(plan, v, g)) for v in self._front.vectors], np.float64)
        return Front(self._front.vectors, costs * self.cfg.training.batch_size, self._front.score, {})

    def step_rule(self, facts: Facts, round_: int, job: Job, steps: int) -> StepRule:
        """With a dropout front the device picks a vector before each mini-batch, as a `distreal` device does."""
        if not self.params.dropout_front or self.warming_up(round_):
            return super().step_rule(facts, round_, job, steps)
        own = self.own_front(facts, self.device_plan(facts, job.device, round_))
        return front_rule(own, facts.batch_sizes(job, steps), self.cfg.training.batch_size)

    def allowed(self, facts: Facts) -> np.ndarray:
        """Elements of the flat weights some task owns; the others are held at zero."""
        if self._allowed is None:
            assert self.plans is not None  # asked for only once the warm-up is over and the plans are made
            self._allowed = allowed_mask(facts.slicer, facts.model_size, self.plans)
        return self._allowed

    def tasks_of(self, facts: Facts, device: int, round_: int) -> list[int]:
        """The device's tasks this round.

        `held`: those whose classes it holds most (fewer on weaker tiers with `budget`);
        `sampled`: drawn afresh each round with probability in proportion to the samples it
        holds of each task, so over the rounds every one of its samples is a positive for its
        own task, at the same per-round cost as `held`.
        """
        p = self.params
        if p.tasks == "explicit":
            assert p.assignment is not None  # `check`: explicit tasks need an assignment
            return list(p.assignment[device % len(p.assignment)])
        assert self.plans is not None  # asked for only once the warm-up is over and the plans are made
        labels = facts.labels(device)
        held = np.array([np.isin(labels, cast(np.ndarray, plan.classes)).sum() for plan in self.plans], np.float64)
        n = p.tasks_per_device
        if p.tasks == "budget":
            n = max(1, int(np.ceil(n * facts.view.tier_speed[facts.view.tier_of[device]])))
        if p.tasks == "sampled":
            n = min(n, int((held > 0).sum()))
            g = rng(self.cfg.seed, round_, device, Stream.TASKWISE_TASKS)
            drawn = g.choice(len(held), n, replace=False, p=held / held.sum())
            return sorted(drawn.tolist())
        return sorted(np.argsort(-held, kind="stable")[:n].tolist())

    def device_plan(self, facts: Facts, device: int, round_: int) -> Plan:
        tasks = self.tasks_of(facts, device, round_)
        assert self.plans is not None  # asked for only once the warm-up is over and the plans are made
        return union([self.plans[t] for t in tasks])

    def job_plan(self, facts: Facts, round_: int, job: Job) -> Optional[Plan]:
        return None if self.warming_up(round_) else self.device_plan(facts, job.device, round_)

    def cheapest_job(self, slicer: "Slicer", batch: int, tier: str) -> tuple[int, float]:
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


class TaskwiseServer(ServerHalf):
    """Makes the task plans once (after any warm-up), shares them every round, keeps them in checkpoints."""

    rules: TaskwiseRules

    def plan(self, round_: int, devices: np.ndarray, ctx: ServerContext) -> RoundPlan:
        rules, weights = self.rules, None
        if not rules.warming_up(round_) and rules.plans is None:
            plans = self._make_plans(ctx)
            # From here on, elements no task owns are zero: the model is the union of the tasks.
            weights = np.where(allowed_mask(ctx.facts.slicer, ctx.facts.model_size, plans), ctx.weights, 0.0).astype(
                np.float32
            )
            return RoundPlan([Job(int(d)) for d in devices], plans, weights)
        return RoundPlan([Job(int(d)) for d in devices], rules.plans)

    def _make_plans(self, ctx: ServerContext) -> list[Plan]:
        p, facts = self.rules.params, ctx.facts
        classes = class_groups(facts.num_classes, p.groups, p.class_groups)
        if p.mode == "grouped":
            return grouped_plans(facts.slicer, classes, p.trunk)
        from edgeweave.platform.train.task_training import relevance  # torch: only where a model is scored

        scores = relevance(ctx.model_at(ctx.weights), ctx.data.x_train, ctx.data.y_train, facts.num_classes)
        return attributed_plans(scores, classes, p.keep)

    def state(self) -> dict[str, np.ndarray]:
        plans = self.rules.plans
        if plans is None:
            return {}
        arrays = {f"plan.{t}.classes": cast(np.ndarray, p.classes) for t, p in enumerate(plans)}  # a task's classes
        arrays.update({f"plan.{t}.keep.{k}": keep for t, p in enumerate(plans) for k, keep in enumerate(p.keep)})
        return arrays

    def load_state(self, arrays: dict[str, np.ndarray]) -> None:
        tasks = sorted({int(k.split(".")[1]) for k in arrays if k.startswith("plan.")})
        layers = sorted({int(k.split(".")[3]) for k in arrays if ".keep." in k})
        self.rules.plans = None
        self.rules.receive(
            [Plan(tuple(arrays[f"plan.{t}.keep.{k}"] for k in layers), arrays[f"plan.{t}.classes"]) for t in tasks]
            or None
        )


class TaskwiseDevice(DeviceHalf):
    """Trains the sub-model of its tasks with an objective whose logits assemble (full model in warm-up)."""

    rules: TaskwiseRules

    def train(self, ctx: DeviceContext, round_: int, job: Job, weights: np.ndarray, partial: Partial) -> None:
        rules, facts = self.rules, ctx.facts
        if rules.warming_up(round_):
            ctx.train_full(round_, job, weights, partial)
            return
        from edgeweave.platform.train.task_training import OBJECTIVES, own_labels  # torch: only where devices train

        plan = rules.device_plan(facts, job.device, round_)
        task: dict[str, Any] = dict(
            loss_fn=OBJECTIVES[rules.params.objective],
            targets=lambda y, p: own_labels(y, p.classes),
            allowed=rules.allowed(facts),
        )
        if not rules.params.dropout_front:
            ctx.train_plan(round_, job, weights, partial, plan, **task)
            return
        timeline = rules.device_round(facts, round_, job)
        vectors = rules.own_front(facts, plan).vectors[timeline.choices]  # its own order, by cost here
        seed = rules.cfg.seed
        ctx.train_steps(
            round_,
            job,
            weights,
            partial,
            steps=timeline.steps,
            plan_for_step=lambda k: thin(plan, vectors[k], rng(seed, round_, job.device, Stream.TASKWISE_THIN, k)),
            **task,
        )


STRATEGIES.add("taskwise", Method(TaskwiseRules, TaskwiseServer, TaskwiseDevice), TaskwiseParams)
