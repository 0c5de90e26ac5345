"""DISTREAL (Rapp, Khalili, Pfeiffer, Henkel, AAAI 2022): per-layer filter dropout, chosen per device.

Every mini-batch, a device drops a random fraction d_l of the filters of each conv layer l. The
vector d comes from a Pareto front of (FLOPs per mini-batch, convergence score) found offline by
`edgeweave dse`; the device takes the best-scoring vector whose cost fits its speed now and the
time left before the deadline, spread over the mini-batches still to do, and stops early when
nothing fits. The choice needs nothing from the driver: the device's speed, bandwidth and the
deadline are known to it, so the driver runs the same computation (`device_round`) only to keep
the clock and count the FLOPs.
"""

from __future__ import annotations

from dataclasses import replace
from typing import TYPE_CHECKING, ClassVar, Literal

import numpy as np
from pydantic import Field

from edgeweave.platform.aggregate import Partial
from edgeweave.platform.devices.clock import batch_sizes
from edgeweave.platform.devices.timeline import DeviceTimeline, StepRule
from edgeweave.platform.errors import UserError
from edgeweave.platform.front import Front, check_front, front_rule, parse_front
from edgeweave.platform.inputs import FileParams
from edgeweave.platform.seeding import rng
from edgeweave.platform.strategies.base import STRATEGIES, Job, Strategy
from edgeweave.platform.submodel import Slicer, dropout_plan

if TYPE_CHECKING:
    from edgeweave.platform.client import Client
    from edgeweave.platform.data import ArrayData

FIELD = "strategy.front"


class DistrealParams(FileParams):
    input_fields: ClassVar[tuple[str, ...]] = ("front",)  # read once with the config, sent with it
    front: str = "configs/fronts/front.json"  # written by `edgeweave dse`, read by runs
    grid_step: float = Field(0.125, gt=0, lt=1)
    grid_max: float = Field(0.75, ge=0, lt=1)
    population: int = Field(16, ge=4)
    generations: int = Field(8, ge=1)
    dse_steps: int = Field(40, ge=1)  # mini-batches of the convergence test
    dse_seeds: int = Field(2, ge=1)
    held_out: float = Field(0.2, gt=0, lt=1)
    dse_warm_rounds: int = Field(0, ge=0)  # score from the weights after this many FedAvg rounds (0: initial)
    uniform_only: bool = False  # dse: only vectors that drop the same share of every layer (an ablation)
    choose: Literal["batch", "round"] = "batch"  # a vector per mini-batch, or one per round (an ablation)


def run_front(params: DistrealParams) -> Front:
    """The front as the config read it (the same bytes in every process of the run)."""
    return parse_front(params.content("front"), params.front, FIELD)


@STRATEGIES.register("distreal", DistrealParams)
class Distreal(Strategy):
    """Devices train per-mini-batch dropout sub-models; count-normalised averaging."""

    params: DistrealParams

    def __init__(self, params: DistrealParams, cfg) -> None:
        super().__init__(params, cfg)
        self._front: Front | None = None

    @classmethod
    def check(cls, params: DistrealParams, cfg) -> None:
        check_front(run_front(params), cfg, FIELD)

    @classmethod
    def check_data(cls, params: DistrealParams, cfg, data: "ArrayData") -> None:
        """The front must also fit the loaded data's input shape and classes. Call before the run starts."""
        check_front(run_front(params), cfg, FIELD, data)

    def front_for(self, holder) -> Front:
        """The run's front, checked once per process against the holder's data and, at its cheapest and
        dearest points, against its real model's FLOPs (what the metadata cannot see, e.g. a changed model)."""
        if self._front is None:
            front = check_front(run_front(self.params), self.cfg, FIELD, holder.data)
            batch = self.cfg.training.batch_size
            for v, recorded in zip(front.vectors[[0, -1]], front.flops_per_batch[[0, -1]]):
                measured = holder.slicer.flops(dropout_plan(holder.slicer, v, np.random.default_rng(0))) * batch
                if not np.isclose(measured, recorded, rtol=1e-9):
                    raise UserError(f"{FIELD} = {front.source!r}: vector {v.tolist()} costs {recorded:.6g} FLOPs per "
                                    f"mini-batch there, but {measured:.6g} on this model; make a front for this "
                                    "config with `edgeweave dse CONFIG`")
            self._front = front
        return self._front

    def step_rule(self, holder, round_: int, job: Job, steps: int) -> StepRule:
        """The device's choice before each mini-batch, from its speed then and the time it has left."""
        batch = self.cfg.training.batch_size
        return front_rule(self.front_for(holder), batch_sizes(len(holder.partition.shard(job.device)), batch, steps),
                          batch, per_round=self.params.choose == "round")

    def device_round(self, holder, round_: int, job: Job) -> DeviceTimeline:
        """The device's round as it plays out: the one computation both halves run.

        The server half keeps the clock and counts the FLOPs from it (`Server.timeline`, the same
        call) and the device half trains its choices; both start from the device's full work, so
        they cannot disagree. `holder` is the Server or the Client.
        """
        planned = holder.steps_of(replace(job, steps=None))
        return holder.view.timeline(round_, job.device, job.start, 4.0 * holder.layout.size, planned,
                                    self.step_rule(holder, round_, job, planned))

    def cheapest_job(self, slicer: Slicer, batch: int, tier: str) -> tuple[int, float]:
        """The whole model moves; the cheapest front vector is the least a mini-batch can cost."""
        front = run_front(self.params)
        return slicer.layout.size, float(front.flops_per_batch.min() / self.cfg.training.batch_size * batch)

    # Client half: choose, drop filters per mini-batch, train, report what was touched.
    def client_update(self, client: "Client", round_: int, job: Job, global_weights: np.ndarray,
                      partial: Partial) -> None:
        timeline = self.device_round(client, round_, job)
        vectors = self.front_for(client).vectors[timeline.choices]
        steps = timeline.steps
        if job.steps is not None and job.steps != steps:
            raise RuntimeError(f"device {job.device}, round {round_}: the driver booked {job.steps} mini-batches, "
                               f"the device's own timeline has {steps}")

        def plan_for_step(k: int):
            return dropout_plan(client.slicer, vectors[k], rng(self.cfg.seed, round_, job.device, 300 + k))

        client.train_per_batch(round_, job, global_weights, partial, plan_for_step, steps=steps)
