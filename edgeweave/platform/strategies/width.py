"""The shared half of every width method: a rate per device, a sub-model plan per rate.

A device's rate comes from its tier (`rates`), or with `rate_by: budget` from its budget now:
the largest of `allowed` whose round fits before the deadline at the device's current speed.
"""

from __future__ import annotations

from abc import abstractmethod
from typing import TYPE_CHECKING, Literal, Optional

import numpy as np
from pydantic import Field, field_validator

from edgeweave.platform.aggregate import Partial
from edgeweave.platform.errors import UserError
from edgeweave.platform.registry import Params
from edgeweave.platform.strategies.base import Job, Strategy
from edgeweave.platform.submodel import Plan, Slicer, nested, uniform_plan

if TYPE_CHECKING:
    from edgeweave.platform.client import Client
    from edgeweave.platform.server import Server


class WidthParams(Params):
    rates: dict[str, float] = Field(default_factory=lambda: {"strong": 1.0, "medium": 0.5, "weak": 0.25})
    rate_by: Literal["tier", "budget"] = "tier"
    allowed: list[float] = Field(default_factory=lambda: [1.0, 0.75, 0.5, 0.25], min_length=1)
    label_split: bool = False  # train only the output rows of the classes the device holds

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


class WidthStrategy(Strategy):
    """Devices train a sub-model whose layers keep a rate of their channels; count-normalised mean."""

    params: WidthParams

    @classmethod
    def check(cls, params: WidthParams, cfg) -> None:
        tiers = [t.name for t in cfg.devices.tiers]
        missing = [t for t in tiers if t not in params.rates]
        if missing:
            raise UserError(
                f"strategy.rates = {dict(params.rates)}: no rate for tier {missing[0]!r}; tiers: {', '.join(tiers)}")

    @abstractmethod
    def channels(self, layer: int, width: int, rate: float, round_: int, device: int) -> np.ndarray:
        """The output channels a device at `rate` keeps in `layer` this round."""

    def classes_of(self, holder, device: int) -> Optional[np.ndarray]:
        return holder.device_classes(device) if self.params.label_split else None

    def sub_plan(self, slicer: Slicer, holder, round_: int, job: Job) -> Plan:
        return uniform_plan(slicer, lambda i, w: self.channels(i, w, job.rate, round_, job.device),
                            self.classes_of(holder, job.device))

    def cheapest_job(self, slicer: Slicer, batch: int, tier: str) -> tuple[int, float]:
        """The narrowest sub-model a device of `tier` can be given: its tier's rate, or any allowed rate."""
        rates = [self.params.rates[tier]] + (self.params.allowed if self.params.rate_by == "budget" else [])
        plan = uniform_plan(slicer, lambda i, w: nested(w, min(rates)))
        return slicer.count(plan), float(slicer.flops(plan) * batch)

    # Server half.
    def plan(self, round_: int, devices: np.ndarray, server: "Server") -> list[Job]:
        p = self.params
        jobs = []
        for d in devices.tolist():
            rate = p.rates[server.tier_name(d)]
            if p.rate_by == "budget" and self.cfg.devices.deadline is not None:
                fitting = [r for r in p.allowed if server.job_seconds(round_, Job(d, rate=r)) <= self.cfg.devices.deadline]
                rate = fitting[0] if fitting else p.allowed[-1]
            jobs.append(Job(d, rate=rate))
        return jobs

    def job_plan(self, server: "Server", round_: int, job: Job) -> Plan:
        return self.sub_plan(server.slicer, server, round_, job)

    # Client half.
    def client_update(self, client: "Client", round_: int, job: Job, global_weights: np.ndarray,
                      partial: Partial) -> None:
        plan = self.sub_plan(client.slicer, client, round_, job)
        pos = client.slicer.positions(plan)
        model, layout, _ = client.submodels.get(plan)
        layout.load(model, global_weights[pos])
        result = client.train(round_, job, model=model, classes=plan.classes)
        partial.add(layout.flatten(model), weight=float(client.shard_size(job)), mask=pos)
        partial.record(job.device, result.samples, result.steps, result.loss)
