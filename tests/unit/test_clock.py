"""The virtual clock against hand-computed rounds.

Three devices, each holding 40 samples, batch 10 (4 steps), 1 FLOP per sample, model 10 bytes,
bandwidth 10 B/s (1 s each way). Speeds 40, 20 and 10 FLOP/s: compute takes 1, 2 and 4 s, so
the full round takes 3, 4 and 6 s.
"""

import numpy as np
import pytest

from edgeweave.platform.devices.clock import Workload, batch_sizes, samples_in_steps, time_round


def workload(**change):
    base = dict(devices=np.array([0, 1, 2]), speed=np.array([40.0, 20.0, 10.0]), bandwidth=np.full(3, 10.0),
                model_bytes=np.full(3, 10.0), step_flops=[np.full(4, 10.0)] * 3, shard=np.full(3, 40), batch=10)
    return Workload(**{**base, **change})


def test_wait_lasts_as_long_as_the_slowest():
    t = time_round(workload(), "wait", deadline=None)
    np.testing.assert_allclose(t.finish, [3, 4, 6])
    assert t.duration == 6
    assert list(t.steps) == [4, 4, 4] and list(t.samples) == [40, 40, 40]
    np.testing.assert_allclose(t.flops, [40, 40, 40])
    assert not t.dropped.any() and np.isinf(t.budget).all()


def test_wait_ignores_a_deadline():
    assert time_round(workload(), "wait", deadline=3.5).duration == 6


def test_drop_never_trains_late_devices_but_counts_their_work():
    t = time_round(workload(), "drop", deadline=4.5)
    assert list(t.dropped) == [False, False, True]
    assert list(t.steps) == [4, 4, 0] and list(t.samples) == [40, 40, 0]
    # Device 2 computed from the end of its 1 s download until the 4.5 s deadline at 10 FLOP/s.
    np.testing.assert_allclose(t.flops, [40, 40, 35])
    np.testing.assert_allclose(t.budget, [(4.5 - 2) * 40, (4.5 - 2) * 20, (4.5 - 2) * 10])
    assert t.duration == 4.5


def test_drop_with_everyone_on_time_ends_at_the_last_finish():
    assert time_round(workload(), "drop", deadline=10).duration == 6


def test_partial_does_the_steps_that_fit():
    t = time_round(workload(), "partial", deadline=4.5)
    # Device 2 has 2.5 s of compute = 25 FLOPs = 2 whole steps of 10 samples.
    assert list(t.steps) == [4, 4, 2] and list(t.samples) == [40, 40, 20]
    np.testing.assert_allclose(t.finish, [3, 4, 4])
    np.testing.assert_allclose(t.flops, [40, 40, 20])
    assert not t.dropped.any()
    assert t.duration == 4


def test_partial_drops_a_device_that_fits_no_step():
    t = time_round(workload(), "partial", deadline=2.5)
    # 0.5 s of compute: device 0 fits 20 FLOPs (2 steps), device 1 10 (1 step), device 2 5 (none).
    assert list(t.steps) == [2, 1, 0]
    assert list(t.dropped) == [False, False, True]
    assert t.duration == 2.5


def test_fixed_length_rounds_last_until_the_deadline():
    assert time_round(workload(), "partial", deadline=7.0, fixed_length=True).duration == 7.0
    assert time_round(workload(), "drop", deadline=4.5, fixed_length=True).duration == 4.5
    assert time_round(workload(), "wait", deadline=7.0, fixed_length=True).duration == 6  # wait ignores it


def test_over_selection_keeps_the_first_finishers():
    t = time_round(workload(), "wait", deadline=None, keep=2)
    assert list(t.dropped) == [False, False, True]
    assert t.duration == 4
    # The cut-off device worked from its download's end (1 s) to the cut-off (4 s) at 10 FLOP/s.
    np.testing.assert_allclose(t.flops, [40, 40, 30])


@pytest.mark.parametrize("n, batch, steps, expected", [(40, 10, 4, 40), (45, 10, 5, 45), (45, 10, 7, 65),
                                                       (45, 10, 2, 20), (5, 10, 3, 15)])
def test_samples_in_steps(n, batch, steps, expected):
    assert samples_in_steps(n, batch, steps) == expected


def test_partial_cuts_after_the_last_mini_batch_that_fits_when_costs_differ():
    # Device 2 (10 FLOP/s, 2.5 s of compute = 25 FLOPs) with mini-batches of 10, 30, 5, 5 FLOPs:
    # only the first fits; a mean cost of 12.5 per step would have let it do two.
    t = time_round(workload(step_flops=[np.full(4, 10.0)] * 2 + [np.array([10.0, 30, 5, 5])]), "partial",
                   deadline=4.5)
    assert list(t.steps) == [4, 4, 1] and list(t.samples) == [40, 40, 10]
    np.testing.assert_allclose(t.flops, [40, 40, 10])
    np.testing.assert_allclose(t.finish, [3, 4, 3])


def test_a_round_without_devices_takes_no_time_and_trains_nothing():
    empty = dict(devices=np.zeros(0, np.int64), speed=np.zeros(0), bandwidth=np.zeros(0), model_bytes=np.zeros(0),
                 step_flops=[], shard=np.zeros(0, np.int64))
    for policy, deadline in (("wait", None), ("drop", 3.0), ("partial", 3.0)):
        t = time_round(workload(**empty), policy, deadline)
        assert t.duration == 0 and len(t.steps) == 0 and t.flops.sum() == 0


@pytest.mark.parametrize("n, batch, steps, expected", [(40, 10, 4, [10] * 4), (45, 10, 7, [10, 10, 10, 10, 5, 10, 10]),
                                                       (5, 10, 2, [5, 5]), (45, 10, 0, [])])
def test_batch_sizes_follow_epochs(n, batch, steps, expected):
    sizes = batch_sizes(n, batch, steps)
    assert sizes.tolist() == expected and sizes.sum() == samples_in_steps(n, batch, steps)
