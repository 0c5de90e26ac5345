"""The virtual clock of one round: who finishes when, who is dropped, who does partial work.

A device's round time is download + compute + upload: the model's bytes over its bandwidth
each way, and its training FLOPs over its current speed. Pure arithmetic on arrays, so each
straggler policy can be checked against hand-computed cases.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

import numpy as np


def samples_in_steps(n: int, batch: int, steps: int) -> int:
    """Samples processed by the first `steps` mini-batches of shuffled epochs over n samples."""
    per_epoch = -(-n // batch)
    epochs, rest = divmod(steps, per_epoch)
    return epochs * n + rest * batch


@dataclass(frozen=True)
class Workload:
    """What each sampled device would do in full, and what it costs (arrays over those devices)."""

    devices: np.ndarray
    speed: np.ndarray  # FLOP/s now
    bandwidth: np.ndarray  # bytes/s each way
    model_bytes: np.ndarray  # bytes sent each way
    flops_per_sample: np.ndarray
    shard: np.ndarray  # samples held
    steps: np.ndarray  # mini-batches of the full local work
    batch: int


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
    samples_full = np.array([samples_in_steps(int(s), w.batch, int(k)) for s, k in zip(w.shard, w.steps)])
    compute_full = w.flops_per_sample * samples_full / w.speed
    steps = w.steps.astype(np.int64).copy()
    samples = samples_full.astype(np.int64)
    finish = 2 * comm + compute_full
    dropped = np.zeros(n, bool)
    budget = np.full(n, np.inf)
    if deadline is not None and policy != "wait":
        budget = np.maximum(deadline - 2 * comm, 0.0) * w.speed
        if policy == "drop":
            dropped = finish > deadline
        elif policy == "partial":
            per_step = w.flops_per_sample * w.batch
            fit = np.floor(budget / per_step).astype(np.int64)
            steps = np.minimum(steps, fit)
            samples = np.array([samples_in_steps(int(s), w.batch, int(k)) for s, k in zip(w.shard, steps)])
            finish = 2 * comm + w.flops_per_sample * samples / w.speed
            dropped = steps == 0
        else:
            raise ValueError(f"unknown straggler policy {policy!r}")
    dropped |= steps == 0  # nothing to train (a device that chose to do no work)
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
        flops = np.where(dropped, np.minimum(spent, w.flops_per_sample * samples_full), w.flops_per_sample * samples)
    else:
        flops = w.flops_per_sample * samples
    steps = np.where(dropped, 0, steps)
    samples = np.where(dropped, 0, samples)
    return Timing(steps, samples, flops, np.where(dropped, end, finish), dropped, budget, end)
