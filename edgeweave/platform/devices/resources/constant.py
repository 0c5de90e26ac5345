"""Constant: always available, a fixed speed multiplier."""

from __future__ import annotations

import numpy as np
from pydantic import Field

from edgeweave.platform.core.registry import Params
from edgeweave.platform.devices.resources.base import RESOURCES, ResourceModel


class ConstantParams(Params):
    multiplier: float = Field(1.0, gt=0)  # every device's speed multiplier, at all times (times its tier's speed)


@RESOURCES.register("constant", ConstantParams)
class Constant(ResourceModel):
    """Devices differ only by tier; nothing changes over time."""

    params: ConstantParams

    def state(self, ids: np.ndarray, round_: int, t: float) -> tuple[np.ndarray, np.ndarray]:
        return np.ones(len(ids), bool), np.full(len(ids), self.params.multiplier)

    def peak(self) -> float:
        return self.params.multiplier
