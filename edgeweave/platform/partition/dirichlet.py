"""Dirichlet label skew: each class is spread over devices by proportions drawn from Dir(alpha)."""

from __future__ import annotations

import numpy as np
from pydantic import Field

from edgeweave.platform.core.errors import UserError
from edgeweave.platform.core.registry import Params
from edgeweave.platform.partition.base import PARTITIONERS


class DirichletParams(Params):
    alpha: float = Field(0.5, gt=0)  # concentration of each class's shares over devices: smaller is more skewed
    min_samples: int = Field(1, ge=0)  # the least samples a device may hold; a split with fewer is drawn again
    max_tries: int = Field(100, ge=1)  # draws of the split before giving up with an error


@PARTITIONERS.register("dirichlet", DirichletParams)
class Dirichlet:
    """Smaller alpha gives each device fewer classes; redrawn until each has min_samples."""

    def __init__(self, params: DirichletParams) -> None:
        self.params = params

    def _draw(self, labels: np.ndarray, n: int, g: np.random.Generator) -> list[np.ndarray]:
        parts: list[list[np.ndarray]] = [[] for _ in range(n)]
        for c in np.unique(labels):
            idx = g.permutation(np.flatnonzero(labels == c))
            share = g.dirichlet(np.full(n, self.params.alpha))
            cuts = (np.cumsum(share)[:-1] * len(idx)).astype(np.int64)
            for d, piece in enumerate(np.split(idx, cuts)):
                parts[d].append(piece)
        return [np.sort(np.concatenate(p)) for p in parts]

    def split(self, labels: np.ndarray, num_devices: int, g: np.random.Generator) -> list[np.ndarray]:
        p = self.params
        if p.min_samples * num_devices > len(labels):
            raise UserError(
                f"partition.min_samples = {p.min_samples}: {num_devices} devices need "
                f"{p.min_samples * num_devices} samples but the data has {len(labels)}"
            )
        for _ in range(p.max_tries):
            shards = self._draw(labels, num_devices, g)
            if min(len(s) for s in shards) >= p.min_samples:
                return shards
        raise UserError(
            f"partition.alpha = {p.alpha}: no split in {p.max_tries} tries gave every device "
            f"at least min_samples = {p.min_samples}; raise alpha or lower min_samples"
        )
