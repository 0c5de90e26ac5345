"""Partition policies: iid, dirichlet, shards, classes; each returns one index array per device."""

import numpy as np

from edgeweave.platform.partition.base import PARTITIONERS, Partition
from edgeweave.platform.plugins import import_all
from edgeweave.platform.seeding import SERVER, rng

import_all(__name__, __path__)

__all__ = ["PARTITIONERS", "Partition", "partition_data"]


def partition_data(choice, labels: np.ndarray, num_devices: int, seed: int) -> Partition:
    """Split the training labels between `num_devices` devices as the config's policy says."""
    policy = PARTITIONERS.build(choice.name, choice.params)
    return Partition.from_shards(policy.split(labels, num_devices, rng(seed, -1, SERVER, 3)))
