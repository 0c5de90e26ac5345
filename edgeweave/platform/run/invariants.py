"""A run checks its own invariants as it goes: a simulator that can be wrong silently will be.

After each round (or async server step) the server hands its device timelines, records and
metrics to `RunChecks`, which checks them against the resource model and against each other:
the clock never goes back; each device's finish is its start plus its transfers and its
mini-batches at the speeds its resource model gave; the records add up to the metrics; async
devices in flight stay within the concurrency and each arrives once per dispatch. A violation
raises `InvariantBroken` with one line naming the invariant, the round and the device. The
checks re-read the resource model once per stretch of constant speed a device ran, which is
cheap next to training those stretches.
"""

from __future__ import annotations

import math
from typing import Any, Optional, Sequence

import numpy as np

from edgeweave.platform.devices.clock import samples_in_steps
from edgeweave.platform.devices.timeline import DeviceTimeline, Segment, fits, held

REL = 1e-9  # relative tolerance of sums of floats taken in another order


class InvariantBroken(RuntimeError):
    """The simulation contradicted itself: a bug in edgeweave or in a plugin, never the user's input."""


def _close(a: float, b: float, scale: float = 0.0) -> bool:
    return math.isclose(a, b, rel_tol=REL, abs_tol=REL * max(abs(scale), 1.0))


def _broken(invariant: str, round_: int, device: Optional[int], what: str) -> InvariantBroken:
    where = f"round {round_}" + ("" if device is None else f", device {device}")
    return InvariantBroken(f"invariant '{invariant}' broken at {where}: {what}")


def check_timeline(tl: DeviceTimeline, segment: Segment, round_: int, device: int) -> None:
    """The device's finish is its start plus its transfers and its mini-batches at the speeds `segment` gave.

    Download ends `comm` after the start; every stretch of compute ran at the speed the resource model
    gives at its start and ends no later than the model's next change; the FLOPs computed by each
    mini-batch's end are the sum of the mini-batches so far; an update that arrives is uploaded for `comm`
    after its compute.
    """
    ends = np.append(tl.work_start[1:], tl.compute_end)
    if len(tl.work_start):
        if tl.work_start[0] != tl.start + tl.comm:
            raise _broken(
                "finish = start + transfers + steps",
                round_,
                device,
                f"compute starts at {tl.work_start[0]!r}, its download ends at {tl.start + tl.comm!r}",
            )
        if (np.diff(tl.work_start) < 0).any() or ends[-1] < tl.work_start[-1]:
            raise _broken("the clock never goes back", round_, device, "its compute stretches go back in time")
    segment = held(segment)
    for t0, t1, speed in zip(tl.work_start, ends, tl.work_speed):
        available, given, until = segment(float(t0))
        if not available or given != speed:
            raise _broken(
                "steps at the speeds the resource model gave",
                round_,
                device,
                f"at t = {t0!r} it computed at {speed!r} FLOP/s, the model gives "
                f"{given if available else 'no availability'!r}",
            )
        if not fits(float(t0), float(t1 - t0), until):
            raise _broken(
                "steps at the speeds the resource model gave",
                round_,
                device,
                f"it computed at {speed!r} FLOP/s until {t1!r}, past the model's change at {until!r}",
            )
    done = np.cumsum(tl.step_flops)
    computed = np.cumsum((ends - tl.work_start) * tl.work_speed)  # by the end of each stretch
    at_end = computed[np.minimum(np.searchsorted(ends, tl.step_end), len(ends) - 1)] if len(ends) else computed
    # FLOPs rebuilt from absolute times carry their rounding: a few units in the last place of each stretch
    slack = REL * done + 4 * len(ends) * float(tl.work_speed.max(initial=0.0)) * np.spacing(
        np.maximum(np.abs(tl.step_end), 1.0)
    )
    off = np.flatnonzero(np.abs(at_end - done) > slack)
    if len(off):
        k = int(off[0])
        raise _broken(
            "finish = start + transfers + steps",
            round_,
            device,
            f"mini-batch {k} ends at {tl.step_end[k]!r} with {at_end[k]!r} FLOPs computed, "
            f"not the {done[k]!r} of its mini-batches",
        )
    upload = 0.0 if tl.stopped == "offline" else tl.comm  # under `partial` a device going offline sends as it goes
    if not tl.lost and tl.finish != tl.compute_end + upload:
        raise _broken(
            "finish = start + transfers + steps",
            round_,
            device,
            f"its update arrives at {tl.finish!r}, not {tl.compute_end!r} + {upload!r} of upload",
        )
    if tl.finish < tl.compute_end or tl.compute_end < tl.start:
        raise _broken(
            "the clock never goes back",
            round_,
            device,
            f"start {tl.start!r}, compute end {tl.compute_end!r}, finish {tl.finish!r}",
        )


