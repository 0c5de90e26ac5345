"""The model zoo's registry and its common parameters (no torch: a config is validated without it).

The layers the zoo's networks are built from are in `layers`; a model file imports them in `build`."""

from __future__ import annotations

from pydantic import Field

from edgeweave.platform.registry import Params, Registry

MODELS: Registry = Registry("model")


class ModelParams(Params):
    width: float = Field(1.0, gt=0)  # multiplies every hidden layer's channels or units


def scaled(channels: int, width: float) -> int:
    return max(1, int(round(channels * width)))
