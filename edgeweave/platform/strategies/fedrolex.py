"""FedRolex (Alam et al., NeurIPS 2022): a window over each layer's channels that rolls every round."""

from __future__ import annotations

import numpy as np
from pydantic import Field

from edgeweave.platform.strategies.base import STRATEGIES
from edgeweave.platform.strategies.width import WidthParams, WidthStrategy
from edgeweave.platform.submodel import rolling


class FedRolexParams(WidthParams):
    step: int = Field(1, ge=1)  # channels the window moves per round


@STRATEGIES.register("fedrolex", FedRolexParams)
class FedRolex(WidthStrategy):
    """In round t a device at rate r keeps channels t*step .. t*step + ceil(r x width) - 1, wrapping."""

    def channels(self, layer: int, width: int, rate: float, round_: int, device: int) -> np.ndarray:
        return rolling(width, rate, (round_ * self.params.step) % width)
