"""A sweep's search space as Ray Tune's: one Tune domain per swept key."""

from __future__ import annotations

from typing import Any

from ray import tune

from edgeweave.platform.config.sweep import Dimension, SweepConfig


def domain(dim: Dimension) -> Any:
    v = dim.values
    return {
        "grid": lambda: tune.grid_search(v),
        "choice": lambda: tune.choice(v),
        "uniform": lambda: tune.uniform(*v),
        "loguniform": lambda: tune.loguniform(*v),
        "randint": lambda: tune.randint(*v),
    }[dim.kind]()


def param_space(sweep: SweepConfig) -> dict[str, Any]:
    """Tune's param_space: the swept keys, dotted as in the sweep file, each with its domain."""
    return {key: domain(dim) for key, dim in sweep.space.items()}
