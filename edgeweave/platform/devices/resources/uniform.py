"""Uniform: a device's speed multiplier and availability are redrawn each round, or every `period` seconds."""

from __future__ import annotations

from typing import Optional

import numpy as np
from pydantic import Field, model_validator

from edgeweave.platform.core.registry import Params
from edgeweave.platform.devices import hashing
from edgeweave.platform.devices.resources.base import RESOURCES, ResourceModel, next_boundary, slot_of


class UniformParams(Params):
    low: float = Field(0.5, gt=0)  # the least speed multiplier drawn
    high: float = Field(1.0, gt=0)  # the largest speed multiplier drawn (the deadline check's peak)
    availability: float = Field(1.0, gt=0, le=1)  # chance a device is available in a round (or period)
    period: Optional[float] = Field(None, gt=0)  # null: redrawn each round; else every `period` virtual seconds

    @model_validator(mode="after")
    def _ordered(self) -> "UniformParams":
        if self.low > self.high:
            raise ValueError(f"low ({self.low}) must be at most high ({self.high})")
        return self


@RESOURCES.register("uniform", UniformParams)
class Uniform(ResourceModel):
    """Multiplier ~ U(low, high) and availability ~ Bernoulli, independently per device and round
    (or per `period` of virtual time: then they change while a device trains)."""

    params: UniformParams

    def _draw(self, round_: int, t: float) -> int:
        return round_ if self.params.period is None else slot_of(t, self.params.period)

    def state(self, ids: np.ndarray, round_: int, t: float) -> tuple[np.ndarray, np.ndarray]:
        p = self.params
        k = self._draw(round_, t)
        u = hashing.uniform(self.seed, ids, k, 10)
        available = hashing.uniform(self.seed, ids, k, 11) < p.availability
        return available, p.low + (p.high - p.low) * u

    def peak(self) -> float:
        return self.params.high

    def next_change(self, ids: np.ndarray, round_: int, t: float) -> np.ndarray:
        if self.params.period is None:
            return super().next_change(ids, round_, t)
        return np.full(len(ids), next_boundary(t, self.params.period))

    def earliest_change(self, ids: np.ndarray, round_: int, t: float) -> float:
        if self.params.period is None or not len(ids):
            return np.inf
        return next_boundary(t, self.params.period)
