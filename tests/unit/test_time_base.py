"""One time base: timelines and resource models over drawn periods, starts, deadlines, trace times and cycles.

Times are drawn from wide ranges and are rarely binary fractions (0.3, 1027.6, 13.241086654122158):
the values for which relative and absolute time, or `t % cycle` and `t - t % cycle`, round apart.
Each property is checked where a bug would show: the timeline ends and its books are the resource
model's, and the state at `next_change(t)` is the next segment's.
"""

import math

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from edgeweave.platform.config.schema import build_config
from edgeweave.platform.core.errors import UserError
from edgeweave.platform.devices.resources import build_resources
from edgeweave.platform.devices.resources.base import slot_of, slot_start
from edgeweave.platform.devices.resources.markov import chain_state
from edgeweave.platform.devices.timeline import ClockStalled, constant, device_timeline, fixed_rule
from edgeweave.platform.run.invariants import check_timeline
from tests.helpers import tiny_raw

FAST = settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
# Decimal-looking values, as configs and traces write them: few are binary fractions.
periods = st.integers(1, 10**6).map(lambda n: n / 1000)  # 0.001 s to 1000 s
times = st.floats(0, 1e7, allow_nan=False, allow_infinity=False)
starts = st.one_of(times, st.integers(0, 10**9).map(lambda n: n / 100))


def resources(tmp_path, **params):
    raw = tiny_raw(tmp_path)
    raw["devices"] = {**raw["devices"], "resources": params}
    return build_resources(build_config(raw).devices.resources, 7)


def segment_of(model, device=0, speed=1e9, budget=100_000):
    """A device's segment over a resource model, failing (not hanging) if the timeline asks too often."""
    ids = np.array([device])
    calls = [0]

    def at(t):
        calls[0] += 1
        assert calls[0] < budget, f"the timeline is still asking at t = {t!r}: it does not advance"
        available, multiplier = model.state(ids, 0, t)
        return bool(available[0]), speed * float(multiplier[0]), float(model.next_change(ids, 0, t)[0])

    return at


def always_on_markov(tmp_path, period):
    return resources(tmp_path, name="markov", period=period, p_off=0.0, p_on=1.0, p_slow=0.5, p_fast=0.5, slow=0.3)


def test_the_reported_hang_finishes(tmp_path):
    """Markov(period=0.3), a device starting at 13.241086654122158, 200 mini-batches of 1e8 FLOPs at 1e9 FLOP/s:
    the timeline used to stop advancing at 29.699999999999996, next change 29.7."""
    seg = segment_of(always_on_markov(tmp_path, 0.3))
    start = 13.241086654122158
    tl = device_timeline(seg, start, 0.0, 200, fixed_rule(np.full(200, 1e8)), None, "wait")
    assert tl.steps == 200 and tl.stopped is None
    assert tl.spent == pytest.approx(2e10)
    check_timeline(tl, seg, 0, 0)


def test_a_cycling_trace_takes_every_change_in_every_cycle(tmp_path):
    """22627.6 % 21600 == 1027.5999999999985: the state read the row before 1027.6 while next_change jumped a
    cycle on, so a device that goes offline at 1027.6 of each cycle stayed online in cycle 1."""
    path = tmp_path / "t.csv"
    path.write_text("device,time,available,speed\n0,0,1,1.0\n0,1027.6,0,1.0\n0,2000,1,1.0\n")
    trace = resources(tmp_path, name="trace", path=str(path), cycle=21600)
    ids = np.array([0])
    for cycle in range(4):
        before = cycle * 21600 + 1000.0
        change = float(trace.next_change(ids, 0, before)[0])
        assert change == pytest.approx(cycle * 21600 + 1027.6)
        assert not trace.state(ids, 0, change)[0][0], f"cycle {cycle}: still online at its change {change!r}"
        assert float(trace.next_change(ids, 0, change)[0]) == pytest.approx(cycle * 21600 + 2000)


def test_a_trace_time_outside_its_cycle_is_refused(tmp_path):
    path = tmp_path / "t.csv"
    path.write_text("device,time,available,speed\n0,0,1,1.0\n0,30,0,1.0\n")
    with pytest.raises(UserError, match=r"30 is outside the cycle.*\[0, 20\)"):
        resources(tmp_path, name="trace", path=str(path), cycle=20)


