"""Federated Dropout (Caldas et al., 2018): each device trains a random subset of every layer's channels."""

from __future__ import annotations

import numpy as np

from edgeweave.platform.core.seeding import Stream, rng
from edgeweave.platform.methods.base import STRATEGIES
from edgeweave.platform.methods.width import WidthParams, WidthRules, width_method
from edgeweave.platform.train.plans import random_subset


class FederatedDropoutRules(WidthRules):
    """A fresh random sub-model per device per round, drawn from (seed, round, device, layer).

    The paper's models have no batch norm; with one, its statistics are static (recomputed through the
    full model), so a random sub-model's never reach the global model."""

    paper_norm = "static"

    def channels(self, layer: int, width: int, rate: float, round_: int, device: int) -> np.ndarray:
        return random_subset(width, rate, rng(self.cfg.seed, round_, device, Stream.FD_CHANNELS, layer))


STRATEGIES.add("fd", width_method(FederatedDropoutRules), WidthParams)
