import numpy as np

from edgeweave.platform.train.aggregate import Partial, average, combine


def test_weighted_average_by_hand():
    a = Partial.zeros(3)
    a.add(np.array([1.0, 2.0, 3.0], np.float32), weight=1)
    b = Partial.zeros(3)
    b.add(np.array([4.0, 5.0, 6.0], np.float32), weight=2)
    total = combine([a, b], a.sums.size)
    out = average(np.zeros(3, np.float32), total.sums, total.counts)
    np.testing.assert_allclose(out, [3.0, 4.0, 5.0])


def test_untrained_elements_keep_their_previous_value():
    p = Partial.zeros(4)
    p.add(np.array([10.0, 20.0], np.float32), weight=1, mask=np.array([0, 2]))
    q = Partial.zeros(4)
    q.add(np.array([30.0], np.float32), weight=3, mask=np.array([2]))
    total = combine([p, q], p.sums.size)
    out = average(np.array([-1, -2, -3, -4], np.float32), total.sums, total.counts)
    np.testing.assert_allclose(out, [10.0, -2.0, (20 + 90) / 4, -4.0])
    assert out.dtype == np.float32


def test_combine_keeps_every_record():
    p, q = Partial.zeros(1), Partial.zeros(1)
    p.records.append({"device": 2})
    q.records.extend([{"device": 0}, {"device": 5}])
    assert [r["device"] for r in combine([p, q], p.sums.size).records] == [2, 0, 5]


def test_split_between_partials_equals_one_partial():
    rng = np.random.default_rng(0)
    vecs = [rng.standard_normal(1000).astype(np.float32) for _ in range(6)]
    weights = [3, 7, 1, 9, 4, 2]
    one = Partial.zeros(1000)
    for v, w in zip(vecs, weights):
        one.add(v, w)
    left, right = Partial.zeros(1000), Partial.zeros(1000)
    for i, (v, w) in enumerate(zip(vecs, weights)):
        (left if i % 2 else right).add(v, w)
    both = combine([left, right], left.sums.size)
    prev = np.zeros(1000, np.float32)
    np.testing.assert_array_equal(average(prev, one.sums, one.counts), average(prev, both.sums, both.counts))


def test_a_partial_crosses_processes_unchanged_and_uniform_counts_as_one_number():
    import pickle

    full = Partial.zeros(1000)
    full.add(np.arange(1000, dtype=np.float32), weight=3.0)
    full.record(7, 30, 3, 0.5)
    masked = Partial.zeros(1000)
    masked.add(np.ones(10, np.float32), weight=2.0, mask=np.arange(10))
    for p in (full, masked):
        back = pickle.loads(pickle.dumps(p))
        assert np.array_equal(back.sums, p.sums) and np.array_equal(back.counts, p.counts)
        assert back.records == p.records and back.counts.dtype == np.float64
    assert len(pickle.dumps(full)) < len(pickle.dumps(masked)) * 0.6  # the counts' 8 kB left behind
