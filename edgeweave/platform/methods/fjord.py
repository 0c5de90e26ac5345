"""FjORD (Horvath et al., NeurIPS 2021): ordered dropout, a nested width drawn at every mini-batch.

A device whose maximum rate is p_max trains, at each mini-batch, the left-most p x width
channels of every layer for a p drawn uniformly from the allowed rates up to p_max.
"""

from __future__ import annotations

from typing import Callable

import numpy as np

from edgeweave.platform.core.seeding import Stream, rng
from edgeweave.platform.methods.base import STRATEGIES, DeviceHalf, Job, Method
from edgeweave.platform.methods.context import DeviceContext, Facts
from edgeweave.platform.methods.width import WidthParams, WidthRules, WidthServer
from edgeweave.platform.train.aggregate import Partial
from edgeweave.platform.train.plans import Plan, nested, uniform_plan


class FjORDRules(WidthRules):
    """Per mini-batch ordered dropout up to the device's p_max (its tier's or budget's rate); batch-norm
    statistics per width, the full model's from full-width mini-batches only."""

    paper_norm = "per_width"

    def channels(self, layer: int, width: int, rate: float, round_: int, device: int) -> np.ndarray:
        return nested(width, rate)

    def step_rates(self, round_: int, job: Job, steps: int) -> np.ndarray:
        """The width of each mini-batch, drawn from (seed, round, device)."""
        options = np.array([r for r in self.params.allowed if r <= job.rate] or [min(self.params.allowed)])
        g = rng(self.cfg.seed, round_, job.device, Stream.FJORD_WIDTHS)
        return options[g.integers(0, len(options), size=steps)]

    def step_plans(self, facts: Facts, round_: int, job: Job, steps: int) -> list[Plan]:
        """Each mini-batch's sub-model (one plan object per width, shared by its mini-batches)."""
        rates = self.step_rates(round_, job, steps)
        classes = self.classes_of(facts, job.device)

        def pick(r: float) -> Callable[[int, int], np.ndarray]:
            return lambda i, w: nested(w, r)

        plans = {r: uniform_plan(facts.slicer, pick(r), classes) for r in map(float, np.unique(rates))}
        return [plans[float(r)] for r in rates]

    def sample_flops(self, facts: Facts, round_: int, job: Job, steps: int) -> np.ndarray:
        """Each mini-batch costs its own width's FLOPs, so a deadline cuts after the steps that fit."""
        return np.array([facts.slicer.flops(p) for p in self.step_plans(facts, round_, job, steps)], np.float64)


class FjORDDevice(DeviceHalf):
    """Trains each mini-batch at its drawn width."""

    rules: FjORDRules

    def train(self, ctx: DeviceContext, round_: int, job: Job, weights: np.ndarray, partial: Partial) -> None:
        plans = self.rules.step_plans(ctx.facts, round_, job, ctx.facts.steps(job))
        ctx.train_steps(round_, job, weights, partial, plans.__getitem__, scale_kept=self.rules.params.scale_kept)


STRATEGIES.add("fjord", Method(FjORDRules, WidthServer, FjORDDevice), WidthParams)