class RunChecks:
    """The invariants of one run, checked after each round or server step; holds the clock it last saw."""

    def __init__(self, clock: float, total_flops: float, batch: int) -> None:
        self.clock = clock
        self.total_flops = total_flops
        self.batch = batch

    def step(
        self,
        round_: int,
        metrics: dict[str, Any],
        records: Sequence[dict[str, Any]],
        timelines: Sequence[DeviceTimeline],
        segments: Sequence[Segment],
        shards: Sequence[int] | np.ndarray,
    ) -> None:
        """The clock and the books of one round (or server step): one record, timeline, segment (what the
        device's resource model gives, as its timeline read it) and shard size per device that took part."""
        start, end = metrics["virtual_start"], metrics["virtual_time"]
        if start != self.clock or end < start:
            raise _broken(
                "the clock never goes back",
                round_,
                None,
                f"the step runs from {start!r} to {end!r}, the clock stood at {self.clock!r}",
            )
        for record, tl, segment, shard in zip(records, timelines, segments, shards, strict=True):
            device = record["device"]
            check_timeline(tl, segment, record["round"], device)
            if record["finish"] > end:
                raise _broken(
                    "the clock never goes back",
                    round_,
                    device,
                    f"it finishes at {record['finish']!r}, after the step's end at {end!r}",
                )
            steps = 0 if record["dropped"] else tl.steps
            samples = samples_in_steps(shard, self.batch, steps)
            if record["steps"] != steps or record["samples"] != samples:
                raise _broken(
                    "records are what was trained",
                    round_,
                    device,
                    f"it trained {record['steps']} mini-batches of {record['samples']} samples, its "
                    f"timeline has {steps} of {samples}",
                )
            # what it computed: its timeline's FLOPs, up to the step's end when the step cut it off
            if not (
                _close(record["flops"], tl.spent, tl.spent)
                if not record["dropped"]
                else record["flops"] <= tl.spent * (1 + REL)
            ):
                raise _broken(
                    "records add up to the metrics",
                    round_,
                    device,
                    f"its record says {record['flops']!r} FLOPs computed, its timeline {tl.spent!r}",
                )
        flops = sum(r["flops"] for r in records)
        if not _close(flops, metrics["flops"], flops):
            raise _broken(
                "records add up to the metrics",
                round_,
                None,
                f"the devices' FLOPs add up to {flops!r}, the metrics say {metrics['flops']!r}",
            )
        samples = sum(r["samples"] for r in records)
        if samples != metrics["samples"]:
            raise _broken(
                "records add up to the metrics",
                round_,
                None,
                f"the devices' samples add up to {samples}, the metrics say {metrics['samples']}",
            )
        trained = sum(1 for r in records if not r["dropped"])
        if trained != metrics["devices"]:
            raise _broken(
                "records add up to the metrics",
                round_,
                None,
                f"{trained} devices' updates arrived, the metrics count {metrics['devices']}",
            )
        if not _close(self.total_flops + metrics["flops"], metrics["cumulative_flops"], metrics["cumulative_flops"]):
            raise _broken(
                "records add up to the metrics",
                round_,
                None,
                f"cumulative FLOPs {metrics['cumulative_flops']!r} are not {self.total_flops!r} + {metrics['flops']!r}",
            )
        self.clock, self.total_flops = end, metrics["cumulative_flops"]


def check_in_flight(round_: int, in_flight: int, concurrency: int) -> None:
    """Async: never more devices training at once than `aggregation.concurrency`."""
    if in_flight > concurrency:
        raise _broken(
            "in-flight devices within the concurrency",
            round_,
            None,
            f"{in_flight} devices in flight, aggregation.concurrency is {concurrency}",
        )
