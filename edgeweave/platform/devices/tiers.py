"""Device tiers: compute speed, share of the population and network bandwidth."""

from __future__ import annotations

import numpy as np
from pydantic import Field

from edgeweave.platform.core.registry import Params
from edgeweave.platform.core.seeding import SERVER, Stream, rng


class Tier(Params):
    """A class of devices alike in compute speed and network bandwidth, and its share of the population."""

    name: str  # the key of width methods' strategy.rates; the label in devices.jsonl and plots; names must differ
    speed: float = Field(gt=0)  # relative to devices.flops_per_second
    share: float = Field(gt=0)  # share of the population (normalised over tiers)
    bandwidth: float = Field(10e6, gt=0)  # bytes per second, each way


DEFAULT_TIERS = (
    Tier(name="strong", speed=1.0, share=1 / 3, bandwidth=20e6),
    Tier(name="medium", speed=0.66, share=1 / 3, bandwidth=10e6),
    Tier(name="weak", speed=0.33, share=1 / 3, bandwidth=5e6),
)


def assign_tiers(count: int, shares: list[float], seed: int) -> np.ndarray:
    """Tier index of every device (int8): exact quotas by largest remainder, shuffled from the seed."""
    p = np.asarray(shares, np.float64) / np.sum(shares)
    quota = np.floor(p * count).astype(np.int64)
    rest = np.argsort(-(p * count - quota), kind="stable")[: count - quota.sum()]
    quota[rest] += 1
    tiers = np.repeat(np.arange(len(p), dtype=np.int8), quota)
    return rng(seed, -1, SERVER, Stream.TIERS).permutation(tiers)
