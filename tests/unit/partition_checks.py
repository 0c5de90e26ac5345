"""Checks shared by the partitioner tests."""

import numpy as np

from edgeweave.platform.config.schema import build_config
from edgeweave.platform.partition import Partition, partition_data
from tests.helpers import tiny_raw


def split(tmp_path, labels, devices, seed=0, **policy) -> Partition:
    cfg = build_config({**tiny_raw(tmp_path), "partition": policy})
    return partition_data(cfg.partition, labels, devices, seed)


def assert_disjoint(part: Partition, n: int) -> None:
    """Every sample is used at most once and every index is valid."""
    assert len(np.unique(part.indices)) == len(part.indices)
    assert part.indices.min(initial=0) >= 0 and part.indices.max(initial=0) < n


def labels(n_per_class=30, classes=10):
    return np.repeat(np.arange(classes), n_per_class)
