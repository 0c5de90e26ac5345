"""A plugin: a model and a device resource model of your own, registered the way edgeweave's own are.

Name it in a config's `plugins:` (see config.yaml beside it) or pass `--plugin PATH`. It is
imported before the config is read, in the driver and in every worker, so the config can use
the names it registers. Copy it and change what you need.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np
from pydantic import Field

from edgeweave.api import MODELS, RESOURCES, ModelParams, Params, ResourceModel, hashing, scaled

if TYPE_CHECKING:
    from edgeweave.api import ConvNet


class WideShallowParams(ModelParams):
    filters: int = Field(48, ge=1)  # the one conv layer's filters (times `width`)
    hidden: int = Field(64, ge=1)  # the hidden layer's units (times `width`)


@MODELS.register("wide_shallow", WideShallowParams)
class WideShallow:
    """One wide 3x3 conv, a max-pool and one hidden layer: a model of the platform's shape (a conv stack
    then a linear head), so sub-models, FLOPs counting and every method work on it unchanged."""

    def __init__(self, params: WideShallowParams) -> None:
        self.params = params

    def build(self, input_shape: tuple[int, int, int], num_classes: int) -> "ConvNet":
        """The network for the data's input shape and classes (torch is imported here, not when the config
        is read)."""
        from edgeweave.api import ConvNet, conv_stack, mlp_head

        p = self.params
        features, channels, pixels = conv_stack([p.filters, "M"], input_shape[0], input_shape[1:], p.width, False)
        return ConvNet(features, mlp_head(channels * pixels, [scaled(p.hidden, p.width)], num_classes))


class BatteryParams(Params):
    capacity: float = Field(30.0, gt=0)  # virtual seconds of full-speed work on a full charge
    recharge: float = Field(60.0, gt=0)  # virtual seconds on the charger once empty
    low: float = Field(0.4, gt=0, le=1)  # speed multiplier in the last third of the charge (power saving)


@RESOURCES.register("battery", BatteryParams)
class Battery(ResourceModel):
    """Each device runs on a battery: full speed, then power saving for the last third of its charge,
    then offline while it recharges. Each device starts at its own point of the cycle (from the seed)."""

    params: BatteryParams

    def _cycle(self, ids: np.ndarray, t: float) -> tuple[np.ndarray, np.ndarray]:
        """Each device's current charge cycle as absolute virtual times: (its start <= t, its end > t).

        A cycle starts at k * cycle - offset. `state` and `next_change` both compare t with edges computed
        from it, never with a phase `(t + offset) % cycle`, which rounds apart from `t + ahead`: the state at
        an announced change must already be the next one, or a timeline skips or stalls.
        """
        p = self.params
        cycle = p.capacity + p.recharge
        offset = hashing.uniform(self.seed, ids, 0, 77) * cycle
        k = np.floor((t + offset) / cycle)
        for _ in range(2):  # the division rounds: settle k so that start <= t < end, exactly
            k = np.where(k * cycle - offset > t, k - 1, k)
            k = np.where((k + 1) * cycle - offset <= t, k + 1, k)
        return k * cycle - offset, (k + 1) * cycle - offset

    def state(self, ids: np.ndarray, round_: int, t: float) -> tuple[np.ndarray, np.ndarray]:
        p = self.params
        start, _ = self._cycle(ids, t)
        available = t < start + p.capacity
        speed = np.where(t < start + 2 * p.capacity / 3, 1.0, p.low)
        return available, speed

    def next_change(self, ids: np.ndarray, round_: int, t: float) -> np.ndarray:
        """The next of: two thirds of the charge, empty, recharged; so a device slows down, goes
        offline or comes back at the exact moment, also in the middle of a round."""
        p = self.params
        start, end = self._cycle(ids, t)
        saving, empty = start + 2 * p.capacity / 3, start + p.capacity
        return np.where(saving > t, saving, np.where(empty > t, empty, end))
