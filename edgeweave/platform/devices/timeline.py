"""One device's round as a timeline: download, each mini-batch, upload, over what it has moment by moment.

Each mini-batch lasts its FLOPs over the device's speed at every instant it runs (a speed that
changes mid-batch stretches or shortens that batch), transfers last their bytes over the
bandwidth, and a device that becomes unavailable stops where it is. The device's choice of what
to train (a fixed plan, or DISTREAL's vector per mini-batch) is a rule asked before each
mini-batch with the speed it has at that moment and the time it has left. The driver (for the
clock) and the device (to know what to train) both call `device_timeline`, so they cannot
disagree. Every time here is absolute virtual seconds, the resource models' own time base: a
segment's end is used as it came, never converted, so the clock always lands exactly on it.
Pure arithmetic on floats, checkable by hand.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Optional

import numpy as np

Segment = Callable[[float], tuple[bool, float, float]]
"""absolute virtual time t -> (available, speed in FLOP/s, the next time its state may change, > t)."""

StepRule = Callable[[int, float, Optional[float]], Optional[tuple[float, int]]]
"""(mini-batch k, speed now, compute seconds left before the upload must start or None) ->
(the mini-batch's FLOPs, the choice it trains), or None when the device chooses to stop."""

TOLERANCE = 1e-9  # relative to a stretch's length: a mini-batch that ends exactly at a limit fits


def fits(t: float, seconds: float, limit: float) -> bool:
    """Whether work of `seconds` from t ends by `limit`, up to the rounding of the sum: a few units in the
    last place of the time and TOLERANCE of the work's length (never of the clock's reading, so a
    device-round plays the same whenever it starts)."""
    return limit == np.inf or t + seconds <= limit + 4 * np.spacing(abs(limit)) + TOLERANCE * seconds


class ClockStalled(RuntimeError):
    """A resource model answered a time at which the clock cannot advance: a bug, never a silent loop."""


def fixed_rule(batch_flops: np.ndarray) -> StepRule:
    """A plan committed at the round's start: mini-batch k costs batch_flops[k] FLOPs whatever happens."""
    costs = np.asarray(batch_flops, np.float64)
    return lambda k, speed, left: (float(costs[k]), -1)


def constant(speed: float) -> Segment:
    """Always available at one speed (the pooled central job, tests)."""
    return lambda t: (True, speed, np.inf)


@dataclass(frozen=True)
class DeviceTimeline:
    """What one device did in one round; every time is absolute virtual seconds."""

    start: float  # when its download began
    comm: float  # seconds each transfer lasts
    step_flops: np.ndarray  # FLOPs of each mini-batch it finished
    choices: np.ndarray  # the rule's choice for each of them
    step_end: np.ndarray  # when each finished
    finish: float  # upload done, or the moment it was cut off or went offline
    stopped: Optional[str]  # None: its full work; "own choice", "deadline" or "offline"
    lost: bool  # its update never arrives (dropped at the deadline, offline, or nothing trained)
    speed_start: float
    speed_min: float  # over the mini-batches it ran (the start speed when it ran none)
    speed_max: float
    work_start: np.ndarray  # compute at speed work_speed[i] from work_start[i] to the next start (or compute_end)
    work_speed: np.ndarray
    compute_end: float

    @property
    def steps(self) -> int:
        return len(self.step_flops)

    @property
    def spent(self) -> float:
        """FLOPs computed, a mini-batch cut off midway included."""
        return self.spent_by(np.inf)

    def spent_by(self, t: float) -> float:
        """FLOPs computed up to virtual time `t`."""
        ends = np.append(self.work_start[1:], self.compute_end)
        seconds = np.clip(np.minimum(ends, t) - self.work_start, 0.0, None)
        return float((seconds * self.work_speed).sum())


def _at(segment: Segment, t: float) -> tuple[bool, float, float]:
    """The segment at t, checked: its state must hold until a time later than t."""
    available, speed, until = segment(t)
    if not until > t:
        raise ClockStalled(f"the resource model's next change after t = {t!r} is {until!r}, not a later time")
    if available and not speed > 0:
        raise ClockStalled(f"the resource model gives speed {speed!r} at t = {t!r}: an available device needs > 0")
    return available, speed, until


def held(segment: Segment) -> Segment:
    """`segment`, checked (`_at`), asked again only once t leaves the stretch its last answer holds for: the
    state is constant from the time asked until the next change, so the answer there is the same."""
    last: list = [np.inf, None]  # the time last asked, its answer

    def at(t: float) -> tuple[bool, float, float]:
        if last[1] is None or not last[0] <= t < last[1][2]:
            last[0], last[1] = t, _at(segment, t)
        return last[1]

    return at


def _transfer(segment: Segment, t: float, seconds: float) -> tuple[bool, float]:
    """Move data for `seconds` from t over a `held` segment: (stayed available throughout, the time it ended or
    went offline)."""
    end = t + seconds
    while True:
        available, _, until = segment(t)
        if not available:
            return False, t
        if until >= end:
            return True, end
        t = until  # strictly later: `held` checked it


def device_timeline(
    segment: Segment, start: float, comm: float, planned: int, rule: StepRule, deadline: Optional[float], policy: str
) -> DeviceTimeline:
    """Play one device-round from `start`: download (`comm` seconds), up to `planned` mini-batches chosen
    by `rule`, upload.

    `deadline` is seconds after `start`. With a deadline and policy `drop` or `partial`, compute stops
    when the upload could no longer end by the deadline: `partial` keeps the mini-batches finished by
    then, `drop` loses the update. A device that goes offline loses its update, except under
    `partial`, where the mini-batches it finished count (it sends them as it leaves). The rule always
    sees the time left before the deadline's upload (a device aims at the deadline even when the
    driver waits). Every step moves the clock to a strictly later time or ends the work, so the
    timeline always terminates.
    """
    segment = held(segment)
    aim = None if deadline is None else start + deadline - comm  # absolute: when the upload must start
    window = aim if aim is not None and policy in ("drop", "partial") else np.inf
    _, speed_start, _ = segment(start)
    flops: list[float] = []
    choices: list[int] = []
    ends: list[float] = []
    work_start: list[float] = []
    work_speed: list[float] = []
    stopped: Optional[str] = None
    ok, t = _transfer(segment, start, comm)
    if not ok:
        stopped = "offline"
    while stopped is None and len(flops) < planned:
        available, speed, _ = segment(t)
        if not available:
            stopped = "offline"
            break
        pick = rule(len(flops), speed, None if aim is None else aim - t)
        if pick is None:
            stopped = "own choice"
            break
        cost, choice = pick
        left = cost
        while left > 0:
            available, speed, until = segment(t)
            if not available:
                stopped = "offline"
                break
            limit = min(until, window)
            if limit <= t:  # the deadline has come (until > t always)
                stopped = "deadline"
                break
            work_start.append(t)
            work_speed.append(speed)
            if fits(t, left / speed, limit):
                t, left = t + left / speed, 0.0
            else:
                left -= (limit - t) * speed
                t = limit
                if limit == window:
                    stopped = "deadline"
                    break
        if left > 0:
            break
        flops.append(cost)
        choices.append(choice)
        ends.append(t)
    compute_end = t
    lost = not flops
    if stopped == "offline":
        lost = lost or policy != "partial" or not ok
        finish = t
    elif stopped == "deadline" and policy == "drop":
        lost, finish = True, t
    else:
        ok, finish = _transfer(segment, t, comm)
        if not ok:
            stopped, lost = "offline", True
    speeds = work_speed or [speed_start]
    return DeviceTimeline(
        float(start),
        float(comm),
        np.array(flops, np.float64),
        np.array(choices, np.int64),
        np.array(ends, np.float64),
        float(finish),
        stopped,
        lost,
        float(speed_start),
        float(min(speeds)),
        float(max(speeds)),
        np.array(work_start, np.float64),
        np.array(work_speed, np.float64),
        float(compute_end),
    )
