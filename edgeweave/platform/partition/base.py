"""Partitions: which training samples each device holds, stored flat for zero-copy sharing."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import numpy as np

from edgeweave.platform.core.registries import PARTITIONERS as PARTITIONERS


@dataclass(frozen=True)
class Partition:
    """All devices' sample indices in one array; device d holds indices[offsets[d]:offsets[d+1]]."""

    indices: np.ndarray
    offsets: np.ndarray

    @classmethod
    def from_shards(cls, shards: Sequence[np.ndarray]) -> "Partition":
        sizes = np.array([len(s) for s in shards], dtype=np.int64)
        offsets = np.concatenate([[0], np.cumsum(sizes)]).astype(np.int64)
        flat = np.concatenate([np.asarray(s, dtype=np.int64) for s in shards]) if shards else np.zeros(0, np.int64)
        return cls(flat, offsets)

    @property
    def num_devices(self) -> int:
        return len(self.offsets) - 1

    def shard(self, device: int) -> np.ndarray:
        return self.indices[self.offsets[device] : self.offsets[device + 1]]

    def sizes(self) -> np.ndarray:
        return np.diff(self.offsets)

    def classes(self, device: int, labels: np.ndarray) -> np.ndarray:
        """The classes among a device's samples."""
        return np.unique(labels[self.shard(device)])
