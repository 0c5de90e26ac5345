"""HeteroFL (Diao et al., ICLR 2021): nested sub-models, the left-most channels, a fixed rate per tier."""

from __future__ import annotations

import numpy as np

from edgeweave.platform.strategies.base import STRATEGIES
from edgeweave.platform.strategies.width import WidthParams, WidthStrategy
from edgeweave.platform.submodel import nested


@STRATEGIES.register("heterofl", WidthParams)
class HeteroFL(WidthStrategy):
    """Every device at rate r trains the first ceil(r x width) channels of each layer."""

    def channels(self, layer: int, width: int, rate: float, round_: int, device: int) -> np.ndarray:
        return nested(width, rate)
