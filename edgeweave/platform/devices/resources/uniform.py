"""Uniform: each round a device's speed multiplier is redrawn between bounds."""

from __future__ import annotations

import numpy as np
from pydantic import Field, model_validator

from edgeweave.platform.devices import hashing
from edgeweave.platform.devices.resources.base import RESOURCES, ResourceModel
from edgeweave.platform.registry import Params


class UniformParams(Params):
    low: float = Field(0.5, gt=0)
    high: float = Field(1.0, gt=0)
    availability: float = Field(1.0, gt=0, le=1)  # chance a device is available in a round

    @model_validator(mode="after")
    def _ordered(self) -> "UniformParams":
        if self.low > self.high:
            raise ValueError(f"low ({self.low}) must be at most high ({self.high})")
        return self


@RESOURCES.register("uniform", UniformParams)
class Uniform(ResourceModel):
    """Multiplier ~ U(low, high) and availability ~ Bernoulli, independently per device and round."""

    def state(self, ids: np.ndarray, round_: int, t: float) -> tuple[np.ndarray, np.ndarray]:
        p = self.params
        u = hashing.uniform(self.seed, ids, round_, 10)
        available = hashing.uniform(self.seed, ids, round_, 11) < p.availability
        return available, p.low + (p.high - p.low) * u
