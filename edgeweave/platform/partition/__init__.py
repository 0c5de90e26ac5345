"""Partition policies: iid, dirichlet, shards, classes, pool, natural; each returns one index array per device.

A new policy is one file here and one line in `core/registries.py`. Imports only `core`.
"""

from typing import Optional

import numpy as np

from edgeweave.platform.core.seeding import SERVER, Stream, rng
from edgeweave.platform.partition.base import PARTITIONERS, Partition

# The rooms this one's modules may import; tests/unit/test_layout.py holds every import to it.
MAY_IMPORT = ("core",)


__all__ = ["PARTITIONERS", "Partition", "partition_data"]


def partition_data(
    choice, labels: np.ndarray, num_devices: int, seed: int, owners: Optional[np.ndarray] = None
) -> Partition:
    """Split the training samples between `num_devices` devices as the config's policy says; a policy
    that reads who made each sample (`natural`) gets `owners`."""
    policy = PARTITIONERS.build(choice.name, choice.params)
    g = rng(seed, -1, SERVER, Stream.PARTITION)
    if getattr(policy, "uses_owners", False):
        return Partition.from_shards(policy.split(labels, num_devices, g, owners))
    return Partition.from_shards(policy.split(labels, num_devices, g))
