"""IID: a random permutation cut into near-equal shards."""

from __future__ import annotations

import numpy as np

from edgeweave.platform.core.registry import Params
from edgeweave.platform.partition.base import PARTITIONERS


@PARTITIONERS.register("iid")
class IID:
    """Every device gets an equal, uniformly random share of the samples."""

    def __init__(self, params: Params) -> None:
        self.params = params

    def split(self, labels: np.ndarray, num_devices: int, g: np.random.Generator) -> list[np.ndarray]:
        return [np.sort(s) for s in np.array_split(g.permutation(len(labels)), num_devices)]