@given(t=times, period=periods)
@FAST
def test_slots_agree_with_their_starts(t, period):
    k = slot_of(t, period)
    assert slot_start(k, period) <= t < slot_start(k + 1, period)
    assert slot_of(slot_start(k + 1, period), period) == k + 1


@given(t=times, period=periods, device=st.integers(0, 10**6))
@FAST
def test_markov_state_at_next_change_is_the_next_steps(tmp_path, t, period, device):
    m = resources(tmp_path, name="markov", period=period)
    ids = np.array([device])
    change = float(m.next_change(ids, 0, t)[0])
    assert change > t
    step = slot_of(t, period) + 1
    on, speed = m.state(ids, 0, change)
    p = m.params
    assert on[0] == chain_state(m.seed, ids, step, p.p_off, p.p_on, 20)[0]
    assert speed[0] == (1.0 if chain_state(m.seed, ids, step, p.p_slow, p.p_fast, 30)[0] else p.slow)
    last = math.nextafter(change, -math.inf)  # the last instant of t's segment holds t's state
    assert [a.tolist() for a in m.state(ids, 0, last)] == [a.tolist() for a in m.state(ids, 0, t)]


@given(t=times, period=periods, kind=st.sampled_from(["uniform", "diurnal", "markov"]))
@FAST
def test_every_slot_model_holds_its_state_until_its_next_change(tmp_path, t, period, kind):
    params = {
        "uniform": {"period": period},
        "diurnal": {"slot": period, "period": period * 144},
        "markov": {"period": period},
    }[kind]
    m = resources(tmp_path, name=kind, **params)
    ids = np.arange(5)
    change = m.next_change(ids, 0, t)
    assert (change > t).all()
    last = math.nextafter(float(change.min()), -math.inf)
    for now in (last, (t + last) / 2):
        np.testing.assert_array_equal(np.stack(m.state(ids, 0, now)), np.stack(m.state(ids, 0, t)))
    assert (m.next_change(ids, 0, last) == change).all()  # the segment's last instant ends where t's does


@st.composite
def traces(draw):
    """A cycle of a few rows with decimal times (as make_trace.py writes them), each row's speed its index."""
    tenths = draw(st.lists(st.integers(0, 10**6), min_size=1, max_size=6, unique=True))
    times_ = sorted(n / 10 for n in tenths)
    cycle = (max(tenths) + draw(st.integers(1, 10**5))) / 10
    return times_, cycle


@given(trace=traces(), start=times, cycles=st.integers(1, 3))
@FAST
def test_a_cycling_trace_visits_every_row_in_order(tmp_path, trace, start, cycles):
    times_, cycle = trace
    path = tmp_path / "walk.csv"
    path.write_text("device,time,available,speed\n" + "".join(f"0,{t!r},1,{i + 1}\n" for i, t in enumerate(times_)))
    m = resources(tmp_path, name="trace", path=str(path), cycle=cycle)
    ids = np.array([0])
    t = start
    row = int(m.state(ids, 0, t)[1][0]) - 1
    for _ in range(cycles * (len(times_) + 1)):
        change = float(m.next_change(ids, 0, t)[0])
        assert change > t
        nxt = int(m.state(ids, 0, change)[1][0]) - 1
        # No row is skipped: the next row, or at a cycle's start its first row (held until its own time)
        assert nxt == (row + 1) % len(times_) or nxt == row == 0 < times_[0], (t, change, row, nxt)
        offset = change - slot_start(slot_of(change, cycle), cycle)
        at = [times_[nxt]] + ([0.0, cycle] if nxt == 0 else [])  # its row's time, or the cycle's start
        assert any(math.isclose(offset, x, abs_tol=1e-6 * max(change, 1.0)) for x in at), (change, offset, nxt)
        t, row = change, nxt


