import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from edgeweave.platform.core.errors import UserError
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


@settings(max_examples=30, deadline=None)
@given(
    per_class=st.integers(3, 40), classes=st.integers(2, 7), devices=st.integers(2, 9), elsewhere=st.floats(0.0, 0.95)
)
def test_elsewhere_deals_that_share_of_each_class_to_the_devices_not_listing_it(
    tmp_path_factory, per_class, classes, devices, elsewhere
):
    assume(devices >= classes)  # every class listed by some device
    y = labels(per_class, classes=classes)
    lists = [[c % classes] for c in range(devices)]
    part = split(tmp_path_factory.mktemp("p"), y, devices, policy="classes", classes=lists, elsewhere=elsewhere)
    assert_disjoint(part, len(y))
    assert len(part.indices) == len(y)  # every sample dealt, once
    for c in range(classes):
        listing = [d for d in range(devices) if lists[d][0] == c]
        others = [d for d in range(devices) if d not in listing]
        away = sum(int((y[part.shard(d)] == c).sum()) for d in others)
        assert away == (round(elsewhere * per_class) if others else 0)
        if others and away >= len(others):  # dealt evenly: no device short by more than one sample
            held = [int((y[part.shard(d)] == c).sum()) for d in others]
            assert max(held) - min(held) <= 1
