import numpy as np
import pytest

from edgeweave.platform.core.errors import UserError
from tests.unit.partition_checks import assert_disjoint, labels, split


def test_shards_give_each_device_about_k_classes(tmp_path):
    y = labels(40)
    part = split(tmp_path, y, 10, policy="shards", shards_per_device=2)
    assert_disjoint(part, len(y))
    assert len(part.indices) == len(y)
    for d in range(10):
        assert len(np.unique(y[part.shard(d)])) <= 2


def test_shards_repeat_for_a_seed(tmp_path):
    y = labels(40)
    a, b = (split(tmp_path, y, 10, seed=9, policy="shards") for _ in range(2))
    assert np.array_equal(a.indices, b.indices)


def test_too_many_shards_is_a_clear_error(tmp_path):
    with pytest.raises(UserError, match="partition.shards_per_device = 5"):
        split(tmp_path, labels(1), 10, policy="shards", shards_per_device=5)
