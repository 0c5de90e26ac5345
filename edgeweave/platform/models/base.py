"""The model zoo's registry and its common parameters (no torch: a config is validated without it).

The layers the zoo's networks are built from are in `layers`; a model file imports them in `build`."""

from __future__ import annotations

from typing import Optional

from pydantic import Field

from edgeweave.platform.core.registries import MODELS as MODELS
from edgeweave.platform.core.registry import Params
from edgeweave.platform.models.norm import Norm


class ModelParams(Params):
    width: float = Field(1.0, gt=0)  # multiplies every hidden layer's channels or units
    norm: Optional[Norm] = None  # batch norm's policy (platform/models/norm.py); null: the method's paper's
    norm_samples: int = Field(2000, ge=1)  # training samples `static` recomputes the statistics from

    def has_batch_norm(self) -> bool:
        """Whether a model that normalises builds its batch-norm layers (`norm: none` removes them)."""
        return self.norm != "none"


def scaled(channels: int, width: float) -> int:
    return max(1, int(round(channels * width)))
