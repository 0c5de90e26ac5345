"""Pool: every device draws a fixed number of samples from one shared pool, overlapping others.

For populations larger than the data set (100,000 devices of 50 CIFAR-shaped samples would be
5 million images): a device's samples are a random window of one permutation of the pool, so
no device holds a sample twice, devices overlap, and the cost is one vectorised draw.
"""

from __future__ import annotations

import numpy as np
from pydantic import Field

from edgeweave.platform.core.registry import Params
from edgeweave.platform.partition.base import PARTITIONERS


class PoolParams(Params):
    samples_per_device: int = Field(50, ge=1)  # distinct samples each device draws (at most the data's size)


@PARTITIONERS.register("pool", PoolParams)
class Pool:
    """Each device gets `samples_per_device` distinct samples, drawn from the whole pool."""

    def __init__(self, params: PoolParams) -> None:
        self.params = params

    def split(self, labels: np.ndarray, num_devices: int, g: np.random.Generator) -> list[np.ndarray]:
        n, k = len(labels), min(self.params.samples_per_device, len(labels))
        order = g.permutation(n)
        starts = g.integers(0, n, size=num_devices)
        windows = np.sort(order[(starts[:, None] + np.arange(k)[None, :]) % n], axis=1)
        return list(windows)
