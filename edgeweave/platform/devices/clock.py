"""The virtual clock of one round: who finishes when, who is dropped, who does partial work.

A device's round time is download + compute + upload: the model's bytes over its bandwidth
each way, and the FLOPs of each of its mini-batches over its current speed. Mini-batches may
differ in cost (FjORD's width, DISTREAL's vector, an epoch's short last batch), so a deadline
cuts the work after the last mini-batch that really fits. Pure arithmetic on arrays, so each
straggler policy can be checked against hand-computed cases.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Optional, Sequence

import numpy as np


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
    """What each sampled device would do in full, and what it costs (arrays over those devices)."""

    devices: np.ndarray
    speed: np.ndarray  # FLOP/s now
    bandwidth: np.ndarray  # bytes/s each way
    model_bytes: np.ndarray  # bytes sent each way
    step_flops: Sequence[np.ndarray]  # per device: the FLOPs of each mini-batch of its full work
    shard: np.ndarray  # samples held
    batch: int

    @property
    def steps(self) -> np.ndarray:
        """Mini-batches of each device's full local work."""
        return np.array([len(f) for f in self.step_flops], np.int64)


@dataclass(frozen=True)
class Timing:
    """The round's outcome: steps each device does (0 = dropped), their FLOPs and finish times."""

    steps: np.ndarray
    samples: np.ndarray
    flops: np.ndarray  # FLOPs spent, dropped devices included (they worked until cut off)
    finish: np.ndarray  # seconds after the round's start
    dropped: np.ndarray
    budget: np.ndarray  # FLOPs that fit before the deadline (inf without one)
    duration: float


def time_round(w: Workload, policy: str, deadline: Optional[float], keep: Optional[int] = None,
               fixed_length: bool = False) -> Timing:
    """Apply a straggler policy (`wait`, `drop`, `partial`) and over-selection (`keep` first finishers).

    With `fixed_length` (and a deadline, and a policy other than `wait`) every round lasts until
    the deadline, as when the driver only collects updates at the deadline.
    """
    n = len(w.devices)
    comm = w.model_bytes / w.bandwidth  # one way
    cum = [np.cumsum(np.asarray(f, np.float64)) for f in w.step_flops]  # FLOPs after each mini-batch
    flops_full = np.array([c[-1] if len(c) else 0.0 for c in cum])
    steps = w.steps.copy()
    samples_full = np.array([samples_in_steps(int(s), w.batch, int(k)) for s, k in zip(w.shard, steps)], np.int64)
    samples = samples_full.copy()
    flops_done = flops_full.copy()
    finish = 2 * comm + flops_full / w.speed
    dropped = np.zeros(n, bool)
    budget = np.full(n, np.inf)
    if deadline is not None and policy != "wait":
        budget = np.maximum(deadline - 2 * comm, 0.0) * w.speed
        if policy == "drop":
            dropped = finish > deadline
        elif policy == "partial":
            steps = np.array([np.searchsorted(c, b * (1 + 1e-9), side="right") for c, b in zip(cum, budget)],
                             np.int64)
            samples = np.array([samples_in_steps(int(s), w.batch, int(k)) for s, k in zip(w.shard, steps)], np.int64)
            flops_done = np.array([c[k - 1] if k else 0.0 for c, k in zip(cum, steps)])
            finish = 2 * comm + flops_done / w.speed
        else:
            raise ValueError(f"unknown straggler policy {policy!r}")
    dropped |= steps == 0  # nothing to train (no step fits, or a device that chose to do no work)
    cutoff = deadline if (deadline is not None and policy != "wait" and dropped.any()) else None
    if keep is not None and (~dropped).sum() > keep:
        order = np.flatnonzero(~dropped)[np.argsort(finish[~dropped], kind="stable")]
        late = order[keep:]
        dropped[late] = True
        cutoff = float(finish[order[keep - 1]])
    worked = np.where(dropped, 0.0, finish)
    end = cutoff if cutoff is not None else float(worked.max(initial=0.0))
    if fixed_length and deadline is not None and policy != "wait":
        end = max(end, deadline)
    if cutoff is not None:
        # Cut-off devices computed from the end of their download until the round ended.
        spent = np.clip(end - comm, 0.0, None) * w.speed
        flops = np.where(dropped, np.minimum(spent, flops_full), flops_done)
    else:
        flops = flops_done
    steps = np.where(dropped, 0, steps)
    samples = np.where(dropped, 0, samples)
    return Timing(steps, samples, flops, np.where(dropped, end, finish), dropped, budget, end)
