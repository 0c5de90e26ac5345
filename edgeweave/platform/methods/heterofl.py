"""HeteroFL (Diao et al., ICLR 2021): nested sub-models, the left-most channels, a fixed rate per tier."""

from __future__ import annotations

import numpy as np

from edgeweave.platform.methods.base import STRATEGIES
from edgeweave.platform.methods.width import ScaledWidthParams, WidthRules, width_method
from edgeweave.platform.train.plans import nested


class HeteroFLRules(WidthRules):
    """Every device at rate r trains the first ceil(r x width) channels of each layer, with static batch
    norm and its outputs scaled by 1/r (the paper's sBN and scaler)."""

    paper_norm = "static"

    def channels(self, layer: int, width: int, rate: float, round_: int, device: int) -> np.ndarray:
        return nested(width, rate)


STRATEGIES.add("heterofl", width_method(HeteroFLRules), ScaledWidthParams)
