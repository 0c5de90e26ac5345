"""Sub-model plans: which output channels of each prunable layer a sub-model keeps, and the usual ways
to choose them. Plain arrays, no torch: the server half and the device half both compute plans.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Callable, Optional, Sequence

import numpy as np

if TYPE_CHECKING:
    from edgeweave.platform.train.submodel import Slicer


@dataclass(frozen=True)
class Plan:
    """Kept output indices per prunable layer (sorted int arrays) and, optionally, kept classes."""

    keep: tuple[np.ndarray, ...]
    classes: Optional[np.ndarray] = None

    def widths(self) -> tuple[int, ...]:
        return tuple(len(k) for k in self.keep)

    def signature(self) -> tuple:
        """What the sub-model's shape (and so its FLOPs) depends on."""
        return self.widths(), None if self.classes is None else len(self.classes)


def nested(width: int, rate: float) -> np.ndarray:
    """The left-most ceil(rate x width) channels (at least one)."""
    return np.arange(max(1, int(np.ceil(rate * width))))


def rolling(width: int, rate: float, start: int) -> np.ndarray:
    """A window of ceil(rate x width) channels starting at `start`, wrapping around."""
    k = max(1, int(np.ceil(rate * width)))
    return np.sort((start + np.arange(k)) % width)


def random_subset(width: int, rate: float, g: np.random.Generator) -> np.ndarray:
    """ceil(rate x width) channels chosen uniformly at random."""
    k = max(1, int(np.ceil(rate * width)))
    return np.sort(g.choice(width, size=k, replace=False))


def uniform_plan(
    slicer: "Slicer", pick: Callable[[int, int], np.ndarray], classes: Optional[Sequence[int] | np.ndarray] = None
) -> Plan:
    """A plan choosing each layer's channels with `pick(layer, width)`."""
    keep = tuple(np.asarray(pick(i, w), np.int64) for i, w in enumerate(slicer.widths))
    return Plan(keep, None if classes is None else np.asarray(sorted(classes), np.int64))


def dropout_plan(slicer: "Slicer", drop: Sequence[float], g: np.random.Generator) -> Plan:
    """DISTREAL's plan: conv layer l keeps a random (1 - drop[l]) of its filters; the rest all."""
    if len(drop) != slicer.num_convs:
        raise ValueError(f"a dropout vector needs {slicer.num_convs} entries, one per conv layer; got {len(drop)}")
    return uniform_plan(slicer, lambda i, w: random_subset(w, 1.0 - drop[i], g) if i < len(drop) else np.arange(w))


def thin(plan: Plan, drop: Sequence[float], g: np.random.Generator) -> Plan:
    """A plan whose first len(drop) layers keep a random (1 - drop[l]) of the plan's own channels."""
    keep = tuple(
        np.sort(g.choice(k, size=max(1, int(np.ceil((1.0 - drop[i]) * len(k)))), replace=False)) if i < len(drop) else k
        for i, k in enumerate(plan.keep)
    )
    return Plan(keep, plan.classes)
