import numpy as np
import pytest

from edgeweave.platform.core.errors import UserError
from edgeweave.platform.devices.tiers import DEFAULT_TIERS, assign_tiers


def test_default_tiers_are_strong_medium_weak():
    assert [(t.name, t.speed) for t in DEFAULT_TIERS] == [("strong", 1.0), ("medium", 0.66), ("weak", 0.33)]


def test_shares_are_exact_and_shuffled_from_the_seed():
    tiers = assign_tiers(1000, [0.5, 0.3, 0.2], seed=1)
    assert tiers.dtype == np.int8
    assert list(np.bincount(tiers)) == [500, 300, 200]
    assert np.array_equal(tiers, assign_tiers(1000, [0.5, 0.3, 0.2], seed=1))
    assert not np.array_equal(tiers, assign_tiers(1000, [0.5, 0.3, 0.2], seed=2))
    assert list(np.bincount(assign_tiers(10, [1, 1, 1], seed=0))) == [4, 3, 3]


def test_deadline_is_required_to_drop_or_cut_work(make_config):
    with pytest.raises(UserError, match="devices.stragglers = 'drop': needs devices.deadline"):
        make_config(devices={"stragglers": "drop"})
    assert make_config(devices={"stragglers": "partial", "deadline": 5}).devices.deadline == 5
