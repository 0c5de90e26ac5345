"""FedRolex (Alam et al., NeurIPS 2022): a window over each layer's channels that rolls every round."""

from __future__ import annotations

import numpy as np
from pydantic import Field

from edgeweave.platform.methods.base import STRATEGIES
from edgeweave.platform.methods.width import ScaledWidthParams, WidthRules, width_method
from edgeweave.platform.train.plans import rolling


class FedRolexParams(ScaledWidthParams):
    step: int = Field(1, ge=1)  # channels the window moves per round


class FedRolexRules(WidthRules):
    """In round t a device at rate r keeps channels t*step .. t*step + ceil(r x width) - 1, wrapping."""

    params: FedRolexParams
    paper_norm = "static"  # HeteroFL's static batch norm and scaler: FedRolex builds on its code

    def channels(self, layer: int, width: int, rate: float, round_: int, device: int) -> np.ndarray:
        return rolling(width, rate, (round_ * self.params.step) % width)


STRATEGIES.add("fedrolex", width_method(FedRolexRules), FedRolexParams)