@given(
    start=starts,
    period=periods,
    steps=st.integers(0, 60),
    periods_a_step=st.floats(0.01, 30),
    comm=st.sampled_from([0.0, 0.7, 13.3]),
    deadline=st.one_of(st.none(), st.floats(0.1, 1e4)),
    policy=st.sampled_from(["wait", "drop", "partial"]),
    availability=st.sampled_from([True, False]),
)
@settings(max_examples=120, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
def test_every_timeline_ends_and_its_books_are_the_resource_models(
    tmp_path, start, period, steps, periods_a_step, comm, deadline, policy, availability
):
    if availability:
        m = always_on_markov(tmp_path, period)
    else:
        m = resources(tmp_path, name="markov", period=period, p_off=0.1, p_on=0.5, p_slow=0.3, p_fast=0.3, slow=0.4)
    seg = segment_of(m, speed=1e8)
    rng = np.random.default_rng(steps)
    costs = periods_a_step * period * 1e8 * rng.uniform(0.5, 1.5, steps)  # a step lasts about that many periods
    tl = device_timeline(seg, start, comm, steps, fixed_rule(costs), deadline, policy)
    check_timeline(tl, seg, 0, 0)
    assert start <= tl.compute_end <= tl.finish
    if deadline is not None and policy != "wait" and not tl.lost:
        assert tl.finish <= start + deadline + 1e-9 * max(start + deadline, 1.0)
    if tl.stopped is None:  # FLOPs rebuilt from absolute times carry their rounding (1e-9 s at t = 1e7 s)
        rounding = 1e8 * 4 * len(tl.work_start) * np.spacing(max(tl.finish, 1.0))
        assert tl.steps == steps and tl.spent == pytest.approx(costs.sum(), rel=1e-9, abs=rounding)


def test_a_resource_model_that_does_not_move_on_is_an_error_not_a_loop():
    stuck = lambda t: (True, 1e6, t)  # noqa: E731 - "next change" at t itself
    with pytest.raises(ClockStalled, match="next change after t = 5.5 is 5.5"):
        device_timeline(stuck, 5.5, 0.0, 3, fixed_rule(np.full(3, 1e6)), None, "wait")


@given(
    seed=st.integers(0, 2**32 - 1),
    device=st.integers(0, 2**40),
    slot=st.integers(-(2**40), 2**62),
    stream=st.integers(0, 1000),
)
@FAST
def test_one_devices_draw_is_the_vectorised_draw(seed, device, slot, stream):
    from edgeweave.platform.devices import hashing

    many = hashing.uniform(seed, np.array([device, device + 1]), np.array([slot, slot]), stream)
    assert hashing.uniform(seed, np.array([device]), slot, stream)[0] == many[0]


@pytest.mark.parametrize("start", [0.0, 1e5, 1e7, 13.241086654122158 * 1e5])
def test_a_device_round_plays_the_same_whenever_it_starts(start):
    """A mini-batch 0.5 % longer than the deadline allows does not fit, at t = 0 as at t = 1e7 (where a
    tolerance relative to the clock's reading would be 10 ms)."""
    tl = device_timeline(constant(1e6), start, 0.0, 1, fixed_rule([1.005e6]), 1.0, "partial")
    assert tl.steps == 0 and tl.stopped == "deadline"
    fitting = device_timeline(constant(1e6), start, 0.0, 1, fixed_rule([0.995e6]), 1.0, "partial")
    assert fitting.steps == 1 and fitting.finish <= start + 1.0


@given(trace=traces(), t=times, devices=st.lists(st.integers(0, 50), max_size=8), cyclic=st.booleans())
@FAST
def test_the_earliest_change_of_many_devices_is_the_least_of_theirs(tmp_path, trace, t, devices, cyclic):
    """What an async server waits for, answered from every row at once, is the min over the devices."""
    times_, cycle = trace
    path = tmp_path / "many.csv"
    path.write_text(
        "device,time,available,speed\n"
        + "".join(f"{s},{x!r},{(i + s) % 2},{1 + i}\n" for s in range(3) for i, x in enumerate(times_[s:] or times_))
    )
    params = {"cycle": cycle} if cyclic else {}
    ids = np.array(devices, np.int64)
    for m in (
        resources(tmp_path, name="trace", path=str(path), **params),
        resources(tmp_path, name="markov", period=cycle / 7),
        resources(tmp_path, name="uniform", period=0.3),
    ):
        expected = float(m.next_change(ids, 0, t).min()) if len(ids) else np.inf
        assert m.earliest_change(ids, 0, t) == expected
