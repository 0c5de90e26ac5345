"""The shared part of every width method: a rate per device, a sub-model plan per rate.

A device's rate comes from its tier (`rates`), or with `rate_by: budget` from its budget now:
the largest of `allowed` whose round fits before the deadline at the device's current speed.
A width method is its rules' `channels`, registered with `width_method(Rules)`.
"""

from __future__ import annotations

from abc import abstractmethod
from typing import TYPE_CHECKING, Literal, Optional, cast

import numpy as np
from pydantic import Field, field_validator

from edgeweave.platform.core.errors import UserError
from edgeweave.platform.core.registry import Params
from edgeweave.platform.methods.base import DeviceHalf, Job, Method, RoundPlan, Rules, ServerHalf
from edgeweave.platform.methods.context import DeviceContext, Facts, ServerContext
from edgeweave.platform.train.aggregate import Partial
from edgeweave.platform.train.plans import Plan, nested, uniform_plan

if TYPE_CHECKING:
    from edgeweave.platform.config.schema import ExperimentConfig
    from edgeweave.platform.train.submodel import Slicer


class WidthParams(Params):
    # Width rate in (0, 1] per tier name: the share of each layer's channels its devices train (`small`: the least)
    rates: dict[str, float] = Field(default_factory=lambda: {"strong": 1.0, "medium": 0.5, "weak": 0.25})
    # tier: the tier's rate; budget: the largest of `allowed` whose whole work fits devices.deadline at round start
    rate_by: Literal["tier", "budget"] = "tier"
    # Rates in (0, 1] that rate_by: budget picks from; fjord draws each mini-batch's width from those up to the rate
    allowed: list[float] = Field(default_factory=lambda: [1.0, 0.75, 0.5, 0.25], min_length=1)
    label_split: bool = False  # train only the output rows of the classes the device holds
    scale_kept: bool = False  # scale a thinned layer's outputs by full over kept width in training (a scaler)

    @field_validator("rates")
    @classmethod
    def _rates_in_range(cls, v: dict[str, float]) -> dict[str, float]:
        for tier, r in v.items():
            if not 0 < r <= 1:
                raise ValueError(f"rate of tier {tier!r} is {r}; rates must be in (0, 1]")
        return v

    @field_validator("allowed")
    @classmethod
    def _allowed_in_range(cls, v: list[float]) -> list[float]:
        if not all(0 < r <= 1 for r in v):
            raise ValueError("allowed rates must be in (0, 1]")
        return sorted(set(v), reverse=True)


class ScaledWidthParams(WidthParams):
    """HeteroFL's and FedRolex's: thinned layers' outputs scaled by 1/rate in training (the paper's scaler)."""

    scale_kept: bool = True


class WidthRules(Rules):
    """Devices train a sub-model whose layers keep a rate of their channels; count-normalised mean."""

    params: WidthParams

    @classmethod
    def check(cls, params: Params, cfg: "ExperimentConfig") -> None:
        params = cast(WidthParams, params)  # the config's strategy.params, validated as this method's
        tiers = [t.name for t in cfg.devices.tiers]
        missing = [t for t in tiers if t not in params.rates]
        if missing:
            raise UserError(
                f"strategy.rates = {dict(params.rates)}: no rate for tier {missing[0]!r}; tiers: {', '.join(tiers)}"
            )
        if params.rate_by == "budget" and cfg.devices.deadline is None:
            raise UserError(
                "strategy.rate_by = 'budget': needs devices.deadline in seconds (a device's budget is the "
                "work that fits before it); set devices.deadline, or use rate_by: tier"
            )

    @abstractmethod
    def channels(self, layer: int, width: int, rate: float, round_: int, device: int) -> np.ndarray:
        """The output channels a device at `rate` keeps in `layer` this round."""

    def classes_of(self, facts: Facts, device: int) -> Optional[np.ndarray]:
        return facts.classes(device) if self.params.label_split else None

    def job_plan(self, facts: Facts, round_: int, job: Job) -> Plan:
        return uniform_plan(
            facts.slicer,
            lambda i, w: self.channels(i, w, job.rate, round_, job.device),
            self.classes_of(facts, job.device),
        )

    def cheapest_job(self, slicer: "Slicer", batch: int, tier: str) -> tuple[int, float]:
        """The narrowest sub-model a device of `tier` can be given: its tier's rate, or any allowed rate."""
        rates = [self.params.rates[tier]] + (self.params.allowed if self.params.rate_by == "budget" else [])
        plan = uniform_plan(slicer, lambda i, w: nested(w, min(rates)))
        return slicer.count(plan), float(slicer.flops(plan) * batch)


class WidthServer(ServerHalf):
    """Gives each device its tier's rate, or the largest allowed rate whose full work fits the deadline
    at the device's speed when the round starts."""

    rules: WidthRules

    def plan(self, round_: int, devices: np.ndarray, ctx: ServerContext) -> RoundPlan:
        p, deadline = self.rules.params, self.rules.cfg.devices.deadline
        jobs = []
        for d in devices.tolist():
            rate = p.rates[ctx.facts.view.tier_name(d)]
            if p.rate_by == "budget" and deadline is not None:
                fitting = [r for r in p.allowed if ctx.seconds(round_, Job(d, rate=r)) <= deadline]
                rate = fitting[0] if fitting else p.allowed[-1]
            jobs.append(Job(d, rate=rate))
        return RoundPlan(jobs)


class WidthDevice(DeviceHalf):
    """Trains the job's sub-model."""

    rules: WidthRules

    def train(self, ctx: DeviceContext, round_: int, job: Job, weights: np.ndarray, partial: Partial) -> None:
        ctx.train_plan(
            round_,
            job,
            weights,
            partial,
            self.rules.job_plan(ctx.facts, round_, job),
            scale_kept=self.rules.params.scale_kept,
        )


def width_method(rules: type[WidthRules]) -> Method:
    """A width method: its rules with the shared server and device halves."""
    return Method(rules, WidthServer, WidthDevice)
