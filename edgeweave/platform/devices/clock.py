"""The virtual clock of one round: who finishes when, who is dropped, what each device computed.

Each sampled device's round is a timeline (`timeline.device_timeline`): its mini-batches over the
speed it has moment by moment, cut by the deadline or by going offline. This module puts the
round's timelines together: over-selection keeps the first finishers, the round ends when the
last kept update arrives (or at the deadline when the driver waited for a device that never
came, or always at the deadline with fixed-length rounds), and devices cut off are charged what
they computed until then. Pure arithmetic, checked against hand-computed cases.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Optional, Sequence

import numpy as np

from edgeweave.platform.devices.timeline import DeviceTimeline


def samples_in_steps(n: int, batch: int, steps: int) -> int:
    """Samples processed by the first `steps` mini-batches of shuffled epochs over n samples."""
    per_epoch = -(-n // batch)
    epochs, rest = divmod(steps, per_epoch)
    return epochs * n + rest * batch


def batch_sizes(n: int, batch: int, steps: int) -> np.ndarray:
    """Samples in each of the first `steps` mini-batches of shuffled epochs over n samples."""
    per_epoch = -(-n // batch)
    sizes = np.full(per_epoch, batch, np.int64)
    sizes[-1] = n - batch * (per_epoch - 1)
    return np.resize(sizes, steps) if steps else np.zeros(0, np.int64)


@dataclass(frozen=True)
class Workload:
    """The sampled devices' rounds (arrays over those devices, one timeline each)."""

    devices: np.ndarray
    shard: np.ndarray  # samples held
    batch: int
    planned: np.ndarray  # mini-batches of each device's full local work
    timelines: Sequence[DeviceTimeline]


@dataclass(frozen=True)
class Timing:
    """The round's outcome: steps each device's update carries (0 = dropped), FLOPs, finish times."""

    steps: np.ndarray
    samples: np.ndarray
    flops: np.ndarray  # FLOPs computed, dropped devices included (they worked until cut off)
    finish: np.ndarray  # absolute virtual seconds
    dropped: np.ndarray
    stopped: list[Optional[str]]  # None, "own choice", "deadline", "offline", or "late" (over-selection)
    end: float  # absolute virtual seconds; the round's start when nothing took any time


def time_round(
    w: Workload,
    start: float,
    policy: str,
    deadline: Optional[float],
    keep: Optional[int] = None,
    fixed_length: bool = False,
) -> Timing:
    """Put the round that began at `start` together: over-selection (`keep` first finishers), the round's
    end, what each computed. `deadline` is seconds after `start`.

    With `fixed_length` (and a deadline, and a policy other than `wait`) every round lasts until
    the deadline, as when the driver only collects updates at the deadline.
    """
    tls = w.timelines
    due = None if deadline is None else start + deadline  # the timelines computed theirs the same way
    finish = np.array([tl.finish for tl in tls], np.float64)
    dropped = np.array([tl.lost for tl in tls], bool)
    stopped = [tl.stopped for tl in tls]
    end = float(finish[~dropped].max(initial=start))
    if due is not None and any(tl.lost and tl.stopped == "deadline" for tl in tls):
        end = max(end, due)  # the driver waited until the deadline for updates that never came
    if keep is not None and (~dropped).sum() > keep:
        order = np.flatnonzero(~dropped)[np.argsort(finish[~dropped], kind="stable")]
        for i in order[keep:]:
            dropped[i], stopped[i] = True, "late"
        end = float(finish[order[keep - 1]])
    if fixed_length and due is not None and policy != "wait":
        end = max(end, due)
    offline = np.array([s == "offline" for s in stopped], bool)
    # Devices cut off by the round's end computed until then; one gone offline, until it went.
    flops = np.array(
        [tl.spent_by(end) if cut and not off else tl.spent for tl, cut, off in zip(tls, dropped, offline)], np.float64
    )
    finish = np.where(dropped & ~offline, end, np.minimum(finish, end) if len(finish) else finish)
    steps = np.array([0 if cut else tl.steps for tl, cut in zip(tls, dropped)], np.int64)
    samples = np.array([samples_in_steps(int(n), w.batch, int(k)) for n, k in zip(w.shard, steps)], np.int64)
    return Timing(steps, samples, flops, finish, dropped, stopped, end)
