"""Partial aggregates (per-element sums and counts) and count-normalised averaging.

Sums are float64 so that the combined result hardly depends on how devices were split
between workers: 1 worker and 2 workers give the same weights.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Iterable, Optional

import numpy as np


@dataclass
class Partial:
    """What one worker sends back for a round: weighted sums, weights, per-device records, and the state each
    device keeps for later rounds (methods that declare some: platform/run/device_state.py)."""

    sums: np.ndarray
    counts: np.ndarray
    records: list[dict] = field(default_factory=list)
    states: dict[int, dict[str, np.ndarray]] = field(default_factory=dict)

    @classmethod
    def zeros(cls, size: int) -> "Partial":
        return cls(np.zeros(size, np.float64), np.zeros(size, np.float64))

    def __reduce__(self) -> tuple:
        """Sent between processes with counts that are one number everywhere (every element trained by the
        same devices: a full-model round) as that number: half the bytes a worker returns each round."""
        c = self.counts
        if len(c) and c[0] == c[-1] and bool((c == c[0]).all()):
            return _uniform, (self.sums, float(c[0]), self.records, self.states)
        return Partial, (self.sums, self.counts, self.records, self.states)

    def record(self, device: int, samples: int, steps: int, loss: float) -> None:
        """Note what one device trained this round."""
        self.records.append({"device": device, "samples": samples, "steps": steps, "loss": loss})

    def keep(self, device: int, arrays: dict[str, np.ndarray]) -> None:
        """Hand the driver's store the state the device keeps for its next round (the method's declared arrays)."""
        self.states[device] = {name: np.asarray(v, np.float32) for name, v in arrays.items()}

    def add(self, values: np.ndarray, weight: float, mask: Optional[np.ndarray] = None) -> None:
        """Add `weight * values` on the elements in `mask` (all elements when None)."""
        if mask is None:
            # torch (imported only where devices train): one pass in place, no float64 temporary of the model's size
            from edgeweave.platform.core.arrays import tensor_view

            tensor_view(self.sums).add_(tensor_view(np.ascontiguousarray(values)), alpha=weight)
            self.counts += weight
        else:
            self.sums[mask] += weight * values.astype(np.float64)
            self.counts[mask] += weight


def _uniform(sums: np.ndarray, count: float, records: list[dict], states: dict) -> Partial:
    return Partial(sums, np.full(len(sums), count, np.float64), records, states)


def combine(partials: Iterable[Partial], size: int) -> Partial:
    """Element-wise sum of several partials over `size` elements (zeros when there are none); records concatenated,
    device states merged (in the partials' order: a later one's state of a device stands)."""
    partials = list(partials)
    if not partials:
        return Partial.zeros(size)
    first = partials[0]
    out = Partial(first.sums.copy(), first.counts.copy(), list(first.records), dict(first.states))
    for p in partials[1:]:
        out.sums += p.sums
        out.counts += p.counts
        out.records.extend(p.records)
        out.states.update(p.states)
    return out


def average(previous: np.ndarray, sums: np.ndarray, counts: np.ndarray) -> np.ndarray:
    """sums / counts where counts > 0; elements that nobody trained keep their previous value."""
    trained = counts > 0
    if trained.all():  # every element trained (a full-model round): no masking
        return (sums / counts).astype(np.float32)
    out = previous.astype(np.float32, copy=True)
    np.copyto(out, sums / np.where(trained, counts, 1.0), casting="same_kind", where=trained)
    return out
