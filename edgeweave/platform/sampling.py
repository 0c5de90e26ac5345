"""Which devices take part in a round."""

from __future__ import annotations

import numpy as np


def sample_devices(population: int, per_round: int, g: np.random.Generator) -> np.ndarray:
    """`per_round` distinct device ids drawn uniformly, sorted."""
    return np.sort(g.choice(population, size=min(per_round, population), replace=False))
