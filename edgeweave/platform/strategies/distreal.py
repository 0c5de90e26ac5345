"""DISTREAL (Rapp, Khalili, Pfeiffer, Henkel, AAAI 2022): per-layer filter dropout, chosen per device.

Every mini-batch, a device drops a random fraction d_l of the filters of each conv layer l. The
vector d comes from a Pareto front of (FLOPs per mini-batch, convergence score) found offline by
`edgeweave dse`; the device takes the best-scoring vector whose cost fits its speed now and the
time left before the deadline, spread over the mini-batches still to do, and stops early when
nothing fits. The choice needs nothing from the driver: the device's speed, bandwidth and the
deadline are known to it, so the driver replays the same choice only to keep the clock.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np
from pydantic import Field

from edgeweave.platform.aggregate import Partial
from edgeweave.platform.front import Front, check_front, load_front, schedule
from edgeweave.platform.registry import Params
from edgeweave.platform.seeding import rng
from edgeweave.platform.strategies.base import STRATEGIES, Job, Strategy
from edgeweave.platform.submodel import dropout_plan

if TYPE_CHECKING:
    from edgeweave.platform.client import Client
    from edgeweave.platform.server import Server


class DistrealParams(Params):
    front: str = "configs/fronts/front.json"  # written by `edgeweave dse`, read by runs
    grid_step: float = Field(0.125, gt=0, lt=1)
    grid_max: float = Field(0.75, ge=0, lt=1)
    population: int = Field(16, ge=4)
    generations: int = Field(8, ge=1)
    dse_steps: int = Field(40, ge=1)  # mini-batches of the convergence test
    dse_seeds: int = Field(2, ge=1)
    held_out: float = Field(0.2, gt=0, lt=1)


@STRATEGIES.register("distreal", DistrealParams)
class Distreal(Strategy):
    """Devices train per-mini-batch dropout sub-models; count-normalised averaging."""

    params: DistrealParams

    def __init__(self, params: DistrealParams, cfg) -> None:
        super().__init__(params, cfg)
        self._front: Front | None = None

    @property
    def front(self) -> Front:
        if self._front is None:
            self._front = load_front(self.params.front)
        return self._front

    @classmethod
    def check(cls, params: DistrealParams, cfg) -> None:
        check_front(params.front, cfg, "strategy.front")

    def choices(self, view, round_: int, job: Job, steps: int, model_bytes: float) -> np.ndarray:
        """The front point of each mini-batch, as the device itself picks them."""
        d = np.array([job.device])
        _, speed = view.state(d, round_, job.start)
        deadline = self.cfg.devices.deadline
        seconds = None if deadline is None else deadline - 2 * model_bytes / float(view.bandwidth(d)[0])
        return schedule(self.front, steps, float(speed[0]), seconds)

    # Server half: replay each device's choices to keep the clock and count its FLOPs.
    def plan(self, round_: int, devices: np.ndarray, server: "Server") -> list[Job]:
        jobs = []
        for dev in devices.tolist():
            job = Job(dev, start=server.clock)
            full = server.steps_of(job)
            picked = self.choices(server.view, round_, job, full, 4.0 * server.layout.size)
            jobs.append(job if len(picked) == full else Job(dev, start=server.clock, steps=len(picked)))
        return jobs

    def flops_per_sample(self, server: "Server", round_: int, job: Job) -> float:
        picked = self.choices(server.view, round_, job, server.steps_of(job), 4.0 * server.layout.size)
        return float(self.front.flops_per_batch[picked].mean() / self.cfg.training.batch_size) if len(picked) else 0.0

    # Client half: choose, drop filters per mini-batch, train, report what was touched.
    def client_update(self, client: "Client", round_: int, job: Job, global_weights: np.ndarray,
                      partial: Partial) -> None:
        full_job = Job(job.device, start=job.start)
        picked = self.choices(client.view, round_, full_job, client.steps_of(full_job), 4.0 * client.layout.size)
        vectors = self.front.vectors[picked]

        def plan_for_step(k: int):
            return dropout_plan(client.slicer, vectors[k], rng(self.cfg.seed, round_, job.device, 300 + k))

        client.train_per_batch(round_, job, global_weights, partial, plan_for_step, steps=len(picked))
