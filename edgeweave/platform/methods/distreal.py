"""DISTREAL (Rapp, Khalili, Pfeiffer, Henkel, AAAI 2022): per-layer filter dropout, chosen per device.

Every mini-batch, a device drops a random fraction d_l of the filters of each conv layer l. The
vector d comes from a Pareto front of (FLOPs per mini-batch, convergence score) found offline by
`edgeweave dse`; the device takes the best-scoring vector whose cost fits its speed now and the
time left before the deadline, spread over the mini-batches still to do, and stops early when
nothing fits. The choice needs nothing from the driver: the device's speed, bandwidth and the
deadline are known to it, so the driver runs the same computation (`Rules.device_round`) only to
keep the clock and count the FLOPs.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, ClassVar, Literal, cast

import numpy as np
from pydantic import Field

from edgeweave.platform.core.errors import UserError
from edgeweave.platform.core.inputs import FileParams
from edgeweave.platform.core.registry import Params
from edgeweave.platform.core.seeding import Stream, rng
from edgeweave.platform.devices.timeline import StepRule
from edgeweave.platform.methods.base import STRATEGIES, DeviceHalf, Job, Method, Rules
from edgeweave.platform.methods.context import DeviceContext, Facts
from edgeweave.platform.methods.front import Front, check_front, front_rule, parse_front
from edgeweave.platform.train.aggregate import Partial
from edgeweave.platform.train.plans import Plan, dropout_plan

if TYPE_CHECKING:
    from edgeweave.platform.config.schema import ExperimentConfig
    from edgeweave.platform.data import ArrayData
    from edgeweave.platform.train.submodel import Slicer

FIELD = "strategy.front"


class DistrealParams(FileParams):
    input_fields: ClassVar[tuple[str, ...]] = ("front",)  # read once with the config, sent with it
    front: str = "configs/fronts/front.json"  # written by `edgeweave dse`, read by runs
    grid_step: float = Field(0.125, gt=0, lt=1)  # dse: spacing of the per-layer dropout rates searched, from 0
    grid_max: float = Field(0.75, ge=0, lt=1)  # dse: the largest share of a layer's filters a vector may drop
    population: int = Field(16, ge=4)  # dse: NSGA-II's population, vectors per generation
    generations: int = Field(8, ge=1)  # dse: NSGA-II's generations; at most population x generations vectors scored
    dse_steps: int = Field(40, ge=1)  # mini-batches of the convergence test
    dse_seeds: int = Field(2, ge=1)  # dse: seeds each vector's convergence score is averaged over
    held_out: float = Field(0.2, gt=0, lt=1)  # dse: share of the training samples held out to score vectors on
    dse_warm_rounds: int = Field(0, ge=0)  # score from the weights after this many FedAvg rounds (0: initial)
    uniform_only: bool = False  # dse: only vectors that drop the same share of every layer (an ablation)
    choose: Literal["batch", "round"] = "batch"  # a vector per mini-batch, or one per round (an ablation)
    scale_kept: bool = False  # scale kept filters' outputs by full / kept width, about 1/(1-d) (inverted dropout)


def run_front(params: DistrealParams) -> Front:
    """The front as the config read it (the same bytes in every process of the run)."""
    return parse_front(params.content("front"), params.front, FIELD)


class DistrealRules(Rules):
    """Per-mini-batch dropout vectors from the front, chosen by the device from what it has at the time."""

    params: DistrealParams
    paper_norm = "static"  # batch norm without running statistics, as the authors' code keeps it

    def __init__(self, params: DistrealParams, cfg: "ExperimentConfig") -> None:
        super().__init__(params, cfg)
        self._front: Front | None = None

    @classmethod
    def check(cls, params: Params, cfg: "ExperimentConfig") -> None:
        params = cast(DistrealParams, params)  # the config's strategy.params, validated as this method's
        front = check_front(run_front(params), cfg, FIELD)
        searched = bool(front.meta.get("scale_kept", False))
        if searched != params.scale_kept:
            raise UserError(
                f"{FIELD} = {front.source!r}: searched with scale_kept {str(searched).lower()}, but this "
                f"config trains with strategy.scale_kept = {str(params.scale_kept).lower()}; its scores "
                "rank vectors for the other training; make a front with `edgeweave dse CONFIG`"
            )

    @classmethod
    def check_data(cls, params: Params, cfg: "ExperimentConfig", data: "ArrayData", slicer: "Slicer") -> None:
        """The front must also fit the loaded data's input shape and classes. Call before the run starts."""
        params = cast(DistrealParams, params)
        check_front(run_front(params), cfg, FIELD, data, slicer.model)

    def front(self, facts: Facts) -> Front:
        """The run's front, checked once per process against the data's shape and classes and, at its
        cheapest and dearest points, against the real model's FLOPs (what the metadata cannot see, e.g.
        a changed model)."""
        if self._front is None:
            front = check_front(run_front(self.params), self.cfg, FIELD, facts, facts.slicer.model)
            batch = self.cfg.training.batch_size
            for v, recorded in zip(front.vectors[[0, -1]], front.flops_per_batch[[0, -1]]):
                measured = facts.slicer.flops(dropout_plan(facts.slicer, v, np.random.default_rng(0))) * batch
                if not np.isclose(measured, recorded, rtol=1e-9):
                    raise UserError(
                        f"{FIELD} = {front.source!r}: vector {v.tolist()} costs {recorded:.6g} FLOPs per "
                        f"mini-batch there, but {measured:.6g} on this model; make a front for this "
                        "config with `edgeweave dse CONFIG`"
                    )
            self._front = front
        return self._front

    def step_rule(self, facts: Facts, round_: int, job: Job, steps: int) -> StepRule:
        """The device's choice before each mini-batch, from its speed then and the time it has left."""
        return front_rule(
            self.front(facts),
            facts.batch_sizes(job, steps),
            self.cfg.training.batch_size,
            per_round=self.params.choose == "round",
        )

    def cheapest_job(self, slicer: "Slicer", batch: int, tier: str) -> tuple[int, float]:
        """The whole model moves; the cheapest front vector is the least a mini-batch can cost."""
        front = run_front(self.params)
        return slicer.layout.size, float(front.flops_per_batch.min() / self.cfg.training.batch_size * batch)


class DistrealDevice(DeviceHalf):
    """Plays its round out (choosing a vector per mini-batch), drops filters accordingly and trains."""

    rules: DistrealRules

    def train(self, ctx: DeviceContext, round_: int, job: Job, weights: np.ndarray, partial: Partial) -> None:
        rules, facts = self.rules, ctx.facts
        timeline = rules.device_round(facts, round_, job)
        vectors = rules.front(facts).vectors[timeline.choices]
        steps = timeline.steps
        if job.steps is not None and job.steps != steps:
            raise RuntimeError(
                f"device {job.device}, round {round_}: the driver booked {job.steps} mini-batches, "
                f"the device's own timeline has {steps}"
            )

        def plan_for_step(k: int) -> Plan:
            g = rng(rules.cfg.seed, round_, job.device, Stream.DISTREAL_DROPOUT, k)
            return dropout_plan(facts.slicer, vectors[k], g)

        ctx.train_steps(round_, job, weights, partial, plan_for_step, steps=steps, scale_kept=rules.params.scale_kept)


STRATEGIES.add("distreal", Method(DistrealRules, device=DistrealDevice), DistrealParams)
