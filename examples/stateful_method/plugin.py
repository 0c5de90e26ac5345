"""A plugin: a method whose devices keep state between rounds, in one file.

`carry` is FedAvg whose devices each carry a momentum of their own updates from one round they take part
in to the next: a device trains from the global weights as FedAvg's does, then sends the global weights
plus m = beta * m_kept + (its update), and keeps m for its next round (zeros before its first). Its
state lives in the driver's device-state store, so it survives a lost worker and a resumed run, and it
reaches the device only in the rounds the device is sampled. The server half counts the devices that
hold some state, as a checkpoint must keep it. Copy it and change what you need.

    edgeweave run examples/stateful_method/config.yaml
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np
from pydantic import Field

from edgeweave.api import STRATEGIES, DeviceContext, DeviceHalf, Method, Params, Partial, Rules, ServerHalf

if TYPE_CHECKING:
    from edgeweave.api import Job, Slicer

MOMENTUM = "momentum"


class CarryParams(Params):
    beta: float = Field(0.5, ge=0, lt=1)  # how much of its last momentum a device carries into its update


class CarryRules(Rules):
    """The full model, as FedAvg; each device keeps one array of the model's size between its rounds."""

    params: CarryParams

    def device_arrays(self, slicer: "Slicer") -> dict[str, int]:
        return {MOMENTUM: slicer.layout.size}


class CarryServer(ServerHalf):
    """FedAvg's plan; keeps count of the devices that hold a momentum (its part of a checkpoint)."""

    def __init__(self, rules: Rules) -> None:
        super().__init__(rules)
        self.holders = 0

    def absorb(self, round_: int, changes: dict[int, tuple[dict, dict]]) -> None:
        self.holders += sum(1 for before, _ in changes.values() if not before)  # first time a device kept one

    def state(self) -> dict[str, np.ndarray]:
        return {"holders": np.array([self.holders], np.int64)}

    def load_state(self, arrays: dict[str, np.ndarray]) -> None:
        self.holders = int(arrays["holders"][0])


class CarryDevice(DeviceHalf):
    """Trains the full model into a partial of its own, then sends the global weights plus its momentum."""

    rules: CarryRules
    _learned: np.ndarray | None = None

    def learned(self, ctx: DeviceContext) -> np.ndarray:
        """Which of the flat weights are parameters (the rest, batch-norm statistics, carry no momentum); found
        once per worker, not once per device."""
        if self._learned is None:
            slicer = ctx.facts.slicer
            self._learned = slicer.layout.learned(slicer.model)
        return self._learned

    def train(self, ctx: DeviceContext, round_: int, job: "Job", weights: np.ndarray, partial: Partial) -> None:
        mine = Partial.zeros(len(weights))
        ctx.train_full(round_, job, weights, mine)
        update = mine.sums / mine.counts - weights
        momentum = self.rules.params.beta * ctx.state(job.device).get(MOMENTUM, 0.0) + update
        buffers = ~self.learned(ctx)
        momentum[buffers] = update[buffers]  # batch-norm statistics carry no momentum: sent as trained
        partial.add((weights + momentum).astype(np.float32), weight=float(ctx.facts.samples(job)))
        partial.records.extend(mine.records)
        partial.keep(job.device, {MOMENTUM: momentum})


STRATEGIES.add("carry", Method(CarryRules, CarryServer, CarryDevice), CarryParams)
