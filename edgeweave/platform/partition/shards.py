"""Pathological non-IID: samples sorted by label, cut into shards, k shards per device."""

from __future__ import annotations

import numpy as np
from pydantic import Field

from edgeweave.platform.core.errors import UserError
from edgeweave.platform.core.registry import Params
from edgeweave.platform.partition.base import PARTITIONERS


class ShardsParams(Params):
    shards_per_device: int = Field(2, ge=1)  # label-sorted shards per device, about as many classes; McMahan et al.: 2


@PARTITIONERS.register("shards", ShardsParams)
class Shards:
    """Each device gets k label-sorted shards, so it holds about k classes (McMahan et al. 2017)."""

    def __init__(self, params: ShardsParams) -> None:
        self.params = params

    def split(self, labels: np.ndarray, num_devices: int, g: np.random.Generator) -> list[np.ndarray]:
        k = self.params.shards_per_device
        total = num_devices * k
        if total > len(labels):
            raise UserError(
                f"partition.shards_per_device = {k}: {num_devices} devices need {total} shards "
                f"but the data has only {len(labels)} samples"
            )
        order = np.lexsort((g.permutation(len(labels)), labels))
        pieces = np.array_split(order, total)
        owner = g.permutation(total)
        return [np.sort(np.concatenate([pieces[j] for j in owner[d * k : (d + 1) * k]])) for d in range(num_devices)]
