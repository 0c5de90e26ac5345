"""The virtual clock against hand-computed rounds.

Three devices, each holding 40 samples, batch 10 (4 steps), 1 FLOP per sample, model 10 bytes,
bandwidth 10 B/s (1 s each way). Speeds 40, 20 and 10 FLOP/s: compute takes 1, 2 and 4 s, so
the full round takes 3, 4 and 6 s. A deadline leaves `deadline - 1` s for compute (the upload
must still end by it).
"""

import numpy as np
import pytest

from edgeweave.platform.devices.clock import Workload, batch_sizes, samples_in_steps, time_round
from edgeweave.platform.devices.timeline import constant, device_timeline, fixed_rule


def workload(policy, deadline, step_flops=None, speeds=(40.0, 20.0, 10.0)):
    step_flops = step_flops or [np.full(4, 10.0)] * len(speeds)
    timelines = [
        device_timeline(constant(s), 0.0, 1.0, len(f), fixed_rule(f), deadline, policy)
        for s, f in zip(speeds, step_flops)
    ]
    return Workload(
        devices=np.arange(len(speeds)),
        shard=np.full(len(speeds), 40),
        batch=10,
        planned=np.array([len(f) for f in step_flops]),
        timelines=timelines,
    )


def play(policy, deadline, keep=None, fixed_length=False, **change):
    return time_round(workload(policy, deadline, **change), 0.0, policy, deadline, keep=keep, fixed_length=fixed_length)


def test_wait_lasts_as_long_as_the_slowest():
    t = play("wait", None)
    np.testing.assert_allclose(t.finish, [3, 4, 6])
    assert t.end == 6
    assert list(t.steps) == [4, 4, 4] and list(t.samples) == [40, 40, 40]
    np.testing.assert_allclose(t.flops, [40, 40, 40])
    assert not t.dropped.any() and t.stopped == [None, None, None]


def test_wait_ignores_a_deadline():
    assert play("wait", 3.5).end == 6


def test_drop_never_trains_late_devices_but_counts_their_work():
    t = play("drop", 4.5)
    assert list(t.dropped) == [False, False, True] and t.stopped == [None, None, "deadline"]
    assert list(t.steps) == [4, 4, 0] and list(t.samples) == [40, 40, 0]
    # Device 2 computed from the end of its 1 s download until its update could no longer
    # arrive by the deadline (3.5 s) at 10 FLOP/s.
    np.testing.assert_allclose(t.flops, [40, 40, 25])
    assert t.end == 4.5


def test_drop_with_everyone_on_time_ends_at_the_last_finish():
    assert play("drop", 10).end == 6


def test_partial_keeps_the_steps_finished_when_the_deadline_cuts():
    t = play("partial", 4.5)
    # Device 2 has 2.5 s of compute: 2 whole steps, then the third is cut off halfway (5 FLOPs spent).
    assert list(t.steps) == [4, 4, 2] and list(t.samples) == [40, 40, 20]
    np.testing.assert_allclose(t.finish, [3, 4, 4.5])
    np.testing.assert_allclose(t.flops, [40, 40, 25])
    assert not t.dropped.any() and t.stopped == [None, None, "deadline"]
    assert t.end == 4.5


def test_partial_drops_a_device_that_finishes_no_step():
    t = play("partial", 2.5)
    # 1.5 s of compute: device 0 finishes 2 steps (the second exactly at the limit), device 1 one, device 2 none.
    assert list(t.steps) == [2, 1, 0]
    assert list(t.dropped) == [False, False, True]
    assert t.end == 2.5


def test_fixed_length_rounds_last_until_the_deadline():
    assert play("partial", 7.0, fixed_length=True).end == 7.0
    assert play("drop", 4.5, fixed_length=True).end == 4.5
    assert play("wait", 7.0, fixed_length=True).end == 6  # wait ignores it


def test_over_selection_keeps_the_first_finishers():
    t = play("wait", None, keep=2)
    assert list(t.dropped) == [False, False, True] and t.stopped[2] == "late"
    assert t.end == 4
    # The cut-off device worked from its download's end (1 s) to the cut-off (4 s) at 10 FLOP/s.
    np.testing.assert_allclose(t.flops, [40, 40, 30])


@pytest.mark.parametrize(
    "n, batch, steps, expected", [(40, 10, 4, 40), (45, 10, 5, 45), (45, 10, 7, 65), (45, 10, 2, 20), (5, 10, 3, 15)]
)
def test_samples_in_steps(n, batch, steps, expected):
    assert samples_in_steps(n, batch, steps) == expected


