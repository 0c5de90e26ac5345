"""Resource models: for any device ids at a round and virtual time, availability and speed multiplier."""

from __future__ import annotations

from abc import ABC, abstractmethod

import numpy as np

from edgeweave.platform.core.registries import RESOURCES as RESOURCES
from edgeweave.platform.core.registry import Params


class ResourceModel(ABC):
    """A pure function of (seed, device id, round, virtual time): same answer on every worker."""

    def __init__(self, params: Params, seed: int) -> None:
        self.params = params
        self.seed = seed

    @abstractmethod
    def state(self, ids: np.ndarray, round_: int, t: float) -> tuple[np.ndarray, np.ndarray]:
        """(available: bool array, speed multiplier: float array) for `ids` at round and time t."""

    def earliest_change(self, ids: np.ndarray, round_: int, t: float) -> float:
        """The first time after t at which any of `ids` may change state (inf if none may, or no ids): what an
        async server waits for when a slot is free. Models override it to answer without a pass per device."""
        return float(self.next_change(ids, round_, t).min()) if len(ids) else np.inf

    def peak(self) -> float:
        """The largest speed multiplier any device can have: the deadline check's best case. Models whose
        multipliers can exceed 1 override it."""
        return 1.0

    def next_change(self, ids: np.ndarray, round_: int, t: float) -> np.ndarray:
        """The earliest virtual time after t at which each device's state may change within the round.

        A device's timeline holds `state` constant until then. The default (inf) keeps a device's
        state for its whole round; models whose state moves with time override it.
        """
        return np.full(len(ids), np.inf)


def slot_start(k: int, period: float) -> float:
    """Where slot k of a model that changes every `period` seconds begins: k * period, as one float product."""
    return float(k * period)


def slot_of(t: float, period: float) -> int:
    """The slot holding t: the k with slot_start(k) <= t < slot_start(k + 1), exactly.

    `t // period` alone can disagree with `slot_start` by one in the last place (29.7 // 0.3 is 98,
    yet 99 * 0.3 == 29.7), and a model whose state reads one while its next change reads the other
    skips a slot or stalls a timeline. Both are derived from the same products here.
    """
    k = int(np.floor(t / period))
    while slot_start(k + 1, period) <= t:
        k += 1
    while slot_start(k, period) > t:
        k -= 1
    return k


def next_boundary(t: float, period: float) -> float:
    """The start of the slot after the one holding t: strictly after t, and `slot_of` of it is that slot."""
    return slot_start(slot_of(t, period) + 1, period)
