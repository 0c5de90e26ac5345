"""Resource models: for any device ids at a round and virtual time, availability and speed multiplier."""

from __future__ import annotations

from abc import ABC, abstractmethod

import numpy as np

from edgeweave.platform.registry import Params, Registry

RESOURCES: Registry = Registry("resource model")


class ResourceModel(ABC):
    """A pure function of (seed, device id, round, virtual time): same answer on every worker."""

    def __init__(self, params: Params, seed: int) -> None:
        self.params = params
        self.seed = seed

    @abstractmethod
    def state(self, ids: np.ndarray, round_: int, t: float) -> tuple[np.ndarray, np.ndarray]:
        """(available: bool array, speed multiplier: float array) for `ids` at round and time t."""

    def next_change(self, ids: np.ndarray, round_: int, t: float) -> np.ndarray:
        """The earliest virtual time after t at which each device's state may change within the round.

        A device's timeline holds `state` constant until then. The default (inf) keeps a device's
        state for its whole round; models whose state moves with time override it.
        """
        return np.full(len(ids), np.inf)


def next_boundary(t: float, period: float) -> float:
    """The first multiple of `period` strictly after t."""
    k = np.floor(t / period) + 1
    nxt = k * period
    return float(nxt if nxt > t else (k + 1) * period)
