import pytest

from edgeweave.platform.errors import UserError
from tests.unit.partition_checks import assert_disjoint, labels, split


def test_devices_hold_exactly_their_classes_and_share_fairly(tmp_path):
    y = labels(30, classes=4)
    part = split(tmp_path, y, 3, policy="classes", classes=[[0, 1], [1, 2], [3]])
    assert_disjoint(part, len(y))
    assert set(y[part.shard(0)]) == {0, 1}
    assert set(y[part.shard(1)]) == {1, 2}
    assert set(y[part.shard(2)]) == {3}
    assert (y[part.shard(0)] == 1).sum() == 15 and (y[part.shard(1)] == 1).sum() == 15


def test_class_lists_cycle_over_devices(tmp_path):
    y = labels(30, classes=2)
    part = split(tmp_path, y, 4, policy="classes", classes=[[0], [1]])
    assert [set(y[part.shard(d)]) for d in range(4)] == [{0}, {1}, {0}, {1}]


def test_unknown_class_is_a_clear_error(tmp_path):
    with pytest.raises(UserError, match=r"partition.classes = \[0, 12\]: class 12 is not in the data"):
        split(tmp_path, labels(5), 2, policy="classes", classes=[[0, 12], [1]])
