"""Markov: on/off and slow/fast two-state chains per device, stepping every `period` seconds.

A two-state chain with switch probabilities a (leave state 1) and b (leave state 0), a + b <= 1,
is the same as: each step, with probability a + b, redraw the state from the stationary law
(b/(a+b) for state 1), else keep it. So a device's state at step k is the draw made at the
last redraw step at or before k: found by looking back, with no state carried between calls.
Step 0 is always a redraw, so the chain starts stationary.
"""

from __future__ import annotations

import numpy as np
from pydantic import Field, model_validator

from edgeweave.platform.core.registry import Params
from edgeweave.platform.devices import hashing
from edgeweave.platform.devices.resources.base import RESOURCES, ResourceModel, next_boundary, slot_of


class MarkovParams(Params):
    period: float = Field(60.0, gt=0)  # seconds of virtual time per step
    p_off: float = Field(0.1, ge=0, le=1)  # on -> off per step
    p_on: float = Field(0.3, ge=0, le=1)  # off -> on per step
    p_slow: float = Field(0.2, ge=0, le=1)  # fast -> slow per step
    p_fast: float = Field(0.4, ge=0, le=1)  # slow -> fast per step
    slow: float = Field(0.5, gt=0)  # speed multiplier in the slow state

    @model_validator(mode="after")
    def _persistent(self) -> "MarkovParams":
        for a, b in (("p_off", "p_on"), ("p_slow", "p_fast")):
            total = getattr(self, a) + getattr(self, b)
            if total > 1 or total == 0:
                raise ValueError(f"{a} + {b} = {total:g} must be in (0, 1]")
        return self


def chain_state(seed: int, ids: np.ndarray, step: int, leave: float, enter: float, stream: int) -> np.ndarray:
    """State (True = the state left with probability `leave`) of each device's chain at `step`."""
    refresh = leave + enter
    share = enter / refresh  # stationary probability of the True state
    state = np.zeros(len(ids), bool)
    todo = np.arange(len(ids))
    for k in range(step, -1, -1):
        u = hashing.uniform(seed, ids[todo], k, stream)
        hit = (u < refresh) | (k == 0)
        state[todo[hit]] = hashing.uniform(seed, ids[todo[hit]], k, stream + 1) < share
        todo = todo[~hit]
        if len(todo) == 0:
            break
    return state


@RESOURCES.register("markov", MarkovParams)
class Markov(ResourceModel):
    """Availability flips on/off, speed flips fast/slow, both as Markov chains in virtual time."""

    params: MarkovParams

    def state(self, ids: np.ndarray, round_: int, t: float) -> tuple[np.ndarray, np.ndarray]:
        p = self.params
        step = slot_of(t, p.period)
        on = chain_state(self.seed, ids, step, p.p_off, p.p_on, 20)
        fast = chain_state(self.seed, ids, step, p.p_slow, p.p_fast, 30)
        return on, np.where(fast, 1.0, p.slow)

    def peak(self) -> float:
        return max(1.0, self.params.slow)

    def next_change(self, ids: np.ndarray, round_: int, t: float) -> np.ndarray:
        return np.full(len(ids), next_boundary(t, self.params.period))

    def earliest_change(self, ids: np.ndarray, round_: int, t: float) -> float:
        return next_boundary(t, self.params.period) if len(ids) else np.inf
