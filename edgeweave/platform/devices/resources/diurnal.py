"""Diurnal: availability and speed follow a daily cycle, each device with its own phase."""

from __future__ import annotations

import numpy as np
from pydantic import Field

from edgeweave.platform.core.registry import Params
from edgeweave.platform.devices import hashing
from edgeweave.platform.devices.resources.base import RESOURCES, ResourceModel, next_boundary, slot_of, slot_start


class DiurnalParams(Params):
    period: float = Field(86400.0, gt=0)  # one day of virtual time
    mean: float = Field(0.6, ge=0, le=1)  # mean chance of being available
    amplitude: float = Field(0.3, ge=0, le=1)  # swing of the chance of being available around mean (clipped to [0, 1])
    slow: float = Field(0.5, gt=0, le=1)  # speed multiplier at the busiest hour
    slot: float = Field(600.0, gt=0)  # availability is redrawn, and speed moves, every slot seconds


@RESOURCES.register("diurnal", DiurnalParams)
class Diurnal(ResourceModel):
    """p_available(t) = mean + amplitude * cos(2 pi (t / period + phase)); slower when less idle."""

    params: DiurnalParams

    def cycle(self, ids: np.ndarray, t) -> np.ndarray:
        """cos(2 pi (t / period + phase)) for each device: +1 at its idlest hour, -1 at its busiest."""
        phase = hashing.uniform(self.seed, ids, 0, 40)
        return np.cos(2 * np.pi * (np.asarray(t) / self.params.period + phase))

    def state(self, ids: np.ndarray, round_: int, t: float) -> tuple[np.ndarray, np.ndarray]:
        p = self.params
        k = slot_of(t, p.slot)
        c = self.cycle(ids, slot_start(k, p.slot))  # held for a slot, so a device's timeline has steps
        chance = np.clip(p.mean + p.amplitude * c, 0.0, 1.0)
        available = hashing.uniform(self.seed, ids, k, 41) < chance
        speed = p.slow + (1.0 - p.slow) * (c + 1.0) / 2.0
        return available, speed

    def next_change(self, ids: np.ndarray, round_: int, t: float) -> np.ndarray:
        return np.full(len(ids), next_boundary(t, self.params.slot))

    def earliest_change(self, ids: np.ndarray, round_: int, t: float) -> float:
        return next_boundary(t, self.params.slot) if len(ids) else np.inf
