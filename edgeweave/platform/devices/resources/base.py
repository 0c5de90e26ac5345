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