def test_partial_cuts_after_the_last_mini_batch_that_fits_when_costs_differ():
    # Device 2 (10 FLOP/s, 2.5 s of compute) with mini-batches of 10, 30, 5, 5 FLOPs: the first
    # ends at 2 s, the second would end at 5 s and is cut at 3.5 s; a mean cost of 12.5 per step
    # would have let it finish two.
    t = play("partial", 4.5, step_flops=[np.full(4, 10.0)] * 2 + [np.array([10.0, 30, 5, 5])])
    assert list(t.steps) == [4, 4, 1] and list(t.samples) == [40, 40, 10]
    np.testing.assert_allclose(t.flops, [40, 40, 25])
    np.testing.assert_allclose(t.finish, [3, 4, 4.5])


def test_a_round_without_devices_takes_no_time_and_trains_nothing():
    for policy, deadline in (("wait", None), ("drop", 3.0), ("partial", 3.0)):
        t = time_round(
            Workload(np.zeros(0, np.int64), np.zeros(0, np.int64), 10, np.zeros(0, np.int64), []), 0.0, policy, deadline
        )
        assert t.end == 0 and len(t.steps) == 0 and t.flops.sum() == 0


@pytest.mark.parametrize(
    "n, batch, steps, expected",
    [(40, 10, 4, [10] * 4), (45, 10, 7, [10, 10, 10, 10, 5, 10, 10]), (5, 10, 2, [5, 5]), (45, 10, 0, [])],
)
def test_batch_sizes_follow_epochs(n, batch, steps, expected):
    sizes = batch_sizes(n, batch, steps)
    assert sizes.tolist() == expected and sizes.sum() == samples_in_steps(n, batch, steps)


def shifting(changes):
    """A segment function from (time, available, speed) rows: each holds until the next row's time."""
    times = [c[0] for c in changes]

    def at(t):
        i = max(k for k, c in enumerate(times) if c <= t)
        until = times[i + 1] if i + 1 < len(times) else np.inf
        return changes[i][1], changes[i][2], until

    return at


# 10 FLOP/s until 2.5 s, 20 FLOP/s until 4 s, then offline; 1 s transfers; 5 mini-batches of 10 FLOPs.
MID_BATCH = [(0.0, True, 10.0), (2.5, True, 20.0), (4.0, False, 20.0)]


def test_a_speed_change_mid_batch_stretches_only_that_batch():
    tl = device_timeline(shifting(MID_BATCH[:2]), 0.0, 1.0, 5, fixed_rule(np.full(5, 10.0)), None, "wait")
    # Step 0: 1 -> 2 s at 10. Step 1: 5 FLOPs by 2.5 s, the other 5 at 20 FLOP/s -> 2.75 s. Then 0.5 s each.
    np.testing.assert_allclose(tl.step_end, [2.0, 2.75, 3.25, 3.75, 4.25])
    assert tl.finish == pytest.approx(5.25) and tl.stopped is None and not tl.lost
    assert (tl.speed_start, tl.speed_min, tl.speed_max) == (10.0, 10.0, 20.0)
    assert tl.spent == pytest.approx(50.0) and tl.spent_by(2.5) == pytest.approx(15.0)


@pytest.mark.parametrize("policy, steps, lost", [("wait", 4, True), ("drop", 4, True), ("partial", 4, False)])
def test_a_device_that_goes_offline_mid_round(policy, steps, lost):
    tl = device_timeline(shifting(MID_BATCH), 0.0, 1.0, 5, fixed_rule(np.full(5, 10.0)), 10.0, policy)
    # Four steps end by 3.75 s; the fifth is halfway (5 FLOPs) when the device goes offline at 4 s.
    assert tl.steps == steps and tl.stopped == "offline" and tl.lost == lost
    assert tl.finish == pytest.approx(4.0) and tl.spent == pytest.approx(45.0)
    t = time_round(Workload(np.array([0]), np.array([50]), 10, np.array([5]), [tl]), 0.0, policy, 10.0)
    assert list(t.steps) == [0 if lost else 4] and t.flops[0] == pytest.approx(45.0)
    assert t.end == (0.0 if lost else pytest.approx(4.0))  # nobody waits for a device known to be gone


def test_offline_during_the_upload_loses_the_update_under_every_policy():
    rows = [(0.0, True, 10.0), (4.5, False, 10.0)]  # 3 steps of 10 FLOPs end at 4 s; the upload needs until 5 s
    for policy in ("wait", "drop", "partial"):
        tl = device_timeline(shifting(rows), 0.0, 1.0, 3, fixed_rule(np.full(3, 10.0)), None, policy)
        assert tl.lost and tl.stopped == "offline" and tl.finish == pytest.approx(4.5)


def test_a_method_overriding_the_renamed_step_flops_is_refused_at_once():
    """`Rules.step_flops` became `sample_flops`: a plugin's override under the old name would be ignored."""
    from edgeweave.platform.methods.base import Rules

    with pytest.raises(TypeError, match="Mine.step_flops: renamed sample_flops"):

        class Mine(Rules):
            def step_flops(self, facts, round_, job, steps):
                return np.ones(steps)
