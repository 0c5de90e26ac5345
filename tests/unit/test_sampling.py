import numpy as np

from edgeweave.platform.run.sampling import sample_available


def test_only_eligible_distinct_devices_are_sampled():
    g = np.random.default_rng(0)
    ids = sample_available(1000, 20, lambda ids: ids % 3 == 0, g)
    assert len(ids) == 20 and len(set(ids.tolist())) == 20
    assert (ids % 3 == 0).all()


def test_cost_grows_with_k_not_the_population():
    checked = []

    def eligible(ids):
        checked.append(len(ids))
        return np.ones(len(ids), bool)

    sample_available(100_000, 10, eligible, np.random.default_rng(1))
    assert sum(checked) <= 64


def test_rare_eligibility_falls_back_to_a_full_scan():
    ids = sample_available(500, 5, lambda ids: ids >= 497, np.random.default_rng(2))
    assert list(ids) == [497, 498, 499]


def test_sampling_is_uniform():
    counts = np.zeros(10)
    for seed in range(2000):
        counts[sample_available(10, 3, lambda ids: np.ones(len(ids), bool), np.random.default_rng(seed))] += 1
    assert counts.min() > 0.85 * counts.mean() and counts.max() < 1.15 * counts.mean()
