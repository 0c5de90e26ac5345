import numpy as np
import pytest

from edgeweave.platform.core.errors import UserError
from tests.unit.partition_checks import assert_disjoint, labels, split


def mean_classes_held(part, y, share=0.05):
    """Average number of classes making up more than `share` of a device's samples."""
    counts = []
    for d in range(part.num_devices):
        hist = np.bincount(y[part.shard(d)], minlength=10) / max(len(part.shard(d)), 1)
        counts.append((hist > share).sum())
    return float(np.mean(counts))


def test_dirichlet_skew_grows_as_alpha_shrinks(tmp_path):
    y = labels(100)
    held = [mean_classes_held(split(tmp_path, y, 10, policy="dirichlet", alpha=a), y) for a in (100.0, 1.0, 0.05)]
    assert held[0] > held[1] > held[2]
    assert held[0] >= 9 and held[2] <= 3


def test_dirichlet_disjoint_minimum_and_repeatable(tmp_path):
    y = labels(50)
    a = split(tmp_path, y, 10, seed=4, policy="dirichlet", alpha=0.3, min_samples=5)
    b = split(tmp_path, y, 10, seed=4, policy="dirichlet", alpha=0.3, min_samples=5)
    assert_disjoint(a, len(y))
    assert len(a.indices) == len(y)
    assert a.sizes().min() >= 5
    assert np.array_equal(a.indices, b.indices) and np.array_equal(a.offsets, b.offsets)


def test_dirichlet_impossible_minimum_is_a_clear_error(tmp_path):
    with pytest.raises(UserError, match=r"partition.min_samples = 50: 10 devices need 500 samples"):
        split(tmp_path, labels(10), 10, policy="dirichlet", min_samples=50)
