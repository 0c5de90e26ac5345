"""Which devices take part in a round: uniformly among those available now."""

from __future__ import annotations

from typing import Callable

import numpy as np


def sample_available(
    population: int, k: int, eligible: Callable[[np.ndarray], np.ndarray], g: np.random.Generator
) -> np.ndarray:
    """Up to k distinct device ids, uniform among eligible ones, sorted.

    Candidates are drawn in small batches and checked, so the cost grows with k, not with the
    population; only when eligible devices are rare does it fall back to checking everyone.
    """
    chosen: list[int] = []
    seen: set[int] = set()
    for _ in range(8):
        candidates = g.integers(0, population, size=max(4 * k, 16))
        fresh = np.array([c for c in dict.fromkeys(candidates.tolist()) if c not in seen], np.int64)
        seen.update(fresh.tolist())
        if len(fresh):
            chosen += fresh[eligible(fresh)].tolist()[: k - len(chosen)]
        if len(chosen) >= k or len(seen) >= population:
            return np.sort(np.array(chosen[:k], np.int64))
    rest = np.setdiff1d(np.arange(population), np.array(sorted(seen), np.int64))
    rest = rest[eligible(rest)] if len(rest) else rest
    extra: np.ndarray | list[int] = (
        g.choice(rest, size=min(k - len(chosen), len(rest)), replace=False) if len(rest) else []
    )
    return np.sort(np.array(chosen + list(extra), np.int64))
