import numpy as np

from tests.unit.partition_checks import assert_disjoint, labels, split


def test_iid_uses_every_sample_once_in_equal_shares(tmp_path):
    y = labels()
    part = split(tmp_path, y, 7, policy="iid")
    assert_disjoint(part, len(y))
    assert len(part.indices) == len(y)
    assert part.sizes().max() - part.sizes().min() <= 1


def test_iid_repeats_for_a_seed(tmp_path):
    y = labels()
    a, b, c = (split(tmp_path, y, 5, seed=s, policy="iid") for s in (1, 1, 2))
    assert np.array_equal(a.indices, b.indices)
    assert not np.array_equal(a.indices, c.indices)
