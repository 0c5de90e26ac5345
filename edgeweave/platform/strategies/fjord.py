"""FjORD (Horvath et al., NeurIPS 2021): ordered dropout, a nested width drawn at every mini-batch.

A device whose maximum rate is p_max trains, at each mini-batch, the left-most p x width
channels of every layer for a p drawn uniformly from the allowed rates up to p_max.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from edgeweave.platform.aggregate import Partial
from edgeweave.platform.seeding import rng
from edgeweave.platform.strategies.base import STRATEGIES, Job
from edgeweave.platform.strategies.width import WidthParams, WidthStrategy
from edgeweave.platform.submodel import Plan, nested, uniform_plan

if TYPE_CHECKING:
    from edgeweave.platform.client import Client
    from edgeweave.platform.server import Server


@STRATEGIES.register("fjord", WidthParams)
class FjORD(WidthStrategy):
    """Per mini-batch ordered dropout up to the device's p_max (its tier's or budget's rate)."""

    def channels(self, layer: int, width: int, rate: float, round_: int, device: int) -> np.ndarray:
        return nested(width, rate)

    def step_rates(self, round_: int, job: Job, steps: int) -> np.ndarray:
        """The width of each mini-batch, drawn from (seed, round, device)."""
        options = np.array([r for r in self.params.allowed if r <= job.rate] or [min(self.params.allowed)])
        return options[rng(self.cfg.seed, round_, job.device, 200).integers(0, len(options), size=steps)]

    def step_flops(self, server: "Server", round_: int, job: Job, steps: int) -> np.ndarray:
        """Each mini-batch costs its own width's FLOPs, so a deadline cuts after the steps that fit."""
        rates = self.step_rates(round_, job, steps)
        flops = {r: server.plan_flops(self.sub_plan(server.slicer, server, round_, Job(job.device, rate=float(r))))
                 for r in np.unique(rates)}
        return np.array([flops[r] for r in rates], np.float64)

    def client_update(self, client: "Client", round_: int, job: Job, global_weights: np.ndarray,
                      partial: Partial) -> None:
        rates = self.step_rates(round_, job, client.steps_of(job))
        plans: dict[float, Plan] = {}

        def plan_for_step(k: int) -> Plan:
            r = float(rates[k])
            if r not in plans:
                plans[r] = uniform_plan(client.slicer, lambda i, w: nested(w, r), self.classes_of(client, job.device))
            return plans[r]

        client.train_per_batch(round_, job, global_weights, partial, plan_for_step)
